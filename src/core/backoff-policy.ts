/**
 * The arithmetic of a backoff policy, without the option checks: what `backoff()` returns once it has
 * checked its options, and what pollkit's own default policies are built with, so that a bundle using
 * only the defaults does not carry the checks and their messages. Internal: not re-exported from the
 * core's index.
 *
 * @module
 * @internal
 */
import type { BackoffOptions, BackoffPolicy } from './backoff.js';

/**
 * A policy from options taken as valid, every default filled in.
 *
 * @internal
 */
export function backoffPolicy(options: BackoffOptions): BackoffPolicy {
  const resolved = Object.freeze({
    strategy: options.strategy ?? 'full',
    initial: options.initial ?? 1000,
    factor: options.factor ?? 2,
    max: options.max ?? 30_000,
    jitter: options.jitter ?? 0.2,
    flatFor: options.flatFor ?? 0,
  });
  const { initial, factor, max, jitter, strategy, flatFor } = resolved;
  return Object.freeze({
    options: resolved,
    delay(attempt: number, previous: number | undefined, random: () => number): number {
      // Guarded because IEEE arithmetic turns edge cases into NaN, which a timer treats as "now": 0 × ∞
      // (initial 0 at a huge attempt) and 1 ** ∞. A NaN or negative attempt counts as the first.
      const curve =
        initial === 0 || factor === 1
          ? initial
          : Math.min(max, initial * factor ** (attempt > flatFor ? attempt - flatFor : 0));
      return strategy === 'none'
        ? curve
        : strategy === 'full'
          ? random() * curve
          : strategy === 'equal'
            ? curve / 2 + random() * (curve / 2)
            : strategy === 'decorrelated'
              ? Math.min(max, initial + random() * (Math.max(initial, (previous ?? initial) * 3) - initial))
              : // Jitter is applied around the capped curve, as gRPC does, so a capped delay may land up to
                // `jitter` above `max`: capping after jitter would pile every long-failing client onto `max`.
                curve * (1 + jitter * (2 * random() - 1));
    },
  });
}
