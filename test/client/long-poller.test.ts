import { describe, expect, it } from 'vitest';
import type { NetworkLike } from '../../src/client/activity.js';
import { type LongPollBatch, type LongPollContext, LongPoller } from '../../src/client/long-poller.js';
import { RetryBudget } from '../../src/client/retry-budget.js';
import { backoff } from '../../src/core/backoff.js';
import { ManualClock } from '../../src/core/clock.js';
import {
  AbortedError,
  HttpError,
  InvalidArgumentError,
  OffsetGoneError,
  ProtocolError,
  TimeoutError,
} from '../../src/core/errors.js';
import { consume, down, resultAfter, retriesWithin, schedules } from './poller-helpers.js';

/** A simulated log served by long polls: records appear when `append` is called; held requests wake. */
class FakeLog {
  readonly values: string[] = [];
  readonly requests: { at: number; context: LongPollContext<number> }[] = [];
  earliest = 0;
  #wake: (() => void)[] = [];
  constructor(readonly clock: ManualClock) {}

  append(...values: string[]): void {
    this.values.push(...values);
    for (const wake of this.#wake.splice(0)) wake();
  }

  readonly poll = (context: LongPollContext<number>): Promise<LongPollBatch<string, number>> => {
    this.requests.push({ at: this.clock.now(), context });
    const from = context.cursor ?? 0;
    if (from < this.earliest) {
      return Promise.reject(new OffsetGoneError('log', from, { earliestOffset: this.earliest, epoch: 'e2' }));
    }
    const answer = (): LongPollBatch<string, number> => ({
      records: this.values.slice(from),
      cursor: Math.max(from, this.values.length),
    });
    if (this.values.length > from) return Promise.resolve(answer());
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.#wake = this.#wake.filter((wake) => wake !== onWake);
        resolve(answer());
      }, context.waitMs);
      const onWake = (): void => {
        this.clock.clearTimeout(timer);
        resolve(answer());
      };
      this.#wake.push(onWake);
      context.signal.addEventListener('abort', () => {
        this.clock.clearTimeout(timer);
        reject(context.signal.reason);
      });
    });
  };
}

describe('LongPoller', () => {
  it('re-arms at once after each answer, carrying the cursor, and yields records in order', async () => {
    const clock = new ManualClock();
    const log = new FakeLog(clock);
    const poller = new LongPoller<string, number>({ poll: log.poll, cursor: 0, waitMs: 25_000, clock });
    const seen: string[] = [];
    const batches: [readonly string[], number | undefined, number][] = [];
    poller.on('data', (records, info) => batches.push([records, info.previous, info.cursor]));
    const iterating = (async () => {
      for await (const value of poller) {
        seen.push(value);
        if (value === 'd') break;
      }
    })();
    await clock.advanceAsync(1000);
    log.append('a', 'b');
    await clock.advanceAsync(500);
    log.append('c');
    await clock.advanceAsync(0);
    log.append('d');
    await clock.advanceAsync(0);
    await iterating;
    expect(seen).toEqual(['a', 'b', 'c', 'd']);
    expect(batches).toEqual([
      [['a', 'b'], 0, 2],
      [['c'], 2, 3],
      [['d'], 3, 4],
    ]);
    expect(log.requests.map((r) => [r.at, r.context.cursor, r.context.waitMs])).toEqual([
      [0, 0, 25_000],
      [1000, 2, 25_000],
      [1500, 3, 25_000],
      [1500, 4, 25_000],
    ]);
    expect(poller.state).toBe('ended');
  });

  it('treats an empty answer at timeout as normal and re-arms', async () => {
    const clock = new ManualClock();
    const log = new FakeLog(clock);
    const poller = new LongPoller<string, number>({ poll: log.poll, waitMs: 25_000, clock });
    const seen = schedules(poller as LongPoller<unknown, unknown>);
    const errors: unknown[] = [];
    poller.on('error', (error) => errors.push(error));
    poller.start();
    await clock.advanceAsync(75_000);
    poller.stop();
    expect(errors).toEqual([]);
    expect(log.requests.map((r) => r.at)).toEqual([0, 25_000, 50_000, 75_000]);
    expect(seen.slice(0, 3)).toEqual([
      { attempt: 2, delayMs: 0, reason: 'rearm' },
      { attempt: 3, delayMs: 0, reason: 'rearm' },
      { attempt: 4, delayMs: 0, reason: 'rearm' },
    ]);
  });

  it('keeps minIntervalMs between requests when a server answers "nothing" at once', async () => {
    const clock = new ManualClock();
    const starts: number[] = [];
    const poller = new LongPoller<string, number>({
      poll: async () => {
        starts.push(clock.now());
        return { records: [], cursor: 0 };
      },
      minIntervalMs: 1000,
      clock,
    });
    const seen = schedules(poller as LongPoller<unknown, unknown>);
    poller.start();
    await clock.advanceAsync(3000);
    poller.stop();
    expect(starts).toEqual([0, 1000, 2000, 3000]);
    expect(seen[0]).toEqual({ attempt: 2, delayMs: 1000, reason: 'min-interval' });
  });

  it('uses a hint from the answer as the floor of the re-arm delay', async () => {
    const clock = new ManualClock();
    const poller = new LongPoller<string, number>({
      poll: async () => ({ records: ['x'], cursor: 1, hintMs: 2000 }),
      clock,
    });
    const seen = schedules(poller as LongPoller<unknown, unknown>);
    poller.start();
    await clock.advanceAsync(0);
    poller.stop();
    expect(seen[0]?.reason).toBe('hint');
    expect(seen[0]?.delayMs).toBeGreaterThanOrEqual(2000);
    expect(seen[0]?.delayMs).toBeLessThanOrEqual(2400);
  });

  it('backs off failures with jitter inside the policy bounds', async () => {
    const clock = new ManualClock({ seed: 11 });
    const poller = new LongPoller<string, number>({
      poll: async () => {
        throw new HttpError(503);
      },
      retry: backoff({ strategy: 'equal', initial: 1000, factor: 2, max: 8000 }),
      budget: false,
      clock,
    });
    const delays: number[] = [];
    poller.on('error', (_error, info) => delays.push(info.delayMs));
    poller.start();
    await clock.advanceAsync(120_000);
    poller.stop();
    expect(delays.length).toBeGreaterThan(8);
    delays.forEach((delay, index) => {
      const curve = Math.min(8000, 1000 * 2 ** index);
      expect(delay).toBeGreaterThanOrEqual(curve / 2);
      expect(delay).toBeLessThanOrEqual(curve);
    });
    expect(new Set(delays.slice(4)).size).toBeGreaterThan(1);
  });

  it('resets the backoff only after a stable run of successes', async () => {
    const clock = new ManualClock();
    // f = failure, s = success (an empty answer)
    const pattern = 'ffsfssf';
    let index = 0;
    const poller = new LongPoller<string, number>({
      poll: async ({ signal }) => {
        const step = pattern[index++];
        if (step === 'f') throw new TypeError('reset by peer');
        // After the script, hold the request like an idle server would.
        if (step === undefined) await new Promise((_resolve, reject) => signal.addEventListener('abort', reject));
        return { records: ['r'], cursor: index };
      },
      retry: backoff({ strategy: 'none', initial: 100, factor: 2, max: 10_000 }),
      resetAfterSuccesses: 2,
      budget: false,
      clock,
    });
    const errors: [number, number][] = [];
    poller.on('error', (_error, info) => errors.push([info.delayMs, info.failures]));
    poller.start();
    await clock.advanceAsync(10_000);
    poller.stop();
    // One success between failures keeps the backoff growing; two in a row reset it.
    expect(errors).toEqual([
      [100, 1],
      [200, 2],
      [400, 3],
      [100, 1],
    ]);
  });

  it('spends the retry budget and then waits for its refill', async () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ capacity: 2, refillPerSecond: 0.25, depositPerSuccess: 0, clock });
    const poller = new LongPoller<string, number>({
      poll: down,
      retry: backoff({ strategy: 'none', initial: 100, factor: 1 }),
      budget,
      clock,
    });
    const errors = await retriesWithin(poller, clock, 100 + 100 + 3800 + 4000);
    expect(errors.slice(0, 4)).toEqual([
      ['retry', 100],
      ['retry', 100],
      ['budget', 3800],
      ['budget', 4000],
    ]);
    // Over 8 s: the first request, the burst of 2 retries, then one retry per 4 s refill.
    expect(poller.attempts).toBe(5);
  });

  it('refills the budget with successes', async () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ capacity: 1, refillPerSecond: 0, depositPerSuccess: 0.5, clock });
    const pattern = 'fssff';
    let index = 0;
    const poller = new LongPoller<string, number>({
      poll: async () => {
        const step = pattern[index++] ?? 'f';
        if (step === 'f') throw new TypeError('down');
        return { records: ['x'], cursor: index };
      },
      retry: backoff({ strategy: 'none', initial: 10 }),
      budget,
      clock,
    });
    const { result } = await resultAfter(poller, clock, 1000);
    // f (token 1 → 0), s, s (→ 1), f (→ 0), f: nothing left and no time refill.
    await expect(result).rejects.toMatchObject({ code: 'retry-budget-exhausted' });
    expect(poller.attempts).toBe(5);
  });

  it('surfaces a gone cursor as a gone event and a typed error, never a silent skip', async () => {
    const clock = new ManualClock();
    const log = new FakeLog(clock);
    log.append('a', 'b', 'c');
    log.earliest = 2;
    const poller = new LongPoller<string, number>({ poll: log.poll, cursor: 0, clock });
    const gone: [number, unknown][] = [];
    poller.on('gone', (error, info) => gone.push([error.earliestOffset, info.resumeFrom]));
    const seen: string[] = [];
    const failure = consume(poller, seen);
    await clock.advanceAsync(0);
    const error = await failure;
    expect(OffsetGoneError.is(error)).toBe(true);
    expect((error as OffsetGoneError).earliestOffset).toBe(2);
    expect(gone).toEqual([[2, undefined]]);
    expect(seen).toEqual([]);
    await expect(poller.result()).rejects.toBe(error);
  });

  it('resumes knowingly from the cursor onGone returns', async () => {
    const clock = new ManualClock();
    const log = new FakeLog(clock);
    log.append('a', 'b', 'c');
    log.earliest = 2;
    const poller = new LongPoller<string, number>({
      poll: log.poll,
      cursor: 0,
      onGone: (error) => error.earliestOffset,
      clock,
    });
    const gone: unknown[] = [];
    poller.on('gone', (_error, info) => gone.push(info.resumeFrom));
    const records = poller.waitFor('data');
    poller.start();
    await clock.advanceAsync(0);
    expect(await records).toEqual(['c']);
    expect(gone).toEqual([2]);
    poller.stop();
  });

  it('ends rather than loop when onGone keeps pointing at a gone cursor', async () => {
    const clock = new ManualClock();
    const log = new FakeLog(clock);
    log.earliest = 5;
    const poller = new LongPoller<string, number>({ poll: log.poll, cursor: 0, onGone: () => 1, clock });
    const { result } = await resultAfter(poller, clock, 0);
    await expect(result).rejects.toSatisfy(OffsetGoneError.is);
    expect(log.requests).toHaveLength(4);
  });

  it('gives each request a client deadline above the server wait, retrying when it passes', async () => {
    const clock = new ManualClock();
    const signals: AbortSignal[] = [];
    const poller = new LongPoller<string, number>({
      poll: ({ signal, attempt }) => {
        signals.push(signal);
        return attempt === 1 ? new Promise(() => {}) : Promise.resolve({ records: ['late'], cursor: 1, done: true });
      },
      waitMs: 20_000,
      retry: backoff({ strategy: 'none', initial: 100 }),
      clock,
    });
    const errors: unknown[] = [];
    poller.on('error', (error) => errors.push(error));
    const { result } = await resultAfter(poller, clock, 29_999);
    expect(errors).toEqual([]);
    await clock.advanceAsync(1 + 100);
    expect(await result).toBe('late');
    expect(TimeoutError.is(errors[0])).toBe(true);
    expect(signals[0]?.aborted).toBe(true);
  });

  it('refuses a request timeout that does not exceed the wait', () => {
    const poll = async (): Promise<LongPollBatch<string, number>> => ({ records: [], cursor: 0 });
    expect(() => new LongPoller({ poll, waitMs: 30_000, requestTimeoutMs: 30_000 })).toThrow(InvalidArgumentError);
    expect(() => new LongPoller({ poll, waitMs: 30_000, requestTimeoutMs: 31_000 })).not.toThrow();
  });

  it('aborts the held request when the signal aborts', async () => {
    const clock = new ManualClock();
    const log = new FakeLog(clock);
    const controller = new AbortController();
    const poller = new LongPoller<string, number>({ poll: log.poll, signal: controller.signal, clock });
    const ended = poller.ended();
    poller.start();
    await clock.advanceAsync(5000);
    const reason = new AbortedError('navigated away');
    controller.abort(reason);
    const info = await ended;
    expect(info).toEqual({ reason: 'aborted', error: reason, attempts: 1 });
    expect(log.requests[0]?.context.signal.aborted).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it('stops during a backoff wait without another request', async () => {
    const clock = new ManualClock();
    let calls = 0;
    const poller = new LongPoller<string, number>({
      poll: async () => {
        calls++;
        throw new HttpError(500);
      },
      retry: backoff({ strategy: 'none', initial: 5000 }),
      clock,
    });
    poller.start();
    await clock.advanceAsync(1000);
    poller.stop();
    await clock.advanceAsync(60_000);
    expect(calls).toBe(1);
    expect((await poller.ended()).reason).toBe('stopped');
    expect(clock.pendingTimers).toBe(0);
  });

  it('ends on a non-retryable error', async () => {
    const clock = new ManualClock();
    const poller = new LongPoller<string, number>({
      poll: async () => {
        throw new HttpError(404);
      },
      clock,
    });
    const { result } = await resultAfter(poller, clock, 0);
    await expect(result).rejects.toMatchObject({ status: 404 });
    expect(poller.attempts).toBe(1);
  });

  it('ends with ProtocolError when the poll function answers nonsense', async () => {
    const clock = new ManualClock();
    const poller = new LongPoller<string, number>({
      // @ts-expect-error a wrong shape on purpose
      poll: async () => ({ items: [] }),
      clock,
    });
    const { result } = await resultAfter(poller, clock, 0);
    await expect(result).rejects.toSatisfy(ProtocolError.is);
  });

  it('ends after a done batch, resolving result() with the last record, or rejecting through failed()', async () => {
    const clock = new ManualClock();
    const ok = new LongPoller<string, number>({
      poll: async ({ attempt }) => ({ records: [`v${attempt}`], cursor: attempt, done: attempt === 3 }),
      clock,
    });
    const { result: okResult } = await resultAfter(ok, clock, 0);
    expect(await okResult).toBe('v3');
    const bad = new LongPoller<string, number>({
      poll: async () => ({ records: ['broken'], cursor: 1, done: true }),
      failed: (last) => (last === 'broken' ? new Error('job failed') : undefined),
      clock,
    });
    const { result: badResult } = await resultAfter(bad, clock, 0);
    await expect(badResult).rejects.toThrow('job failed');
  });

  it('holds back while an iterator lags beyond highWaterMark', async () => {
    const clock = new ManualClock();
    let calls = 0;
    const poller = new LongPoller<number, number>({
      poll: async ({ cursor }) => {
        calls++;
        const from = cursor ?? 0;
        return { records: [from, from + 1], cursor: from + 2 };
      },
      highWaterMark: 4,
      clock,
    });
    const iterator = poller[Symbol.asyncIterator]();
    await clock.advanceAsync(0);
    expect(calls).toBe(2);
    expect((await iterator.next()).value).toBe(0);
    expect((await iterator.next()).value).toBe(1);
    await clock.advanceAsync(0);
    expect(calls).toBe(3);
    await iterator.return?.();
    expect(poller.state).toBe('ended');
  });

  it('pauses while offline and asks at once when back online', async () => {
    const clock = new ManualClock();
    const listeners = new Map<string, Set<() => void>>();
    const network: NetworkLike & { navigator: { onLine: boolean } } = {
      navigator: { onLine: false },
      events: {
        addEventListener: (type, listener) => {
          if (!listeners.has(type)) listeners.set(type, new Set());
          listeners.get(type)!.add(listener);
        },
        removeEventListener: (type, listener) => listeners.get(type)?.delete(listener),
      },
    };
    const log = new FakeLog(clock);
    const poller = new LongPoller<string, number>({ poll: log.poll, pauseWhenOffline: network, clock });
    const paused = poller.waitFor('pause');
    poller.start();
    await clock.advanceAsync(60_000);
    expect(await paused).toEqual({ reason: 'offline' });
    expect(log.requests).toHaveLength(0);
    network.navigator.onLine = true;
    for (const listener of [...(listeners.get('online') ?? [])]) listener();
    await clock.advanceAsync(0);
    expect(log.requests.map((r) => r.at)).toEqual([60_000]);
    expect([...listeners.values()].every((set) => set.size === 0)).toBe(true);
    poller.stop();
  });

  it('validates its options', () => {
    const poll = async (): Promise<LongPollBatch<string, number>> => ({ records: [], cursor: 0 });
    // @ts-expect-error poll is required
    expect(() => new LongPoller({})).toThrow(InvalidArgumentError);
    expect(() => new LongPoller({ poll, waitMs: -1 })).toThrow(InvalidArgumentError);
    expect(() => new LongPoller({ poll, resetAfterSuccesses: 0 })).toThrow(InvalidArgumentError);
    expect(() => new LongPoller({ poll, highWaterMark: 0.5 })).toThrow(InvalidArgumentError);
    expect(() => new LongPoller({ poll, minIntervalMs: Number.POSITIVE_INFINITY })).toThrow(InvalidArgumentError);
    // @ts-expect-error a wrong type on purpose
    expect(() => new LongPoller({ poll, onGone: 1 })).toThrow(InvalidArgumentError);
  });
});
