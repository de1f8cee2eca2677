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

/** The resolved options a jitter reads. */
type Resolved = BackoffPolicy['options'];

/**
 * One jitter strategy: the delay for an attempt from the curve's value there (the previous delay and
 * the options for the strategies that need them). One function each, so that a policy built with one
 * strategy bundles that strategy alone.
 *
 * @internal
 */
export type Jitter = (curve: number, previous: number | undefined, random: () => number, options: Resolved) => number;

/** @internal */
export const noJitter: Jitter = (curve) => curve;
/** @internal */
export const fullJitter: Jitter = (curve, _previous, random) => random() * curve;
/** @internal */
export const equalJitter: Jitter = (curve, _previous, random) => curve / 2 + random() * (curve / 2);
/** @internal */
export const decorrelatedJitter: Jitter = (_curve, previous, random, { initial, max }) =>
  Math.min(max, initial + random() * (Math.max(initial, (previous ?? initial) * 3) - initial));
/**
 * Jitter is applied around the capped curve, as gRPC does, so a capped delay may land up to `jitter`
 * above `max`: capping after jitter would pile every long-failing client onto `max`.
 *
 * @internal
 */
export const proportionalJitter: Jitter = (curve, _previous, random, { jitter }) =>
  curve * (1 + jitter * (2 * random() - 1));

/**
 * A policy from options taken as valid, every default filled in, delaying with `jitter` (which must
 * be the one `options.strategy` names).
 *
 * @example
 * ```ts
 * const policy = policyWith({ strategy: 'equal', initial: 500 }, equalJitter);
 * ```
 *
 * @internal
 */
export function policyWith(options: BackoffOptions, jitter: Jitter): BackoffPolicy {
  const resolved = Object.freeze({
    strategy: options.strategy ?? 'full',
    initial: options.initial ?? 1000,
    factor: options.factor ?? 2,
    max: options.max ?? 30_000,
    jitter: options.jitter ?? 0.2,
    flatFor: options.flatFor ?? 0,
  });
  const { initial, factor, max, flatFor } = resolved;
  return Object.freeze({
    options: resolved,
    delay(attempt: number, previous: number | undefined, random: () => number): number {
      // Guarded because IEEE arithmetic turns edge cases into NaN, which a timer treats as "now": 0 × ∞
      // (initial 0 at a huge attempt) and 1 ** ∞. A NaN or negative attempt counts as the first.
      const curve =
        initial === 0 || factor === 1
          ? initial
          : Math.min(max, initial * factor ** (attempt > flatFor ? attempt - flatFor : 0));
      return jitter(curve, previous, random, resolved);
    },
  });
}

/**
 * A policy from options taken as valid, with the jitter its `strategy` names.
 *
 * @example
 * ```ts
 * const policy = backoffPolicy({ strategy: 'equal', initial: 500 });
 * ```
 *
 * @internal
 */
export function backoffPolicy(options: BackoffOptions): BackoffPolicy {
  const { strategy = 'full' } = options;
  return policyWith(
    options,
    strategy === 'full'
      ? fullJitter
      : strategy === 'none'
        ? noJitter
        : strategy === 'equal'
          ? equalJitter
          : strategy === 'decorrelated'
            ? decorrelatedJitter
            : proportionalJitter,
  );
}
