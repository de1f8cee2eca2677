/**
 * Backoff policies as pure functions of the attempt number and the previous delay. Formulas from AWS's
 * "Exponential Backoff and Jitter" (none, full, equal, decorrelated) and gRPC's connection-backoff
 * (proportional ±20 %). Randomness is a parameter, drawn per attempt, so two clients started in the
 * same instant diverge from their very first delay.
 *
 * @module
 */
import { backoffPolicy, policyWith, proportionalJitter } from './backoff-policy.js';
import { checkNumber, invalidOption } from './checks.js';

/**
 * How randomness is applied to the exponential curve `min(max, initial × factor^attempt)`:
 * - `none`: the curve itself (lockstep; for tests and comparisons only).
 * - `full`: uniform in [0, curve] (AWS "full jitter").
 * - `equal`: curve/2 + uniform in [0, curve/2] (AWS "equal jitter").
 * - `decorrelated`: uniform in [initial, previous × 3], capped (AWS "decorrelated jitter"; ignores `factor`).
 * - `proportional`: curve × (1 ± `jitter`) (gRPC connection backoff); like gRPC, the jitter applies
 *   around the capped curve, so the result can exceed `max` by up to `jitter`.
 */
export type JitterStrategy = 'none' | 'full' | 'equal' | 'decorrelated' | 'proportional';

/** Options for {@link backoff}. */
export interface BackoffOptions {
  /** The jitter strategy. Default `"full"`. */
  readonly strategy?: JitterStrategy;
  /** The base delay in milliseconds (attempt 0's curve value). Default `1000`. */
  readonly initial?: number;
  /** Growth per attempt, at least 1. Default `2`. */
  readonly factor?: number;
  /** The cap in milliseconds, at least `initial`. Default `30000`. */
  readonly max?: number;
  /** The relative spread of the `proportional` strategy, in [0, 1]. Default `0.2`. */
  readonly jitter?: number;
  /**
   * How many attempts after the first also stay at `initial` before the curve grows (the curve is
   * `initial × factor^max(0, attempt − flatFor)`): an integer >= 0. Default `0`.
   */
  readonly flatFor?: number;
}

/**
 * A validated backoff policy. `delay` is pure: the same attempt, previous delay and random draw always
 * give the same result.
 *
 * @example
 * ```ts
 * import { backoff } from 'pollkit';
 * const policy = backoff({ strategy: 'equal', initial: 500, max: 10_000 });
 * console.log(policy.delay(3, undefined, Math.random));
 * ```
 */
export interface BackoffPolicy {
  /** The resolved options, every default filled in. */
  readonly options: Readonly<Required<BackoffOptions>>;
  /**
   * The delay before retry number `attempt + 1`, in milliseconds.
   *
   * @param attempt - 0 for the first retry, 1 for the second, …
   * @param previous - the delay this policy returned for the previous attempt (decorrelated needs it).
   * @param random - a source of uniform numbers in [0, 1); called at most once.
   */
  delay(attempt: number, previous: number | undefined, random: () => number): number;
}

const OWNER = 'backoff';
const STRATEGIES: readonly JitterStrategy[] = ['none', 'full', 'equal', 'decorrelated', 'proportional'];

/**
 * Creates a validated backoff policy. Throws {@link InvalidArgumentError} for negative, NaN or
 * infinite values, `factor < 1`, `max < initial` or `jitter` outside [0, 1].
 *
 * @example
 * ```ts
 * import { backoff } from 'pollkit';
 * const policy = backoff({ strategy: 'full', initial: 1000, factor: 2, max: 30_000 });
 * const first = policy.delay(0, undefined, Math.random); // uniform in [0, 1000]
 * ```
 */
export function backoff(options: BackoffOptions = {}): BackoffPolicy {
  // The policy is built first (it fills in the defaults) and checked before anyone sees it.
  const policy = backoffPolicy(options);
  const { initial, factor, max, jitter, strategy, flatFor } = policy.options;
  if (!STRATEGIES.includes(strategy)) invalidOption(OWNER, 'strategy', `one of ${STRATEGIES.join(', ')}`, strategy);
  checkNumber(OWNER, 'initial', initial, 0, 'finite');
  checkNumber(OWNER, 'factor', factor, 1, 'finite');
  checkNumber(OWNER, 'max', max, initial, 'finite');
  checkNumber(OWNER, 'jitter', jitter, 0, 'number', 1);
  checkNumber(OWNER, 'flatFor', flatFor, 0, 'integer');
  return policy;
}

/**
 * gRPC's connection backoff (doc/connection-backoff.md): 1 s initial, ×1.6 per attempt, ±20 % jitter,
 * capped at 120 s. The default reconnect policy of pollkit's subscriber.
 *
 * @example
 * ```ts
 * import { grpcBackoff } from 'pollkit';
 * const delay = grpcBackoff.delay(0, undefined, Math.random); // 800..1200 ms
 * ```
 */
export const grpcBackoff: BackoffPolicy = /* @__PURE__ */ policyWith(
  {
    strategy: 'proportional',
    initial: 1000,
    factor: 1.6,
    max: 120_000,
    jitter: 0.2,
  },
  proportionalJitter,
);

/**
 * The reconnect curve of pollkit's subscriber by default: 4.6 s ± 2 % for the first four attempts,
 * then ×1.25 per attempt up to 8 s. Chosen for the herd, not for one client: after a restart, clients
 * return when their next attempt comes due, so the cycle length at that moment sets both how soon the
 * last of them is back (about one cycle) and how densely they arrive (clients ÷ cycle). A flat 4.6 s
 * keeps a thousand clients near 22 arrivals per 100 ms and all but 1 % back within 5 s of a short
 * outage; growing to 8 s afterwards nearly halves the load of a long outage and still brings them all
 * back within 10 s. Small jitter is enough: the subscriber's first reconnect is spread uniformly over
 * a whole cycle, which is what keeps clients apart. bench/storm.ts measures it on real sockets.
 *
 * @example
 * ```ts
 * import { reconnectBackoff } from 'pollkit';
 * const delay = reconnectBackoff.delay(0, undefined, Math.random); // 4508..4692 ms
 * ```
 */
export const reconnectBackoff: BackoffPolicy = /* @__PURE__ */ policyWith(
  {
    strategy: 'proportional',
    initial: 4600,
    factor: 1.25,
    max: 8000,
    jitter: 0.02,
    flatFor: 3,
  },
  proportionalJitter,
);

/**
 * Applies a server's hint (`Retry-After`, SSE `retry:`, a close code's delay) as a floor, with jitter
 * above it so that every client told "come back in 5 s" does not come back in the same millisecond.
 * The result is `max(computed, hint + uniform[0, hint × spread])`.
 *
 * @param computed - the policy's own delay.
 * @param hintMs - the server's hint in milliseconds, or `undefined` for none.
 * @param random - a source of uniform numbers in [0, 1).
 * @param spread - the width of the band above the hint, relative to it. Default `0.2`.
 *
 * @example
 * ```ts
 * import { withHint } from 'pollkit';
 * withHint(300, 5000, Math.random); // between 5000 and 6000
 * ```
 */
export function withHint(computed: number, hintMs: number | undefined, random: () => number, spread = 0.2): number {
  if (hintMs === undefined || !Number.isFinite(hintMs) || hintMs <= 0) return computed;
  return Math.max(computed, hintMs + random() * hintMs * spread);
}

/**
 * A stateful walk along a policy: remembers the attempt count and the previous delay, and can be reset
 * after a stable success.
 *
 * @example
 * ```ts
 * import { Backoff, backoff } from 'pollkit';
 * const schedule = new Backoff(backoff({ initial: 100 }), Math.random);
 * const first = schedule.next();
 * const second = schedule.next();
 * schedule.reset();
 * ```
 */
export class Backoff {
  readonly #policy: BackoffPolicy;
  readonly #random: () => number;
  #attempt = 0;
  #previous: number | undefined;

  constructor(policy: BackoffPolicy, random: () => number) {
    this.#policy = policy;
    this.#random = random;
  }

  /** How many delays have been taken since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The next delay in milliseconds, advancing the attempt count. */
  next(hintMs?: number): number {
    const computed = this.#policy.delay(this.#attempt, this.#previous, this.#random);
    this.#attempt++;
    this.#previous = computed;
    return withHint(computed, hintMs, this.#random);
  }

  /** Starts over from attempt 0. */
  reset(): void {
    this.#attempt = 0;
    this.#previous = undefined;
  }
}
