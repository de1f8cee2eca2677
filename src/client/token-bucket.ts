/**
 * The token bucket behind {@link RetryBudget}, without its option checks or its class: what a poller
 * uses as its default budget, so that a poller pays for the `RetryBudget` class only when it is
 * imported. Not part of the public API.
 *
 * @module
 * @internal
 */
import type { Clock } from '../core/clock.js';

// Refill arithmetic in floating point can leave 0.9999999 where a whole token is due.
const EPSILON = 1e-9;

/**
 * A token bucket. `level(deposit)` refills by the time elapsed (and `deposit`) and returns the tokens
 * held; `wait()` is how long until a whole token; `reserve()` spends one, going into debt when none is
 * whole, and returns that wait (`Infinity` when nothing refills: then nothing is spent).
 *
 * @internal
 */
export interface TokenBucket {
  level(deposit?: number): number;
  wait(): number;
  reserve(): number;
  recordSuccess(): void;
}

/**
 * A bucket full at `capacity`, refilled by `refillPerSecond` and by `deposit` per success.
 *
 * @example
 * ```ts
 * const bucket = tokenBucket(systemClock, 10, 0.2, 0.1);
 * const waitMs = bucket.reserve();
 * ```
 *
 * @internal
 */
export function tokenBucket(clock: Clock, capacity = 10, refillPerSecond = 0.2, deposit = 0.1): TokenBucket {
  const refillPerMs = refillPerSecond / 1000;
  let tokens = capacity;
  let updatedAt = clock.now();
  const level = (add = 0): number => {
    const now = clock.now();
    const elapsed = now - updatedAt;
    updatedAt = now;
    if (elapsed > 0) tokens = Math.min(capacity, tokens + elapsed * refillPerMs);
    if (add > 0) tokens = Math.min(capacity, tokens + add);
    return tokens;
  };
  const wait = (): number => {
    const held = level();
    if (held >= 1 - EPSILON) return 0;
    return refillPerMs === 0 ? Infinity : Math.ceil(Math.round(((1 - held) / refillPerMs) * 1000) / 1000);
  };
  return {
    level,
    wait,
    reserve() {
      const waitMs = wait();
      // Into debt when no whole token is left, so the next reservation waits behind this one.
      if (waitMs < Infinity) tokens = tokens >= 1 - EPSILON ? Math.max(0, tokens - 1) : tokens - 1;
      return waitMs;
    },
    recordSuccess() {
      level(deposit);
    },
  };
}
