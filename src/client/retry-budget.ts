/**
 * A token-bucket retry budget. Backoff alone spaces one client's retries, but a fleet of clients that
 * each back off still multiplies a failing server's load by the fleet size; a budget caps the *rate*
 * of retries instead. Every retry spends a token; tokens come back slowly with time and a little with
 * every success (the scheme of Finagle's RetryBudget and gRPC's retry throttling), so a healthy client
 * retries freely while a client facing a dead server settles to `refillPerSecond` retries a second.
 *
 * @module
 */
import { type Clock, systemClock } from '../core/clock.js';
import { checkNumber } from '../core/checks.js';
import { type TokenBucket, tokenBucket } from './token-bucket.js';

/** Options for {@link RetryBudget}. */
export interface RetryBudgetOptions {
  /** The most tokens the bucket holds, and what it starts with: the burst of retries allowed. Default `10`. */
  readonly capacity?: number;
  /** Tokens added per second of elapsed time, up to `capacity`. `0` means only successes refill. Default `0.2`. */
  readonly refillPerSecond?: number;
  /** Tokens added by each success, up to `capacity`. Default `0.1` (one retry earned per ten successes). */
  readonly depositPerSuccess?: number;
  /** Time source for the refill. Default `systemClock`. */
  readonly clock?: Clock;
}

const OWNER = 'RetryBudget';

/**
 * A token bucket that decides whether one more retry is allowed. Share one instance between pollers
 * to budget them together.
 *
 * @example
 * ```ts
 * import { RetryBudget } from 'pollkit/client';
 *
 * const budget = new RetryBudget({ capacity: 5, refillPerSecond: 0.5 });
 * if (budget.tryAcquire()) {
 *   // retry now
 * } else {
 *   console.log(`next retry allowed in ${budget.msUntilAvailable()} ms`);
 * }
 * const waitMs = budget.reserve(); // or queue up for the next token
 * ```
 */
export class RetryBudget {
  readonly #bucket: TokenBucket;

  constructor(options: RetryBudgetOptions = {}) {
    const capacity = options.capacity ?? 10;
    const refillPerSecond = options.refillPerSecond ?? 0.2;
    const deposit = options.depositPerSuccess ?? 0.1;
    checkNumber(OWNER, 'capacity', capacity, 1, 'finite');
    checkNumber(OWNER, 'refillPerSecond', refillPerSecond, 0, 'finite');
    checkNumber(OWNER, 'depositPerSuccess', deposit, 0, 'finite');
    this.#bucket = tokenBucket(options.clock ?? systemClock, capacity, refillPerSecond, deposit);
  }

  /** The tokens available now (fractional). */
  get tokens(): number {
    return this.#bucket.level();
  }

  /** Spends one token if a whole one is available; returns whether the retry may go ahead. */
  tryAcquire(): boolean {
    const whole = this.#bucket.wait() === 0;
    if (whole) this.#bucket.reserve();
    return whole;
  }

  /**
   * Takes a token now or, when none is left, reserves the next one: the bucket goes into debt and the
   * caller learns how long to wait before its retry, so pollers sharing a budget queue up behind each
   * other instead of all retrying when the first token appears. Returns the wait in milliseconds (0 when
   * a token was available), or `Infinity`, reserving nothing, when the bucket does not refill with time.
   * A whole token is spent down to 0 at most (dust below it is forgiven).
   */
  reserve(): number {
    return this.#bucket.reserve();
  }

  /** Credits a success. */
  recordSuccess(): void {
    this.#bucket.recordSuccess();
  }

  /**
   * Milliseconds until a whole token is available through time alone (whole milliseconds, rounded
   * up): 0 if one is available now, `Infinity` if the bucket does not refill with time.
   */
  msUntilAvailable(): number {
    return this.#bucket.wait();
  }
}
