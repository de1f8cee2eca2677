/**
 * Retrying an async operation with a pollkit backoff policy, on top of p-retry's attempt loop.
 *
 * @module
 */
import pRetry from 'p-retry';
import { sleep } from './abort.js';
import { Backoff, type BackoffPolicy, backoff } from './backoff.js';
import { type Clock, systemClock } from './clock.js';
import { InvalidArgumentError, PollkitError } from './errors.js';

/** What a retry decision sees. */
export interface RetryContext {
  /** The failure, always an `Error`. */
  readonly error: Error;
  /** 1 for the first call, 2 for the first retry, … */
  readonly attemptNumber: number;
  /** Retries still allowed. */
  readonly retriesLeft: number;
}

/** Options for {@link retry}. */
export interface RetryOptions {
  /**
   * Retries after the first attempt: an integer >= 0, or `Infinity` to retry until aborted. Default `5`.
   */
  readonly retries?: number;
  /** The delay policy. Default `backoff()` (full jitter, 1 s, ×2, 30 s cap). */
  readonly policy?: BackoffPolicy;
  /**
   * Whether a failure is worth retrying. Default: pollkit errors retry when `retryable`, other errors
   * retry (network failures surface as plain errors from `fetch`). Not consulted for a `TypeError`
   * that is not a network error, nor for a thrown non-`Error`: those are programming mistakes and
   * end the retries at once (p-retry's rule).
   */
  readonly shouldRetry?: (context: RetryContext) => boolean;
  /** A server hint for the next delay, in milliseconds, taken as a floor (see `withHint`). */
  readonly hint?: (error: Error) => number | undefined;
  /** Called before each delay with what is about to happen, for logging and metrics. */
  readonly onRetry?: (context: RetryContext & { readonly delayMs: number }) => void;
  /** Ends the retries and any delay; rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Time and randomness. Default `systemClock`. */
  readonly clock?: Clock;
}

function defaultShouldRetry({ error }: RetryContext): boolean {
  return PollkitError.is(error) ? error.retryable : true;
}

/**
 * Calls `operation` until it resolves, a failure is not retryable, the retries run out, or the signal
 * aborts. Delays come from the policy with per-attempt randomness from the injected clock.
 *
 * A `TypeError` is retried only when it is a network error (`fetch failed`, `Failed to fetch`, …);
 * any other `TypeError` (`x is not a function`) rejects after the first attempt without calling
 * `shouldRetry`, as does a thrown value that is not an `Error`. Throws {@link InvalidArgumentError}
 * for a negative, fractional or NaN `retries`.
 *
 * @example
 * ```ts
 * import { retry, backoff } from 'pollkit';
 * const body = await retry(
 *   async () => {
 *     const response = await fetch('https://example.com/health');
 *     if (!response.ok) throw new Error(`HTTP ${response.status}`);
 *     return response.text();
 *   },
 *   { retries: 3, policy: backoff({ initial: 200 }) },
 * );
 * ```
 */
export async function retry<T>(
  operation: (attemptNumber: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const retries = options.retries ?? 5;
  if (!(retries === Number.POSITIVE_INFINITY || (Number.isInteger(retries) && retries >= 0))) {
    throw new InvalidArgumentError(
      `retry option "retries" must be an integer >= 0 or Infinity, got ${retries}`,
      'retries',
    );
  }
  const clock = options.clock ?? systemClock;
  const schedule = new Backoff(options.policy ?? backoff(), () => clock.random());
  const shouldRetry = options.shouldRetry ?? defaultShouldRetry;
  const { signal } = options;
  return pRetry(operation, {
    retries,
    // p-retry's own delay formula is switched off (minTimeout 0): the sleep happens in shouldRetry,
    // which p-retry calls only once it has decided that another attempt will follow, so the delay
    // comes from our policy and our injectable clock rather than from Math.random and setTimeout.
    minTimeout: 0,
    ...(signal === undefined ? {} : { signal }),
    shouldRetry: async (context) => {
      if (!shouldRetry(context)) return false;
      const delayMs = schedule.next(options.hint?.(context.error));
      options.onRetry?.({ ...context, delayMs });
      await sleep(delayMs, { signal, clock });
      return true;
    },
  });
}
