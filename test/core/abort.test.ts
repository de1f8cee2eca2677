import { getEventListeners } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { abortable, abortReason, linkSignals, onAbort, sleep, throwIfAborted } from '../../src/core/abort.js';
import { ManualClock } from '../../src/core/clock.js';
import { AbortedError } from '../../src/core/errors.js';

const listeners = (signal: AbortSignal): number => getEventListeners(signal, 'abort').length;

/**
 * A signal-like object whose `reason` stays undefined, as in runtimes that predate `AbortSignal.reason`
 * (a real AbortController always sets one).
 */
function reasonlessSignal(): { signal: AbortSignal; abort(): void } {
  const target = new EventTarget() as EventTarget & { aborted: boolean; reason: unknown };
  target.aborted = false;
  target.reason = undefined;
  return {
    signal: target as unknown as AbortSignal,
    abort() {
      target.aborted = true;
      target.dispatchEvent(new Event('abort'));
    },
  };
}

/** Counts add/removeEventListener calls on a signal. */
function spyListeners(signal: AbortSignal): { added: () => number; removed: () => number } {
  const add = vi.spyOn(signal, 'addEventListener');
  const remove = vi.spyOn(signal, 'removeEventListener');
  return { added: () => add.mock.calls.length, removed: () => remove.mock.calls.length };
}

describe('abortReason() and throwIfAborted()', () => {
  it('returns the signal reason when there is one', () => {
    const controller = new AbortController();
    const reason = new Error('because');
    controller.abort(reason);
    expect(abortReason(controller.signal)).toBe(reason);
    expect(() => throwIfAborted(controller.signal)).toThrow(reason);
  });

  it('falls back to AbortedError for a signal without reason', () => {
    const fake = reasonlessSignal();
    fake.abort();
    expect(abortReason(fake.signal)).toBeInstanceOf(AbortedError);
    expect(() => throwIfAborted(fake.signal)).toThrow(AbortedError);
  });

  it('throwIfAborted ignores undefined and live signals', () => {
    expect(() => throwIfAborted(undefined)).not.toThrow();
    expect(() => throwIfAborted(new AbortController().signal)).not.toThrow();
  });
});

describe('sleep()', () => {
  it('resolves after the given time on the injected clock', async () => {
    const clock = new ManualClock();
    let done = false;
    const sleeping = sleep(1000, { clock }).then(() => (done = true));
    await clock.advanceAsync(999);
    expect(done).toBe(false);
    await clock.advanceAsync(1);
    await sleeping;
    expect(done).toBe(true);
  });

  it('resolves with the real clock by default', async () => {
    const started = performance.now();
    await sleep(15);
    expect(performance.now() - started).toBeGreaterThanOrEqual(14);
  });

  it('rejects with the signal reason when aborted during the wait, and disarms its timer', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const sleeping = sleep(1000, { clock, signal: controller.signal });
    expect(clock.pendingTimers).toBe(1);
    const reason = new Error('stop');
    controller.abort(reason);
    await expect(sleeping).rejects.toBe(reason);
    expect(clock.pendingTimers).toBe(0);
    expect(listeners(controller.signal)).toBe(0);
  });

  it('rejects with the DOMException AbortError that abort() without an argument creates', async () => {
    // AbortController.abort() always sets a reason: a DOMException named "AbortError", not undefined.
    // So the AbortedError fallback never applies to real controllers.
    const controller = new AbortController();
    const sleeping = sleep(1000, { clock: new ManualClock(), signal: controller.signal });
    controller.abort();
    const error = await sleeping.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(DOMException);
    expect((error as DOMException).name).toBe('AbortError');
    expect(error).toBe(controller.signal.reason);
  });

  it('rejects with AbortedError when the signal has no reason', async () => {
    const fake = reasonlessSignal();
    const sleeping = sleep(1000, { clock: new ManualClock(), signal: fake.signal });
    fake.abort();
    await expect(sleeping).rejects.toBeInstanceOf(AbortedError);

    await expect(sleep(1000, { clock: new ManualClock(), signal: fake.signal })).rejects.toBeInstanceOf(AbortedError);
  });

  it('rejects at once for a pre-aborted signal, without arming a timer or adding a listener', async () => {
    const clock = new ManualClock();
    const setTimeoutSpy = vi.spyOn(clock, 'setTimeout');
    const controller = new AbortController();
    const reason = new Error('already');
    controller.abort(reason);
    const spy = spyListeners(controller.signal);
    await expect(sleep(1000, { clock, signal: controller.signal })).rejects.toBe(reason);
    expect(setTimeoutSpy).not.toHaveBeenCalled();
    expect(clock.pendingTimers).toBe(0);
    expect(spy.added()).toBe(0);
  });

  it('passes unref to the clock', () => {
    const clock = new ManualClock();
    const spy = vi.spyOn(clock, 'setTimeout');
    void sleep(10, { clock, unref: true });
    void sleep(10, { clock });
    // ManualClock declares two parameters; the third is what sleep() passed through the Clock interface.
    const third = (call: unknown[] | undefined): unknown => call?.[2];
    expect(third(spy.mock.calls[0])).toEqual({ unref: true });
    expect(third(spy.mock.calls[1])).toEqual({ unref: false });
  });

  it('leaves no listener behind over 10k sleeps on one long-lived signal', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const spy = spyListeners(controller.signal);
    const sleeps = Array.from({ length: 10_000 }, (_, i) => sleep(i % 100, { clock, signal: controller.signal }));
    // One listener on the signal fans out to every sleep, so Node never warns about a leak.
    expect(listeners(controller.signal)).toBe(1);
    clock.advance(100);
    await Promise.all(sleeps);
    expect(spy.added()).toBe(1);
    expect(spy.removed()).toBe(1);
    expect(listeners(controller.signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('leaves no listener or timer behind when one shared signal aborts 10k sleeps', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const sleeps = Array.from({ length: 10_000 }, () => sleep(5000, { clock, signal: controller.signal }));
    controller.abort(new Error('bye'));
    const results = await Promise.allSettled(sleeps);
    expect(results.every((result) => result.status === 'rejected')).toBe(true);
    expect(listeners(controller.signal)).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('abortable()', () => {
  it('returns the same promise without a signal', () => {
    const promise = Promise.resolve(1);
    expect(abortable(promise, undefined)).toBe(promise);
  });

  it('settles like the promise and removes its listener', async () => {
    const controller = new AbortController();
    await expect(abortable(Promise.resolve(42), controller.signal)).resolves.toBe(42);
    const failure = new Error('inner');
    await expect(abortable(Promise.reject(failure), controller.signal)).rejects.toBe(failure);
    expect(listeners(controller.signal)).toBe(0);
  });

  it('rejects with the reason as soon as the signal aborts, ignoring the later outcome', async () => {
    const controller = new AbortController();
    let rejectInner!: (error: Error) => void;
    const inner = new Promise<number>((_, reject) => (rejectInner = reject));
    const wrapped = abortable(inner, controller.signal);
    const reason = new Error('abort');
    controller.abort(reason);
    await expect(wrapped).rejects.toBe(reason);
    // A later rejection of the inner promise must not surface as an unhandled rejection.
    rejectInner(new Error('too late'));
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(listeners(controller.signal)).toBe(0);
  });

  it('rejects at once for a pre-aborted signal and swallows the inner rejection', async () => {
    const controller = new AbortController();
    controller.abort(new Error('already'));
    const spy = spyListeners(controller.signal);
    const inner = Promise.reject(new Error('inner'));
    await expect(abortable(inner, controller.signal)).rejects.toThrow('already');
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(spy.added()).toBe(0);
  });

  it('leaves no listener behind over 10k wrapped promises', async () => {
    const controller = new AbortController();
    const spy = spyListeners(controller.signal);
    await Promise.all(Array.from({ length: 10_000 }, (_, i) => abortable(Promise.resolve(i), controller.signal)));
    expect(spy.added()).toBe(1);
    expect(spy.removed()).toBe(1);
    expect(listeners(controller.signal)).toBe(0);
  });
});

describe('onAbort()', () => {
  it('shares one listener among many waits, calls each once, and warns about no leak', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const controller = new AbortController();
      const calls: number[] = [];
      const removers = Array.from({ length: 50 }, (_, i) => onAbort(controller.signal, () => calls.push(i)));
      expect(listeners(controller.signal)).toBe(1);
      removers[0]!();
      removers[0]!();
      const waits = Array.from({ length: 20 }, () =>
        sleep(60_000, { signal: controller.signal }).catch((error: unknown) => error),
      );
      controller.abort(new Error('page closed'));
      expect(calls).toEqual(Array.from({ length: 49 }, (_, i) => i + 1));
      for (const outcome of await Promise.all(waits)) expect((outcome as Error).message).toBe('page closed');
      expect(listeners(controller.signal)).toBe(0);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('linkSignals()', () => {
  it('aborts when any source aborts, with that source reason, and detaches from every source', () => {
    const a = new AbortController();
    const b = new AbortController();
    const link = linkSignals(a.signal, undefined, b.signal);
    expect(link.signal.aborted).toBe(false);
    expect(listeners(a.signal)).toBe(1);
    expect(listeners(b.signal)).toBe(1);
    const reason = new Error('b went away');
    b.abort(reason);
    expect(link.signal.aborted).toBe(true);
    expect(link.signal.reason).toBe(reason);
    expect(listeners(a.signal)).toBe(0);
    expect(listeners(b.signal)).toBe(0);
    a.abort(new Error('later'));
    expect(link.signal.reason).toBe(reason);
  });

  it('passes on the DOMException of a reasonless abort() and AbortedError for a reasonless signal', () => {
    const a = new AbortController();
    const link = linkSignals(a.signal);
    a.abort();
    expect((link.signal.reason as DOMException).name).toBe('AbortError');

    const fake = reasonlessSignal();
    const fakeLink = linkSignals(fake.signal);
    fake.abort();
    expect(fakeLink.signal.reason).toBeInstanceOf(AbortedError);
  });

  it('is aborted at once when a source is already aborted, and keeps no listener', () => {
    const live = new AbortController();
    const dead = new AbortController();
    const reason = new Error('dead');
    dead.abort(reason);
    const link = linkSignals(live.signal, dead.signal);
    expect(link.signal.aborted).toBe(true);
    expect(link.signal.reason).toBe(reason);
    expect(listeners(live.signal)).toBe(0);
    expect(listeners(dead.signal)).toBe(0);
  });

  it('takes the first aborted source reason when several are aborted', () => {
    const one = new AbortController();
    const two = new AbortController();
    one.abort('one');
    two.abort('two');
    expect(linkSignals(undefined, two.signal, one.signal).signal.reason).toBe('two');
  });

  it('dispose() removes the listeners, after which sources no longer reach it', () => {
    const a = new AbortController();
    const b = new AbortController();
    const spyA = spyListeners(a.signal);
    const link = linkSignals(a.signal, b.signal);
    link.dispose();
    link.dispose(); // idempotent
    expect(listeners(a.signal)).toBe(0);
    expect(listeners(b.signal)).toBe(0);
    expect(spyA.added()).toBe(spyA.removed());
    a.abort();
    expect(link.signal.aborted).toBe(false);
  });

  it('abort() aborts the linked signal only, with the reason or an AbortedError', () => {
    const source = new AbortController();
    const link = linkSignals(source.signal);
    link.abort();
    expect(link.signal.reason).toBeInstanceOf(AbortedError);
    expect(source.signal.aborted).toBe(false);
    expect(listeners(source.signal)).toBe(0);

    const other = linkSignals(source.signal);
    other.abort('why');
    expect(other.signal.reason).toBe('why');
  });

  it('works with no sources at all', () => {
    const link = linkSignals();
    expect(link.signal.aborted).toBe(false);
    link.abort();
    expect(link.signal.aborted).toBe(true);
  });

  it('leaves no listener on a long-lived source over 10k disposed links', () => {
    const root = new AbortController();
    for (let i = 0; i < 10_000; i++) linkSignals(root.signal).dispose();
    expect(listeners(root.signal)).toBe(0);
  });
});
