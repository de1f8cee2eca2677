import { describe, expect, it } from 'vitest';
import type { VisibilityLike } from '../../src/client/activity.js';
import type { PollContext } from '../../src/client/poller-support.js';
import { RetryBudget } from '../../src/client/retry-budget.js';
import { pollReply, ShortPoller, unchangedReply } from '../../src/client/short-poller.js';
import { backoff } from '../../src/core/backoff.js';
import { ManualClock } from '../../src/core/clock.js';
import { AbortedError, HttpError, InvalidArgumentError, TimeoutError } from '../../src/core/errors.js';
import { consume, down, resultAfter, retriesWithin, retryDelays, schedules } from './poller-helpers.js';

interface Status {
  readonly step: number;
  readonly done?: boolean;
}

/** A poll function answering from a script: values, or errors to throw. */
function scripted<T>(answers: readonly (T | Error | (() => T | Promise<T>))[]) {
  const calls: { at: number; context: PollContext<unknown> }[] = [];
  let index = 0;
  return {
    calls,
    poll: (clock: ManualClock) => async (context: PollContext<unknown>) => {
      calls.push({ at: clock.now(), context });
      const answer = answers[Math.min(index++, answers.length - 1)];
      if (answer instanceof Error) throw answer;
      return typeof answer === 'function' ? (answer as () => T | Promise<T>)() : (answer as T);
    },
  };
}

describe('ShortPoller', () => {
  it('asks, waits, asks again until done, resolving result() with the final value', async () => {
    const clock = new ManualClock();
    const script = scripted<Status>([{ step: 1 }, { step: 2 }, { step: 3, done: true }]);
    const poller = new ShortPoller<Status>({
      poll: script.poll(clock),
      interval: 1000,
      jitter: 0,
      done: (value) => value.done === true,
      clock,
    });
    const { result } = await resultAfter(poller, clock, 5000);
    expect(await result).toEqual({ step: 3, done: true });
    expect(script.calls.map((call) => call.at)).toEqual([0, 1000, 2000]);
    expect(script.calls.map((call) => call.context.attempt)).toEqual([1, 2, 3]);
    expect(poller.state).toBe('ended');
    expect(clock.pendingTimers).toBe(0);
    expect(await poller.ended()).toEqual({ reason: 'done', error: undefined, attempts: 3 });
  });

  it('emits update on change only, and passes the last value as the cursor', async () => {
    const clock = new ManualClock();
    const script = scripted<Status>([{ step: 1 }, { step: 1 }, { step: 2 }, { step: 2 }, { step: 2, done: true }]);
    const poller = new ShortPoller<Status>({
      poll: script.poll(clock),
      interval: 100,
      jitter: 0,
      done: (v) => v.done === true,
      clock,
    });
    const updates: Status[] = [];
    const changes: boolean[] = [];
    poller.on('update', (value) => updates.push(value));
    poller.on('response', (info) => changes.push(info.changed));
    poller.start();
    await clock.advanceAsync(1000);
    expect(updates).toEqual([{ step: 1 }, { step: 2 }, { step: 2, done: true }]);
    expect(changes).toEqual([true, false, true, false, true]);
    expect(script.calls[0]?.context.cursor).toBeUndefined();
    expect(script.calls[2]?.context.cursor).toEqual({ step: 1 });
  });

  it('jitters a fixed interval within ±jitter, differently per poll', async () => {
    const clock = new ManualClock({ seed: 7 });
    const poller = new ShortPoller<number>({ poll: async () => 1, interval: 1000, jitter: 0.2, clock });
    const seen = schedules(poller as ShortPoller<unknown>);
    poller.start();
    await clock.advanceAsync(30_000);
    poller.stop();
    expect(seen.length).toBeGreaterThan(20);
    for (const info of seen) {
      expect(info.reason).toBe('interval');
      expect(info.delayMs).toBeGreaterThanOrEqual(800);
      expect(info.delayMs).toBeLessThanOrEqual(1200);
    }
    expect(new Set(seen.map((info) => Math.round(info.delayMs))).size).toBeGreaterThan(10);
  });

  it('polls in lockstep with jitter 0', async () => {
    const clock = new ManualClock();
    const poller = new ShortPoller<number>({ poll: async () => 1, interval: 500, jitter: 0, clock });
    const seen = schedules(poller as ShortPoller<unknown>);
    poller.start();
    await clock.advanceAsync(2000);
    poller.stop();
    expect(seen.map((info) => info.delayMs)).toEqual([500, 500, 500, 500, 500]);
  });

  it('grows a policy interval while nothing changes and starts over on a change', async () => {
    const clock = new ManualClock();
    let value = 0;
    const poller = new ShortPoller<number>({
      poll: async ({ attempt }) => (attempt === 5 ? ++value : value),
      interval: backoff({ strategy: 'none', initial: 100, factor: 2, max: 1000 }),
      clock,
    });
    const seen = schedules(poller as ShortPoller<unknown>);
    poller.start();
    await clock.advanceAsync(100 + 200 + 400 + 800 + 100 + 200);
    poller.stop();
    // Attempt 1 is a change (first value), 2–4 unchanged, 5 a change, 6–7 unchanged.
    expect(seen.map((info) => info.delayMs)).toEqual([100, 200, 400, 800, 100, 200, 400]);
  });

  it('takes an interval function of the last value', async () => {
    const clock = new ManualClock();
    const poller = new ShortPoller<number>({
      poll: async ({ attempt }) => attempt,
      interval: (last, { unchanged }) => (last ?? 0) * 100 + unchanged,
      jitter: 0,
      clock,
    });
    const seen = schedules(poller as ShortPoller<unknown>);
    poller.start();
    await clock.advanceAsync(100 + 200);
    poller.stop();
    expect(seen.map((info) => info.delayMs)).toEqual([100, 200, 300]);
  });

  it('ends with InvalidArgumentError when an interval function returns nonsense', async () => {
    const clock = new ManualClock();
    const poller = new ShortPoller<number>({ poll: async () => 1, interval: () => -5, clock });
    const { result } = await resultAfter(poller, clock, 0);
    await expect(result).rejects.toSatisfy(InvalidArgumentError.is);
  });

  it('honours the server hint as a floor with jitter above it', async () => {
    const clock = new ManualClock({ seed: 3 });
    const poller = new ShortPoller<number>({
      poll: async ({ attempt }) =>
        attempt % 2 === 0 ? unchangedReply({ hintMs: 5000 }) : pollReply(attempt, { hintMs: 5000 }),
      interval: 1000,
      clock,
    });
    const seen = schedules(poller as ShortPoller<unknown>);
    poller.start();
    await clock.advanceAsync(60_000);
    poller.stop();
    expect(seen.length).toBeGreaterThan(5);
    for (const info of seen) {
      expect(info.reason).toBe('hint');
      expect(info.delayMs).toBeGreaterThanOrEqual(5000);
      expect(info.delayMs).toBeLessThanOrEqual(6000);
    }
  });

  it('keeps its own interval when it is longer than the hint', async () => {
    const clock = new ManualClock();
    const poller = new ShortPoller<number>({
      poll: async () => pollReply(1, { hintMs: 100 }),
      interval: 1000,
      jitter: 0,
      clock,
    });
    const seen = schedules(poller as ShortPoller<unknown>);
    poller.start();
    await clock.advanceAsync(0);
    poller.stop();
    expect(seen[0]).toEqual({ attempt: 2, delayMs: 1000, reason: 'interval' });
  });

  it('emits progress when the extracted progress changes', async () => {
    const clock = new ManualClock();
    const values = [
      { percent: 10, note: 'a' },
      { percent: 10, note: 'b' },
      { percent: 50, note: 'c' },
    ];
    const poller = new ShortPoller<{ percent: number; note: string }>({
      poll: async ({ attempt }) => values[Math.min(attempt, 3) - 1]!,
      interval: 10,
      jitter: 0,
      progressOf: (value) => value.percent,
      clock,
    });
    const progress: unknown[] = [];
    poller.on('progress', (p) => progress.push(p));
    poller.start();
    await clock.advanceAsync(100);
    poller.stop();
    expect(progress).toEqual([10, 50]);
  });

  it('retries retryable failures with backoff, reporting attempt, delay and reason', async () => {
    const clock = new ManualClock();
    const script = scripted<Status>([new TypeError('network down'), new HttpError(503), { step: 1, done: true }]);
    const poller = new ShortPoller<Status>({
      poll: script.poll(clock),
      retry: backoff({ strategy: 'none', initial: 300, factor: 2 }),
      done: (v) => v.done === true,
      clock,
    });
    const errors: {
      error: unknown;
      attempt: number;
      failedAttempt: number;
      delayMs: number;
      reason: string;
      failures: number;
    }[] = [];
    poller.on('error', (error, info) => errors.push({ error, ...info }));
    const { result } = await resultAfter(poller, clock, 1000);
    expect(await result).toEqual({ step: 1, done: true });
    expect(errors.map(({ error: _error, ...info }) => info)).toEqual([
      { attempt: 2, failedAttempt: 1, delayMs: 300, reason: 'retry', failures: 1 },
      { attempt: 3, failedAttempt: 2, delayMs: 600, reason: 'retry', failures: 2 },
    ]);
    expect(script.calls.map((call) => call.at)).toEqual([0, 300, 900]);
  });

  it('uses Retry-After of a failure as the floor of its backoff', async () => {
    const clock = new ManualClock();
    const script = scripted<number>([new HttpError(429, { retryAfterMs: 4000 }), 1]);
    const poller = new ShortPoller<number>({
      poll: script.poll(clock),
      retry: backoff({ strategy: 'none', initial: 300 }),
      done: () => true,
      clock,
    });
    const reasons = retryDelays(poller);
    const { result } = await resultAfter(poller, clock, 10_000);
    await result;
    expect(reasons[0]?.[0]).toBe('retry-after');
    expect(reasons[0]?.[1]).toBeGreaterThanOrEqual(4000);
    expect(reasons[0]?.[1]).toBeLessThanOrEqual(4800);
  });

  it('ends on a non-retryable error with that typed error', async () => {
    const clock = new ManualClock();
    const notFound = new HttpError(404);
    const script = scripted<number>([1, notFound]);
    const poller = new ShortPoller<number>({ poll: script.poll(clock), interval: 100, clock });
    const errors: unknown[] = [];
    poller.on('error', (error) => errors.push(error));
    const { result } = await resultAfter(poller, clock, 1000);
    await expect(result).rejects.toBe(notFound);
    expect(errors).toEqual([]);
    expect((await poller.ended()).reason).toBe('failed');
    expect(script.calls).toHaveLength(2);
  });

  it('ends with the failed() error for a final failure value', async () => {
    const clock = new ManualClock();
    const poller = new ShortPoller<Status>({
      poll: async () => ({ step: 9, done: true }),
      done: (v) => v.done === true,
      failed: (v) => (v.step === 9 ? new Error('step 9 failed') : undefined),
      clock,
    });
    const { result } = await resultAfter(poller, clock, 0);
    await expect(result).rejects.toThrow('step 9 failed');
  });

  it('gives up after maxRetries consecutive failures', async () => {
    const clock = new ManualClock();
    const poller = new ShortPoller<number>({
      poll: down,
      retry: backoff({ strategy: 'none', initial: 10 }),
      maxRetries: 2,
      clock,
    });
    const { result } = await resultAfter(poller, clock, 1000);
    await expect(result).rejects.toMatchObject({ code: 'retries-exhausted' });
    expect(poller.attempts).toBe(3);
  });

  it('spends the retry budget and then waits for its refill', async () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ capacity: 2, refillPerSecond: 0.5, depositPerSuccess: 0, clock });
    const poller = new ShortPoller<number>({
      poll: down,
      retry: backoff({ strategy: 'none', initial: 10, factor: 1 }),
      budget,
      clock,
    });
    const delays = await retriesWithin(poller, clock, 10 + 10 + 2000 + 2000);
    expect(delays.slice(0, 4)).toEqual([
      ['retry', 10],
      ['retry', 10],
      ['budget', 1980],
      ['budget', 2000],
    ]);
  });

  it('ends when the budget is exhausted and does not refill with time', async () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ capacity: 1, refillPerSecond: 0, clock });
    const poller = new ShortPoller<number>({
      poll: down,
      retry: backoff({ strategy: 'none', initial: 10 }),
      budget,
      clock,
    });
    const { result } = await resultAfter(poller, clock, 1000);
    await expect(result).rejects.toMatchObject({ code: 'retry-budget-exhausted' });
    expect(poller.attempts).toBe(2);
  });

  it('ends with TimeoutError when the overall timeout passes, aborting the request in flight', async () => {
    const clock = new ManualClock();
    let lastSignal: AbortSignal | undefined;
    const poller = new ShortPoller<number>({
      poll: ({ signal, attempt }) => {
        lastSignal = signal;
        return attempt < 3 ? Promise.resolve(attempt) : new Promise<number>(() => {});
      },
      interval: 1000,
      jitter: 0,
      timeoutMs: 2500,
      clock,
    });
    const { result } = await resultAfter(poller, clock, 3000);
    await expect(result).rejects.toSatisfy(TimeoutError.is);
    expect(lastSignal?.aborted).toBe(true);
    expect((await poller.ended()).reason).toBe('timeout');
    expect(clock.pendingTimers).toBe(0);
  });

  it('counts a request past requestTimeoutMs as a retryable failure', async () => {
    const clock = new ManualClock();
    const signals: AbortSignal[] = [];
    const poller = new ShortPoller<number>({
      poll: ({ signal, attempt }) => {
        signals.push(signal);
        return attempt === 1 ? new Promise<number>(() => {}) : Promise.resolve(attempt);
      },
      requestTimeoutMs: 500,
      retry: backoff({ strategy: 'none', initial: 100 }),
      done: () => true,
      clock,
    });
    const errors: unknown[] = [];
    poller.on('error', (error) => errors.push(error));
    const { result } = await resultAfter(poller, clock, 1000);
    expect(await result).toBe(2);
    expect(TimeoutError.is(errors[0])).toBe(true);
    expect(signals[0]?.aborted).toBe(true);
  });

  it('aborts the request on stop() also without a request deadline', async () => {
    const clock = new ManualClock();
    let requestSignal: AbortSignal | undefined;
    const poller = new ShortPoller<number>({
      poll: ({ signal }) => {
        requestSignal = signal;
        return new Promise<number>(() => {});
      },
      requestTimeoutMs: Number.POSITIVE_INFINITY,
      clock,
    });
    poller.start();
    await clock.advanceAsync(60_000);
    expect(requestSignal?.aborted).toBe(false);
    poller.stop();
    expect(requestSignal?.aborted).toBe(true);
    expect(poller.state).toBe('ended');
    expect(clock.pendingTimers).toBe(0);
  });

  it('stops at once when the signal aborts during the wait', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const script = scripted<number>([1]);
    const poller = new ShortPoller<number>({
      poll: script.poll(clock),
      interval: 1000,
      signal: controller.signal,
      clock,
    });
    const { result } = await resultAfter(poller, clock, 500);
    const reason = new Error('user left');
    controller.abort(reason);
    await expect(result).rejects.toBe(reason);
    await clock.advanceAsync(5000);
    expect(script.calls).toHaveLength(1);
    expect(clock.pendingTimers).toBe(0);
    expect((await poller.ended()).reason).toBe('aborted');
  });

  it('aborts the request in flight when the signal aborts', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    let requestSignal: AbortSignal | undefined;
    const poller = new ShortPoller<number>({
      poll: ({ signal }) => {
        requestSignal = signal;
        return new Promise<number>(() => {});
      },
      signal: controller.signal,
      clock,
    });
    const { result } = await resultAfter(poller, clock, 10);
    controller.abort(new AbortedError('bye'));
    await expect(result).rejects.toSatisfy(AbortedError.is);
    expect(requestSignal?.aborted).toBe(true);
  });

  it('does not start when the signal is already aborted', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    controller.abort(new Error('already'));
    const script = scripted<number>([1]);
    const poller = new ShortPoller<number>({ poll: script.poll(clock), signal: controller.signal, clock });
    await expect(poller.result()).rejects.toThrow('already');
    expect(script.calls).toHaveLength(0);
  });

  it('stop() ends the poller: result() rejects, iterators end normally', async () => {
    const clock = new ManualClock();
    const poller = new ShortPoller<number>({ poll: async ({ attempt }) => attempt, interval: 100, jitter: 0, clock });
    const seen: number[] = [];
    const iterating = (async () => {
      for await (const value of poller) seen.push(value);
    })();
    await clock.advanceAsync(250);
    poller.stop();
    await iterating;
    await expect(poller.result()).rejects.toSatisfy(AbortedError.is);
    expect(seen).toEqual([1, 2, 3]);
    expect((await poller.ended()).reason).toBe('stopped');
  });

  it('yields each distinct update through for await, ending after the final one', async () => {
    const clock = new ManualClock();
    const script = scripted<Status>([{ step: 1 }, { step: 1 }, { step: 2 }, { step: 3, done: true }]);
    const poller = new ShortPoller<Status>({
      poll: script.poll(clock),
      interval: 10,
      jitter: 0,
      done: (v) => v.done === true,
      clock,
    });
    const seen: Status[] = [];
    const iterating = (async () => {
      for await (const value of poller) seen.push(value);
    })();
    await clock.advanceAsync(100);
    await iterating;
    expect(seen).toEqual([{ step: 1 }, { step: 2 }, { step: 3, done: true }]);
  });

  it('throws the failure through for await', async () => {
    const clock = new ManualClock();
    const script = scripted<number>([1, new HttpError(400)]);
    const poller = new ShortPoller<number>({ poll: script.poll(clock), interval: 10, clock });
    const seen: number[] = [];
    const failure = consume(poller, seen);
    await clock.advanceAsync(100);
    expect(HttpError.is(await failure)).toBe(true);
    expect(seen).toEqual([1]);
  });

  it('stops when the consumer breaks out of for await', async () => {
    const clock = new ManualClock();
    const poller = new ShortPoller<number>({ poll: async ({ attempt }) => attempt, interval: 10, jitter: 0, clock });
    const iterating = (async () => {
      for await (const value of poller) if (value === 2) break;
    })();
    await clock.advanceAsync(100);
    await iterating;
    expect(poller.state).toBe('ended');
    expect(poller.attempts).toBe(2);
  });

  it('offers a promise per event through waitFor, rejecting if the poller ends first', async () => {
    const clock = new ManualClock();
    const poller = new ShortPoller<Status>({
      poll: async ({ attempt }) => ({ step: attempt, done: attempt === 2 }),
      interval: 10,
      jitter: 0,
      done: (v) => v.done === true,
      clock,
    });
    const firstUpdate = poller.waitFor('update');
    const result = poller.waitFor('result');
    const error = poller.waitFor('error').catch((reason: unknown) => reason);
    poller.start();
    await clock.advanceAsync(100);
    expect(await firstUpdate).toEqual({ step: 1, done: false });
    expect(await result).toEqual({ step: 2, done: true });
    expect(AbortedError.is(await error)).toBe(true);
    expect((await poller.waitFor('end')).reason).toBe('done');
  });

  it('pauses while the page is hidden and polls at once when it is shown again', async () => {
    const clock = new ManualClock();
    const listeners = new Set<() => void>();
    const document: VisibilityLike & { visibilityState: string } = {
      visibilityState: 'visible',
      addEventListener: (_type, listener) => listeners.add(listener),
      removeEventListener: (_type, listener) => listeners.delete(listener),
    };
    const script = scripted<number>([1]);
    const poller = new ShortPoller<number>({
      poll: script.poll(clock),
      interval: 1000,
      jitter: 0,
      pauseWhenHidden: document,
      clock,
    });
    const events: string[] = [];
    poller.on('pause', (info) => events.push(`pause:${info.reason}`));
    poller.on('resume', (info) => events.push(`resume:${info.pausedMs}`));
    poller.start();
    await clock.advanceAsync(100);
    document.visibilityState = 'hidden';
    for (const listener of listeners) listener();
    await clock.advanceAsync(10_000);
    expect(script.calls.map((call) => call.at)).toEqual([0]);
    document.visibilityState = 'visible';
    for (const listener of [...listeners]) listener();
    await clock.advanceAsync(0);
    expect(script.calls.map((call) => call.at)).toEqual([0, 10_100]);
    // Paused from the moment the 1000 ms wait ended with the page hidden, until it was shown at 10 100 ms.
    expect(events).toEqual(['pause:hidden', 'resume:9100']);
    expect(listeners.size).toBe(0);
    poller.stop();
  });

  it('is inert in Node when asked to pause when hidden or offline', async () => {
    const clock = new ManualClock();
    const poller = new ShortPoller<number>({
      poll: async () => 1,
      done: () => true,
      pauseWhenHidden: true,
      pauseWhenOffline: true,
      clock,
    });
    const { result } = await resultAfter(poller, clock, 0);
    expect(await result).toBe(1);
  });

  it('ends with the error thrown by a callback instead of spinning', async () => {
    const clock = new ManualClock();
    const poller = new ShortPoller<number>({
      poll: async () => 1,
      done: () => {
        throw new Error('bug in done');
      },
      clock,
    });
    const { result } = await resultAfter(poller, clock, 0);
    await expect(result).rejects.toThrow('bug in done');
  });

  it('validates its options', () => {
    const poll = async (): Promise<number> => 1;
    // @ts-expect-error poll is required
    expect(() => new ShortPoller({})).toThrow(InvalidArgumentError);
    expect(() => new ShortPoller({ poll, interval: -1 })).toThrow(InvalidArgumentError);
    expect(() => new ShortPoller({ poll, jitter: 2 })).toThrow(InvalidArgumentError);
    expect(() => new ShortPoller({ poll, timeoutMs: 0 })).toThrow(InvalidArgumentError);
    expect(() => new ShortPoller({ poll, requestTimeoutMs: Number.NaN })).toThrow(InvalidArgumentError);
    // @ts-expect-error a wrong type on purpose
    expect(() => new ShortPoller({ poll, interval: 'often' })).toThrow(InvalidArgumentError);
    // @ts-expect-error a wrong type on purpose
    expect(() => new ShortPoller({ poll, budget: {} })).toThrow(InvalidArgumentError);
  });
});
