import { describe, expect, it } from 'vitest';
import { type TimerHandle, type TimerOptions, ManualClock, seededRandom } from '../../../src/core/clock.js';
import { AbortedError, isPollkitError } from '../../../src/core/errors.js';
import {
  type DelayedOperationOptions,
  type PurgatoryKey,
  DelayedOperation,
  DelayedOperationPurgatory,
} from '../../../src/server/purgatory/purgatory.js';

/** Kafka's MockDelayedOperation: completes when `completable` is set. */
class MockOp extends DelayedOperation {
  completable = false;
  completes = 0;
  expirations = 0;
  tries = 0;
  readonly log: string[] = [];
  constructor(delayMs: number, options?: DelayedOperationOptions) {
    super(delayMs, options);
  }
  tryComplete(): boolean {
    this.tries++;
    return this.completable ? this.forceComplete() : false;
  }
  onComplete(): void {
    this.completes++;
    this.log.push(`complete:${this.settlement}`);
  }
  override onExpiration(): void {
    this.expirations++;
    this.log.push('expiration');
  }
}

class SpyClock extends ManualClock {
  armed = 0;
  unrefs = 0;
  override setTimeout(callback: () => void, ms: number, options?: TimerOptions): TimerHandle {
    this.armed++;
    if (options?.unref === true) this.unrefs++;
    return super.setTimeout(callback, ms);
  }
}

const manual = (): { clock: ManualClock; purgatory: DelayedOperationPurgatory } => {
  const clock = new ManualClock();
  return { clock, purgatory: new DelayedOperationPurgatory({ clock, name: 'test' }) };
};

describe('DelayedOperationPurgatory (after Kafka DelayedOperationTest)', () => {
  it('request satisfaction: each key completes only its own watchers', () => {
    const { purgatory } = manual();
    const r1 = new MockOp(100_000);
    const r2 = new MockOp(100_000);
    expect(purgatory.checkAndComplete('test1')).toBe(0);
    expect(purgatory.tryCompleteElseWatch(r1, ['test1'])).toBe(false);
    expect(purgatory.checkAndComplete('test1')).toBe(0);
    expect(purgatory.tryCompleteElseWatch(r2, ['test2'])).toBe(false);
    expect(purgatory.checkAndComplete('test2')).toBe(0);
    r1.completable = true;
    expect(purgatory.checkAndComplete('test1')).toBe(1);
    expect(purgatory.checkAndComplete('test1')).toBe(0);
    r2.completable = true;
    expect(purgatory.checkAndComplete('test2')).toBe(1);
    expect(purgatory.checkAndComplete('test2')).toBe(0);
    expect(r1.completes + r2.completes).toBe(2);
    expect(purgatory.metrics()).toMatchObject({ completions: 2, pending: 0, watched: 0, watchedKeys: 0 });
  });

  it('request expiry: expires at its deadline, never earlier; the other stays', () => {
    const { clock, purgatory } = manual();
    const r1 = new MockOp(20);
    const r2 = new MockOp(200_000);
    expect(purgatory.tryCompleteElseWatch(r1, ['test1'])).toBe(false);
    expect(purgatory.tryCompleteElseWatch(r2, ['test2'])).toBe(false);
    clock.advance(19);
    expect(r1.isCompleted()).toBe(false);
    clock.advance(1);
    expect(r1.isCompleted()).toBe(true);
    expect(r1.settlement).toBe('expired');
    expect(r1.log).toEqual(['complete:expired', 'expiration']);
    expect(r2.isCompleted()).toBe(false);
    expect(purgatory.metrics()).toMatchObject({ expirations: 1, pending: 1, watched: 1, delayed: 1 });
  });

  it('purge accounting with ops on [k1], [k1,k2], [k1,k2,k3]: completed ops leave every list at once', () => {
    const { purgatory } = manual();
    const r1 = new MockOp(100_000);
    const r2 = new MockOp(100_000);
    const r3 = new MockOp(100_000);
    purgatory.tryCompleteElseWatch(r1, ['test1']);
    purgatory.tryCompleteElseWatch(r2, ['test1', 'test2']);
    purgatory.tryCompleteElseWatch(r3, ['test1', 'test2', 'test3']);
    expect(purgatory.numDelayed()).toBe(3);
    expect(purgatory.watched()).toBe(6);
    expect(purgatory.watchedKeys()).toBe(3);
    r2.completable = true;
    expect(r2.tryComplete()).toBe(true);
    expect(purgatory.numDelayed()).toBe(2);
    // Kafka purges lazily (on checkAndComplete or every purgeInterval); here the entries go at once.
    expect(purgatory.watched()).toBe(4);
    r3.completable = true;
    r3.tryComplete();
    expect(purgatory.numDelayed()).toBe(1);
    expect(purgatory.watched()).toBe(1);
    expect(purgatory.watchedKeys()).toBe(1);
    expect(purgatory.checkAndComplete('test1')).toBe(0);
    expect(purgatory.checkAndComplete('test2')).toBe(0);
    expect(purgatory.checkAndComplete('test3')).toBe(0);
    expect(purgatory.watched()).toBe(1);
    r1.completable = true;
    expect(purgatory.checkAndComplete('test1')).toBe(1);
    expect(purgatory.metrics()).toMatchObject({ watched: 0, watchedKeys: 0, delayed: 0, pending: 0 });
  });

  it('cancelForKey settles the key’s operations and returns how many; a missing key gives 0', () => {
    const { purgatory } = manual();
    expect(purgatory.cancelForKey('test1')).toBe(0);
    const a = new MockOp(10_000);
    const b = new MockOp(10_000);
    const c = new MockOp(10_000);
    purgatory.tryCompleteElseWatch(a, ['test1']);
    purgatory.tryCompleteElseWatch(b, ['test1', 'test3']);
    purgatory.tryCompleteElseWatch(c, ['test2']);
    expect(purgatory.cancelForKey('test1')).toBe(2);
    expect(purgatory.numDelayed()).toBe(1);
    expect(purgatory.watched()).toBe(1);
    expect(purgatory.watchedKeys()).toBe(1);
    expect([a.settlement, b.settlement, c.settlement]).toEqual(['canceled', 'canceled', 'pending']);
    expect(a.completes).toBe(1);
    expect(purgatory.cancelForKey('test1')).toBe(0);
    expect(purgatory.metrics().cancellations).toBe(2);
  });

  it('empty keys is an InvalidArgumentError; an op is handed over once', async () => {
    const { purgatory } = manual();
    expect(() => purgatory.tryCompleteElseWatch(new MockOp(10), [])).toThrowError(
      expect.objectContaining({ code: 'invalid-argument' }),
    );
    await expect(purgatory.waitFor([], () => 1, { timeoutMs: 10 })).rejects.toSatisfy((e: unknown) =>
      isPollkitError(e, 'invalid-argument'),
    );
    await expect(purgatory.waitFor(['k'], () => 1, { timeoutMs: Number.NaN })).rejects.toSatisfy((e: unknown) =>
      isPollkitError(e, 'invalid-argument'),
    );
    const op = new MockOp(10);
    purgatory.tryCompleteElseWatch(op, ['k']);
    expect(() => purgatory.tryCompleteElseWatch(op, ['k'])).toThrow();
    expect(() => new MockOp(Number.NaN)).toThrow();
  });

  it('tryCompleteElseWatch completes at once when it can, returning true, without watching', () => {
    const { purgatory } = manual();
    const op = new MockOp(1000);
    op.completable = true;
    expect(purgatory.tryCompleteElseWatch(op, ['k'])).toBe(true);
    expect(op.tries).toBe(1);
    expect(purgatory.watched()).toBe(0);
    expect(purgatory.numDelayed()).toBe(0);
  });

  it('check-watch-recheck: a state flip during the watch is not lost', () => {
    const { purgatory } = manual();
    // The condition becomes true between the first try and the watch (here: as a side effect of the
    // first try, standing for an event that lands in that window). The second try must see it.
    class Flipping extends MockOp {
      override tryComplete(): boolean {
        this.tries++;
        if (this.tries === 1) {
          this.completable = true;
          return false;
        }
        return this.completable ? this.forceComplete() : false;
      }
    }
    const op = new Flipping(1000);
    expect(purgatory.tryCompleteElseWatch(op, ['a', 'b'])).toBe(true);
    expect(op.tries).toBe(2);
    expect(op.settlement).toBe('completed');
    expect(purgatory.metrics()).toMatchObject({ watched: 0, watchedKeys: 0, delayed: 0, pending: 0 });
  });

  it('duplicate keys are watched once', () => {
    const { purgatory } = manual();
    purgatory.tryCompleteElseWatch(new MockOp(1000), ['a', 'b', 'a', 'b', 'c']);
    expect(purgatory.watched()).toBe(3);
    const many = Array.from({ length: 20 }, (_, i) => `k${i % 10}`);
    purgatory.tryCompleteElseWatch(new MockOp(1000), many);
    expect(purgatory.watched()).toBe(13);
  });

  it('exactly once: completion, expiry, abort, cancel and shutdown race and only the first wins', () => {
    const { clock, purgatory } = manual();
    const controller = new AbortController();
    const op = new MockOp(10, { signal: controller.signal });
    purgatory.tryCompleteElseWatch(op, ['k1', 'k2']);
    op.completable = true;
    expect(purgatory.checkAndComplete('k2')).toBe(1);
    // Every later path is a no-op.
    expect(op.forceComplete()).toBe(false);
    controller.abort();
    clock.advance(100);
    expect(purgatory.cancelForKey('k1')).toBe(0);
    purgatory.shutdown();
    expect(op.completes).toBe(1);
    expect(op.expirations).toBe(0);
    expect(op.settlement).toBe('completed');
    expect(purgatory.metrics()).toMatchObject({
      completions: 1,
      expirations: 0,
      aborts: 0,
      cancellations: 0,
      shutdowns: 0,
    });
  });

  it('expiry first: a late completion, abort or shutdown changes nothing', () => {
    const { clock, purgatory } = manual();
    const controller = new AbortController();
    const op = new MockOp(10, { signal: controller.signal });
    purgatory.tryCompleteElseWatch(op, ['k']);
    clock.advance(10);
    op.completable = true;
    expect(op.forceComplete()).toBe(false);
    expect(purgatory.checkAndComplete('k')).toBe(0);
    controller.abort();
    purgatory.shutdown();
    expect(op.log).toEqual(['complete:expired', 'expiration']);
  });

  it('abort before watching settles at once; abort after watching unlinks', () => {
    const { purgatory } = manual();
    const early = new AbortController();
    early.abort();
    const a = new MockOp(1000, { signal: early.signal });
    expect(purgatory.tryCompleteElseWatch(a, ['k'])).toBe(false);
    expect(a.settlement).toBe('aborted');
    expect(a.tries).toBe(0);
    expect(purgatory.watched()).toBe(0);
    const late = new AbortController();
    const b = new MockOp(1000, { signal: late.signal });
    purgatory.tryCompleteElseWatch(b, ['k', 'j']);
    expect(purgatory.watched()).toBe(2);
    late.abort();
    expect(b.settlement).toBe('aborted');
    expect(b.completes).toBe(1);
    expect(purgatory.metrics()).toMatchObject({ watched: 0, delayed: 0, pending: 0, aborts: 2 });
  });

  it('already-expired operations (timeout 0 or negative) are checked twice, then expire at once', () => {
    const { purgatory } = manual();
    for (const delay of [0, -5]) {
      const op = new MockOp(delay);
      expect(purgatory.tryCompleteElseWatch(op, ['k'])).toBe(false);
      expect(op.tries).toBe(2);
      expect(op.log).toEqual(['complete:expired', 'expiration']);
    }
    expect(purgatory.metrics()).toMatchObject({ watched: 0, delayed: 0, pending: 0, expirations: 2 });
  });

  it('an Infinity timeout never expires and holds no timer', () => {
    const { clock, purgatory } = manual();
    const op = new MockOp(Infinity);
    purgatory.tryCompleteElseWatch(op, ['k']);
    expect(purgatory.numDelayed()).toBe(0);
    clock.advance(1e9);
    expect(op.isCompleted()).toBe(false);
    op.completable = true;
    expect(purgatory.checkAndComplete('k')).toBe(1);
  });

  it('re-entrancy: onComplete that adds and completes ops on the walked key neither skips nor loops', () => {
    const { purgatory } = manual();
    const ready = new Set<string>();
    const order: string[] = [];
    class Op extends DelayedOperation {
      constructor(
        readonly id: string,
        readonly onDone: () => void = () => {},
      ) {
        super(10_000);
      }
      tryComplete(): boolean {
        return ready.has(this.id) ? this.forceComplete() : false;
      }
      onComplete(): void {
        order.push(this.id);
        this.onDone();
      }
    }
    const added: Op[] = [];
    const a = new Op('a', () => {
      // Adds an already-satisfiable op on the same key: it completes itself in tryCompleteElseWatch.
      ready.add('x');
      const x = new Op('x');
      added.push(x);
      purgatory.tryCompleteElseWatch(x, ['k']);
      // Adds an op that is not ready: it must not be visited by this walk (no loop) and stays.
      const y = new Op('y');
      added.push(y);
      purgatory.tryCompleteElseWatch(y, ['k']);
      // Completes c, later in this walk: the walk must skip it, not complete it twice.
      c.forceComplete();
    });
    const b = new Op('b');
    const c = new Op('c');
    const d = new Op('d');
    for (const op of [a, b, c, d]) purgatory.tryCompleteElseWatch(op, ['k']);
    for (const id of ['a', 'b', 'c', 'd']) ready.add(id);
    // a, x (inside a), c (inside a), b, d: c is not counted by this walk, y is not visited.
    expect(purgatory.checkAndComplete('k')).toBe(3);
    expect(order).toEqual(['a', 'x', 'c', 'b', 'd']);
    expect(added[1]!.isCompleted()).toBe(false);
    expect(purgatory.watched()).toBe(1);
    ready.add('y');
    expect(purgatory.checkAndComplete('k')).toBe(1);
    expect(purgatory.watched()).toBe(0);
  });

  it('a throwing tryComplete does not stop the walk; the error surfaces after it', () => {
    const { purgatory } = manual();
    class Throwing extends MockOp {
      override tryComplete(): boolean {
        this.tries++;
        if (this.tries > 2) throw new Error('bad check');
        return false;
      }
    }
    const t = new Throwing(1000);
    const ok = new MockOp(1000);
    purgatory.tryCompleteElseWatch(t, ['k']);
    purgatory.tryCompleteElseWatch(ok, ['k']);
    ok.completable = true;
    expect(() => purgatory.checkAndComplete('k')).toThrow('bad check');
    expect(ok.settlement).toBe('completed');
  });

  it('shutdown settles every pending operation once, leaves no timer, and later ops settle at once', () => {
    const clock = new SpyClock();
    const purgatory = new DelayedOperationPurgatory({ clock });
    const ops = Array.from({ length: 50 }, (_, i) => new MockOp(1000 + i));
    ops.forEach((op, i) => purgatory.tryCompleteElseWatch(op, [`k${i % 7}`, `j${i % 3}`]));
    const forever = new MockOp(Infinity);
    purgatory.tryCompleteElseWatch(forever, ['z']);
    expect(clock.pendingTimers).toBe(1);
    purgatory.shutdown();
    expect(clock.pendingTimers).toBe(0);
    expect([...ops, forever].every((op) => op.completes === 1 && op.settlement === 'shutdown')).toBe(true);
    expect(purgatory.metrics()).toMatchObject({ watched: 0, watchedKeys: 0, delayed: 0, pending: 0, shutdowns: 51 });
    const late = new MockOp(10);
    expect(purgatory.tryCompleteElseWatch(late, ['k'])).toBe(false);
    expect(late.settlement).toBe('shutdown');
    clock.advance(5000);
    expect(ops.every((op) => op.completes === 1)).toBe(true);
  });

  it('auto mode: one unref’d timer; none while idle', () => {
    const clock = new SpyClock();
    const purgatory = new DelayedOperationPurgatory({ clock });
    expect(clock.armed).toBe(0);
    const ops = Array.from({ length: 100 }, (_, i) => new MockOp(100 + i));
    ops.forEach((op, i) => purgatory.tryCompleteElseWatch(op, [`k${i}`]));
    expect(clock.armed).toBe(1);
    expect(clock.unrefs).toBe(1);
    expect(clock.pendingTimers).toBe(1);
    for (let i = 0; i < 100; i++) {
      ops[i]!.completable = true;
      purgatory.checkAndComplete(`k${i}`);
    }
    expect(clock.pendingTimers).toBe(0);
    clock.advance(10_000);
    expect(clock.armed).toBe(1);
  });
});

describe('DelayedOperationPurgatory.waitFor', () => {
  it('completes with the value when a checkAndComplete finds it; check runs as documented', async () => {
    const { purgatory } = manual();
    let value: string | undefined = undefined;
    let calls = 0;
    const wait = purgatory.waitFor(
      ['topic'],
      () => {
        calls++;
        return value;
      },
      { timeoutMs: 30_000 },
    );
    expect(calls).toBe(2); // once up front, once after watching
    expect(purgatory.checkAndComplete('topic')).toBe(0);
    expect(calls).toBe(3);
    value = 'hello';
    expect(purgatory.checkAndComplete('other')).toBe(0);
    expect(purgatory.checkAndComplete('topic')).toBe(1);
    await expect(wait).resolves.toEqual({ status: 'completed', value: 'hello' });
    expect(calls).toBe(4);
    expect(purgatory.metrics()).toMatchObject({ pending: 0, watched: 0, completions: 1 });
  });

  it('the fast path resolves at once without watching; falsy values other than undefined count', async () => {
    const { purgatory } = manual();
    await expect(purgatory.waitFor(['k'], () => 0, { timeoutMs: 10 })).resolves.toEqual({
      status: 'completed',
      value: 0,
    });
    await expect(purgatory.waitFor(['k'], () => null, { timeoutMs: 10 })).resolves.toEqual({
      status: 'completed',
      value: null,
    });
    expect(purgatory.watched()).toBe(0);
  });

  it('expires as a normal outcome, never early', async () => {
    const { clock, purgatory } = manual();
    const wait = purgatory.waitFor(['k'], () => undefined, { timeoutMs: 1000 });
    let outcome: unknown;
    void wait.then((o) => (outcome = o));
    await clock.advanceAsync(999);
    expect(outcome).toBeUndefined();
    await clock.advanceAsync(1);
    expect(outcome).toEqual({ status: 'expired' });
    expect(purgatory.metrics()).toMatchObject({ expirations: 1, watched: 0, delayed: 0 });
  });

  it('canceled and shutdown outcomes', async () => {
    const { purgatory } = manual();
    const a = purgatory.waitFor(['a'], () => undefined, { timeoutMs: 1000 });
    const b = purgatory.waitFor(['b'], () => undefined, { timeoutMs: 1000 });
    expect(purgatory.cancelForKey('a')).toBe(1);
    purgatory.shutdown();
    await expect(a).resolves.toEqual({ status: 'canceled' });
    await expect(b).resolves.toEqual({ status: 'shutdown' });
    await expect(purgatory.waitFor(['c'], () => undefined, { timeoutMs: 1000 })).resolves.toEqual({
      status: 'shutdown',
    });
  });

  it('abort before watching rejects at once with signal.reason; after watching it unlinks', async () => {
    const { purgatory } = manual();
    const reason = new Error('gone');
    let checked = 0;
    await expect(
      purgatory.waitFor(
        ['k'],
        () => {
          checked++;
          return undefined;
        },
        { timeoutMs: 100, signal: AbortSignal.abort(reason) },
      ),
    ).rejects.toBe(reason);
    expect(checked).toBe(0);
    const controller = new AbortController();
    const wait = purgatory.waitFor(['k', 'j'], () => undefined, { timeoutMs: 100, signal: controller.signal });
    expect(purgatory.watched()).toBe(2);
    controller.abort();
    await expect(wait).rejects.toBeInstanceOf(DOMException);
    expect(purgatory.metrics()).toMatchObject({ watched: 0, watchedKeys: 0, delayed: 0, pending: 0, aborts: 1 });
    const withOwnReason = new AbortController();
    const wait2 = purgatory.waitFor(['k'], () => undefined, { timeoutMs: 100, signal: withOwnReason.signal });
    withOwnReason.abort(new AbortedError('left'));
    await expect(wait2).rejects.toSatisfy((e: unknown) => isPollkitError(e, 'aborted'));
  });

  it('a completed wait removes its abort listener (a shared signal does not accumulate them)', async () => {
    const { purgatory } = manual();
    const controller = new AbortController();
    let value: number | undefined = undefined;
    const waits = Array.from({ length: 100 }, (_, i) =>
      purgatory.waitFor([`k${i}`], () => value, { timeoutMs: 1000, signal: controller.signal }),
    );
    value = 1;
    for (let i = 0; i < 100; i++) purgatory.checkAndComplete(`k${i}`);
    await Promise.all(waits);
    controller.abort();
    expect(purgatory.metrics().aborts).toBe(0);
  });

  it('a throwing check rejects the wait and unlinks it', async () => {
    const { purgatory } = manual();
    await expect(
      purgatory.waitFor(
        ['k'],
        () => {
          throw new Error('up front');
        },
        { timeoutMs: 10 },
      ),
    ).rejects.toThrow('up front');
    let calls = 0;
    const wait = purgatory.waitFor(
      ['k'],
      () => {
        if (++calls > 2) throw new Error('later');
        return undefined;
      },
      { timeoutMs: 1000 },
    );
    expect(purgatory.checkAndComplete('k')).toBe(0);
    await expect(wait).rejects.toThrow('later');
    expect(purgatory.metrics()).toMatchObject({ watched: 0, failures: 1 });
  });

  it('many waiters on one key and one waiter on many keys', async () => {
    const { purgatory } = manual();
    const state = new Map<PurgatoryKey, number>();
    const many = Array.from({ length: 1000 }, () =>
      purgatory.waitFor(['hot'], () => state.get('hot'), { timeoutMs: 5000 }),
    );
    const keys = Array.from({ length: 100 }, (_, i) => `p${i}`);
    const wide = purgatory.waitFor(keys, () => state.get('p57'), { timeoutMs: 5000 });
    expect(purgatory.watched()).toBe(1100);
    state.set('hot', 7);
    expect(purgatory.checkAndComplete('hot')).toBe(1000);
    state.set('p57', 1);
    expect(purgatory.checkAndComplete('p3')).toBe(1);
    const results = await Promise.all(many);
    expect(results.every((r) => r.status === 'completed' && r.value === 7)).toBe(true);
    await expect(wide).resolves.toEqual({ status: 'completed', value: 1 });
    expect(purgatory.metrics()).toMatchObject({ watched: 0, watchedKeys: 0, pending: 0 });
  });

  it('one walk settling many waits resolves them in order, resumeBatchSize at a time, before the next turn', async () => {
    const clock = new ManualClock();
    const purgatory = new DelayedOperationPurgatory({ clock, resumeBatchSize: 100 });
    const latest: { value?: number } = {};
    const resolved: number[] = [];
    /** How many waits had resolved when each of the first waits' continuations ran 5 awaits later. */
    const seenByFirst: number[] = [];
    const waits = Array.from({ length: 1000 }, (_, i) =>
      purgatory
        .waitFor(['hot'], () => latest.value, { timeoutMs: 5000 })
        .then(async (outcome) => {
          resolved.push(i);
          if (i < 100) {
            for (let hop = 0; hop < 5; hop++) await null;
            seenByFirst.push(resolved.length);
          }
          return outcome;
        }),
    );
    latest.value = 1;
    expect(purgatory.checkAndComplete('hot')).toBe(1000);
    // Settled at once (the walk is synchronous: metrics and watcher lists are exact) …
    expect(purgatory.metrics()).toMatchObject({ pending: 0, watched: 0, completions: 1000 });
    await new Promise((resolve) => setImmediate(resolve));
    // … resumed in arrival order within the same microtask drain …
    expect(resolved).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    // … and the first batch got ahead: a few awaits later, the second batch had not started.
    expect(Math.max(...seenByFirst)).toBe(100);
    const outcomes = await Promise.all(waits);
    expect(outcomes.every((outcome) => outcome.status === 'completed' && outcome.value === 1)).toBe(true);
  });

  it('an abort or shutdown after a wait settled, before it resumed, leaves its outcome alone', async () => {
    const purgatory = new DelayedOperationPurgatory({ clock: new ManualClock(), resumeBatchSize: 1 });
    const latest: { value?: string } = {};
    const controllers = [new AbortController(), new AbortController(), new AbortController()];
    const waits = controllers.map((controller) =>
      purgatory.waitFor(['k'], () => latest.value, { timeoutMs: 5000, signal: controller.signal }),
    );
    latest.value = 'v';
    purgatory.checkAndComplete('k');
    // Only the first is resumed yet; the others are settled and queued.
    for (const controller of controllers) controller.abort(new AbortedError('too late'));
    purgatory.shutdown();
    for (const wait of waits) await expect(wait).resolves.toEqual({ status: 'completed', value: 'v' });
    expect(purgatory.metrics()).toMatchObject({ completions: 3, aborts: 0, shutdowns: 0 });
  });

  it('rejects a bad resumeBatchSize or resumeSliceMs', () => {
    expect(() => new DelayedOperationPurgatory({ resumeBatchSize: 0 })).toThrow(/resumeBatchSize/);
    expect(() => new DelayedOperationPurgatory({ resumeSliceMs: -5 })).toThrow(/resumeSliceMs/);
  });

  it('random deadlines: nothing expires early and nothing is far late (ManualClock, auto mode)', async () => {
    const clock = new ManualClock({ start: 5000.25 });
    const purgatory = new DelayedOperationPurgatory({ clock });
    const random = seededRandom(11);
    const lateness: number[] = [];
    const waits: Promise<void>[] = [];
    for (let i = 0; i < 2000; i++) {
      const timeoutMs = random() * 500;
      const due = clock.now() + timeoutMs;
      waits.push(
        purgatory
          .waitFor([`k${i % 50}`], () => undefined, { timeoutMs })
          .then((o) => {
            expect(o.status).toBe('expired');
            lateness.push(clock.now() - due);
          }),
      );
      if (i % 20 === 0) await clock.advanceAsync(random() * 3);
    }
    // Advance in 1 ms steps so each expiry is observed at the time it ran.
    for (let t = 0; t < 560; t++) await clock.advanceAsync(1);
    await Promise.all(waits);
    expect(lateness).toHaveLength(2000);
    expect(Math.min(...lateness)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...lateness)).toBeLessThanOrEqual(2);
  });
});
