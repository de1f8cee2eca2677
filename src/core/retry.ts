/**
 * Retrying an async operation with a pollkit backoff policy.
 *
 * @module
 */
import { sleep, throwIfAborted } from './abort.js';
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
   * end the retries at once.
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
  for (let attemptNumber = 1; ; attemptNumber++) {
    throwIfAborted(signal);
    let error: unknown;
    try {
      return await operation(attemptNumber);
    } catch (caught) {
      error = caught;
    }
    // A rejection that is not an Error, or a TypeError that is not a network failure, is a bug in the
    // operation: retrying would only repeat it.
    if (!(error instanceof Error)) {
      throw new TypeError(`Non-error was thrown: "${String(error)}". You should only throw errors.`);
    }
    if (error instanceof TypeError && !isNetworkError(error)) throw error;
    throwIfAborted(signal);
    const context: RetryContext = { error, attemptNumber, retriesLeft: retries - attemptNumber + 1 };
    if (context.retriesLeft <= 0 || !shouldRetry(context)) throw error;
    const delayMs = schedule.next(options.hint?.(error));
    options.onRetry?.({ ...context, delayMs });
    await sleep(delayMs, { signal, clock });
  }
}

// The messages fetch implementations give a failed connection (Chromium, Firefox, Safari, undici,
// Deno, Bun, Cloudflare, cross-fetch): those TypeErrors are outages, not bugs.
const NETWORK =
  /^(failed to fetch|load failed|network ?error|fetch failed|terminated|network request failed|network connection lost|error sending request|networkerror when attempting|the internet connection appears to be offline|\s?a network error occurred)/i;

function isNetworkError(error: TypeError): boolean {
  return NETWORK.test(error.message);
}
