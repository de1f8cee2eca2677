import { getEventListeners } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { backoff } from '../../src/core/backoff.js';
import { ManualClock } from '../../src/core/clock.js';
import { HttpError, InvalidArgumentError, PollkitError, TimeoutError } from '../../src/core/errors.js';
import { retry, type RetryContext } from '../../src/core/retry.js';

/** An operation that fails `failures` times with `error()`, then resolves with `value`. */
function flaky<T>(failures: number, value: T, error: () => unknown = () => new Error('transient')) {
  const calls: number[] = [];
  const operation = vi.fn(async (attemptNumber: number): Promise<T> => {
    calls.push(attemptNumber);
    if (calls.length <= failures) throw error();
    return value;
  });
  return { operation, calls };
}

/** Runs `promise` to completion while driving the clock, recording when (in clock time) it settled. */
async function drive<T>(clock: ManualClock, promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  let outcome: { value?: T; error?: unknown } | undefined;
  promise.then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { error }),
  );
  for (let i = 0; i < 1000 && outcome === undefined; i++) await clock.runAllAsync(1);
  if (outcome === undefined) throw new Error('the retry never settled');
  return outcome;
}

const none = backoff({ strategy: 'none', initial: 100, factor: 2, max: 10_000 });

describe('retry()', () => {
  it('succeeds after N failures, waiting the policy delays on the injected clock', async () => {
    const clock = new ManualClock();
    const { operation, calls } = flaky(3, 'ok');
    const times: number[] = [];
    operation.mockImplementation(async (attemptNumber: number) => {
      times.push(clock.now());
      calls.push(attemptNumber);
      if (calls.length <= 3) throw new Error('transient');
      return 'ok';
    });
    const result = retry(operation, { policy: none, clock });
    await clock.advanceAsync(0);
    expect(times).toEqual([0]);
    await clock.advanceAsync(99);
    expect(times).toEqual([0]);
    await clock.advanceAsync(1);
    expect(times).toEqual([0, 100]);
    await clock.advanceAsync(200);
    expect(times).toEqual([0, 100, 300]);
    await clock.advanceAsync(400);
    await expect(result).resolves.toBe('ok');
    expect(times).toEqual([0, 100, 300, 700]);
    expect(calls).toEqual([1, 2, 3, 4]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('draws jitter from the clock, per attempt', async () => {
    const clock = new ManualClock({ random: () => 0.5 });
    const delays: number[] = [];
    const { operation } = flaky(3, 'ok');
    const result = drive(
      clock,
      retry(operation, {
        policy: backoff({ strategy: 'full', initial: 1000 }),
        clock,
        onRetry: ({ delayMs }) => delays.push(delayMs),
      }),
    );
    expect((await result).value).toBe('ok');
    expect(delays).toEqual([500, 1000, 2000]);
    expect(clock.now()).toBe(3500);
  });

  it('uses a full-jitter 1 s policy by default', async () => {
    const clock = new ManualClock({ random: () => 0.25 });
    const delays: number[] = [];
    const { operation } = flaky(2, 'ok');
    await drive(clock, retry(operation, { clock, onRetry: ({ delayMs }) => delays.push(delayMs) }));
    expect(delays).toEqual([250, 500]);
  });

  it('stops at once on a non-retryable PollkitError', async () => {
    const clock = new ManualClock();
    const fatal = new HttpError(404);
    const { operation } = flaky(5, 'never', () => fatal);
    const outcome = await drive(clock, retry(operation, { policy: none, clock }));
    expect(outcome.error).toBe(fatal);
    expect(operation).toHaveBeenCalledTimes(1);
    expect(clock.now()).toBe(0);
  });

  it('retries a retryable PollkitError', async () => {
    const clock = new ManualClock();
    const { operation } = flaky(2, 'ok', () => new HttpError(503));
    expect((await drive(clock, retry(operation, { policy: none, clock }))).value).toBe('ok');
    expect(operation).toHaveBeenCalledTimes(3);
  });

  it('honours the retries limit and rejects with the last error', async () => {
    const clock = new ManualClock();
    let n = 0;
    const operation = vi.fn(async () => {
      throw new TimeoutError(`attempt ${++n}`);
    });
    const outcome = await drive(clock, retry(operation, { retries: 2, policy: none, clock }));
    expect(operation).toHaveBeenCalledTimes(3);
    expect((outcome.error as Error).message).toBe('attempt 3');
    expect(clock.now()).toBe(300);
  });

  it('defaults to 5 retries', async () => {
    const clock = new ManualClock();
    const { operation } = flaky(100, 'never');
    await drive(clock, retry(operation, { policy: none, clock }));
    expect(operation).toHaveBeenCalledTimes(6);
  });

  it('retries: 0 calls once', async () => {
    const { operation } = flaky(1, 'never');
    await expect(retry(operation, { retries: 0, policy: none, clock: new ManualClock() })).rejects.toThrow('transient');
    expect(operation).toHaveBeenCalledTimes(1);
  });

  it('retries: Infinity keeps going', async () => {
    const clock = new ManualClock();
    const { operation } = flaky(50, 'finally');
    expect(
      (await drive(clock, retry(operation, { retries: Number.POSITIVE_INFINITY, policy: none, clock }))).value,
    ).toBe('finally');
    expect(operation).toHaveBeenCalledTimes(51);
  });

  it.each([-1, 1.5, Number.NaN])('rejects retries = %s with InvalidArgumentError', async (retries) => {
    const operation = vi.fn(async () => 1);
    const error = await retry(operation, { retries }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).argument).toBe('retries');
    expect(operation).not.toHaveBeenCalled();
  });

  it('takes a hint as a floor for the delay', async () => {
    const clock = new ManualClock({ random: () => 0 });
    const delays: number[] = [];
    const { operation } = flaky(2, 'ok', () => new HttpError(503, { retryAfterMs: 5000 }));
    await drive(
      clock,
      retry(operation, {
        policy: none,
        clock,
        hint: (error) => (HttpError.is(error) ? error.retryAfterMs : undefined),
        onRetry: ({ delayMs }) => delays.push(delayMs),
      }),
    );
    expect(delays).toEqual([5000, 5000]);
    expect(clock.now()).toBe(10_000);
  });

  it('keeps the policy delay when it exceeds the hint', async () => {
    const clock = new ManualClock({ random: () => 0 });
    const delays: number[] = [];
    const { operation } = flaky(1, 'ok');
    await drive(
      clock,
      retry(operation, {
        policy: backoff({ strategy: 'none', initial: 8000 }),
        clock,
        hint: () => 1000,
        onRetry: ({ delayMs }) => delays.push(delayMs),
      }),
    );
    expect(delays).toEqual([8000]);
  });

  it('calls onRetry with the attempt, retries left, error and delay, before each delay', async () => {
    const clock = new ManualClock();
    const seen: (Omit<RetryContext, 'error'> & { message: string; delayMs: number; at: number })[] = [];
    let n = 0;
    const operation = async (): Promise<string> => {
      if (++n <= 2) throw new Error(`failure ${n}`);
      return 'ok';
    };
    await drive(
      clock,
      retry(operation, {
        retries: 4,
        policy: none,
        clock,
        onRetry: ({ attemptNumber, retriesLeft, error, delayMs }) =>
          seen.push({ attemptNumber, retriesLeft, message: error.message, delayMs, at: clock.now() }),
      }),
    );
    expect(seen).toEqual([
      { attemptNumber: 1, retriesLeft: 4, message: 'failure 1', delayMs: 100, at: 0 },
      { attemptNumber: 2, retriesLeft: 3, message: 'failure 2', delayMs: 200, at: 100 },
    ]);
  });

  it('lets a custom shouldRetry decide', async () => {
    const clock = new ManualClock();
    const decisions: number[] = [];
    const { operation } = flaky(5, 'never', () => new HttpError(503));
    const outcome = await drive(
      clock,
      retry(operation, {
        policy: none,
        clock,
        shouldRetry: ({ attemptNumber }) => {
          decisions.push(attemptNumber);
          return attemptNumber < 2;
        },
      }),
    );
    expect(HttpError.is(outcome.error)).toBe(true);
    expect(decisions).toEqual([1, 2]);
    expect(operation).toHaveBeenCalledTimes(2);
  });

  it('does not retry a TypeError that is not a network error (p-retry rule), nor consult shouldRetry', async () => {
    // p-retry treats a TypeError as a programming mistake unless it is one of the known network
    // failure messages, and rethrows it after the first attempt, before any shouldRetry hook runs.
    const clock = new ManualClock();
    const shouldRetry = vi.fn(() => true);
    const bug = new TypeError('undefined is not a function');
    const { operation } = flaky(1, 'ok', () => bug);
    const outcome = await drive(clock, retry(operation, { policy: none, clock, shouldRetry }));
    expect(outcome.error).toBe(bug);
    expect(operation).toHaveBeenCalledTimes(1);
    expect(shouldRetry).not.toHaveBeenCalled();
  });

  it('retries a TypeError that is a fetch network error', async () => {
    const clock = new ManualClock();
    const { operation } = flaky(2, 'ok', () => new TypeError('fetch failed'));
    expect((await drive(clock, retry(operation, { policy: none, clock }))).value).toBe('ok');
    expect(operation).toHaveBeenCalledTimes(3);
  });

  it('does not retry a thrown non-Error (normalised to a TypeError by p-retry)', async () => {
    const clock = new ManualClock();
    const { operation } = flaky(1, 'ok', () => 'a string');
    const outcome = await drive(clock, retry(operation, { policy: none, clock }));
    expect(outcome.error).toBeInstanceOf(TypeError);
    expect(operation).toHaveBeenCalledTimes(1);
  });

  it('rejects with the signal reason when aborted during a delay, leaving no timer or listener', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const { operation } = flaky(10, 'never');
    const result = retry(operation, { policy: none, clock, signal: controller.signal });
    result.catch(() => {});
    await clock.advanceAsync(0);
    expect(clock.pendingTimers).toBe(1);
    const reason = new Error('user gave up');
    controller.abort(reason);
    await expect(result).rejects.toBe(reason);
    expect(clock.pendingTimers).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    expect(operation).toHaveBeenCalledTimes(1);
  });

  it('rejects at once with a pre-aborted signal without calling the operation', async () => {
    const controller = new AbortController();
    controller.abort(new Error('already'));
    const operation = vi.fn(async () => 1);
    await expect(retry(operation, { signal: controller.signal, clock: new ManualClock() })).rejects.toThrow('already');
    expect(operation).not.toHaveBeenCalled();
  });

  it('stops retrying when the signal aborts during an attempt', async () => {
    const clock = new ManualClock();
    const controller = new AbortController();
    const reason = new Error('stop');
    const operation = vi.fn(async () => {
      controller.abort(reason);
      throw new Error('transient');
    });
    const outcome = await drive(clock, retry(operation, { policy: none, clock, signal: controller.signal }));
    expect(outcome.error).toBe(reason);
    expect(operation).toHaveBeenCalledTimes(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('returns the result of the first success without any delay', async () => {
    const clock = new ManualClock();
    await expect(retry(async (attempt) => `attempt ${attempt}`, { clock })).resolves.toBe('attempt 1');
    expect(clock.now()).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('does not retry a PollkitError constructed with retryable: false', async () => {
    const clock = new ManualClock();
    const fatal = new PollkitError('no', 'custom', { retryable: false });
    const { operation } = flaky(1, 'ok', () => fatal);
    expect((await drive(clock, retry(operation, { policy: none, clock }))).error).toBe(fatal);
  });
});
