/**
 * Short polling: ask, wait, ask again, until the answer says "done" or time runs out. The simplest
 * pattern and the one every server supports, so it is also where fleets hurt servers most: the waits
 * here are jittered by default (no two clients in lockstep), grow while nothing changes, honour the
 * server's `Retry-After`/`X-Poll-Interval` as a floor, and failures draw on a retry budget.
 *
 * @module
 */
import { onAbort, sleep } from '../core/abort.js';
import { type BackoffPolicy, withHint } from '../core/backoff.js';
import { equalJitter, policyWith, proportionalJitter } from '../core/backoff-policy.js';
import type { Clock } from '../core/clock.js';
import { checkFunction, checkNumber, invalidOption } from '../core/checks.js';
import { InvalidArgumentError, TimeoutError } from '../core/errors.js';
import type { ActivityOptions } from './activity.js';
import { isPolicy, jsonEqual, type PollContext, type WaitForOptions, withDeadline } from './poller-support.js';
import type { EndInfo, PauseInfo, ResumeInfo, RetryInfo, ScheduleInfo } from './poller-support.js';
import { PollerLifecycle } from './poller-lifecycle.js';
import type { RetryBudget } from './retry-budget.js';

const REPLY = /* @__PURE__ */ Symbol.for('pollkit.pollReply');

/**
 * An answer with metadata: a value (or "unchanged") plus the server's hint for the next wait. Build one
 * with {@link pollReply} or {@link unchangedReply}; a poll function may also return the bare value.
 */
export type PollReply<T> =
  | {
      /** Brands the object as a reply, so a poll function's bare value is never mistaken for one. */
      readonly [REPLY]: true;
      /** `false`: this reply carries a new answer in `value`. */
      readonly unchanged: false;
      /** The answer to this poll. */
      readonly value: T;
      /** The least time to wait before the next poll, in milliseconds; `undefined` for no hint. */
      readonly hintMs: number | undefined;
    }
  | {
      /** Brands the object as a reply, so a poll function's bare value is never mistaken for one. */
      readonly [REPLY]: true;
      /** `true`: the answer is the same as the last one, so the poller keeps its current value. */
      readonly unchanged: true;
      /** The least time to wait before the next poll, in milliseconds; `undefined` for no hint. */
      readonly hintMs: number | undefined;
    };

/** Metadata for {@link pollReply} and {@link unchangedReply}. */
export interface PollReplyOptions {
  /** The least time to wait before the next poll, in milliseconds (the server's `Retry-After`, say). */
  readonly hintMs?: number | undefined;
}

/**
 * Wraps a poll answer with the server's hint for the next wait.
 *
 * @example
 * ```ts
 * import { pollReply, ShortPoller } from 'pollkit/client';
 * const poller = new ShortPoller({
 *   poll: async ({ signal }) => {
 *     const response = await fetch('https://example.com/status', { signal });
 *     return pollReply(await response.json(), { hintMs: Number(response.headers.get('retry-after')) * 1000 });
 *   },
 * });
 * ```
 */
export function pollReply<T>(value: T, options: PollReplyOptions = {}): PollReply<T> {
  return { [REPLY]: true, unchanged: false, value, hintMs: options.hintMs };
}

/**
 * Says "nothing changed since the last answer" (an HTTP 304, say) without repeating the value.
 *
 * @example
 * ```ts
 * import { unchangedReply } from 'pollkit/client';
 * const poll = async () => unchangedReply({ hintMs: 2000 });
 * ```
 */
export function unchangedReply(options: PollReplyOptions = {}): PollReply<never> {
  return { [REPLY]: true, unchanged: true, hintMs: options.hintMs };
}

function isReply<T>(value: unknown): value is PollReply<T> {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[REPLY] === true;
}

/** What an interval function sees. */
export interface IntervalContext {
  /** The number of the request just answered. */
  readonly attempt: number;
  /** Answers in a row that brought no change (0 right after a change). */
  readonly unchanged: number;
}

/** An interval computed from the last value, in milliseconds. */
export type IntervalFunction<T> = (last: T | undefined, context: IntervalContext) => number;

/**
 * The default interval: 1 s, ×1.5 for every answer that brings no change, capped at 15 s, ±20 %
 * jitter. Quick to notice early changes, cheap on work that takes minutes.
 *
 * @example
 * ```ts
 * import { DEFAULT_POLL_INTERVAL } from 'pollkit/client';
 * console.log(DEFAULT_POLL_INTERVAL.options.max); // 15000
 * ```
 */
export const DEFAULT_POLL_INTERVAL: BackoffPolicy = /* @__PURE__ */ policyWith(
  {
    strategy: 'proportional',
    initial: 1000,
    factor: 1.5,
    max: 15_000,
    jitter: 0.2,
  },
  proportionalJitter,
);

/**
 * The default delay policy after a retryable failure: equal jitter from 1 s, doubling to 30 s, so a
 * retry never comes sooner than half the curve.
 *
 * @example
 * ```ts
 * import { DEFAULT_RETRY_POLICY } from 'pollkit/client';
 * console.log(DEFAULT_RETRY_POLICY.options.strategy); // "equal"
 * ```
 */
export const DEFAULT_RETRY_POLICY: BackoffPolicy = /* @__PURE__ */ policyWith(
  {
    strategy: 'equal',
    initial: 1000,
    factor: 2,
    max: 30_000,
  },
  equalJitter,
);

/** Options for {@link ShortPoller}. */
export interface ShortPollerOptions<T, P = unknown> extends ActivityOptions {
  /**
   * Asks once. Gets the last value as `cursor`; returns the value, or a {@link pollReply} /
   * {@link unchangedReply} carrying the server's hint. Required.
   */
  readonly poll: (context: PollContext<T>) => T | PollReply<T> | Promise<T | PollReply<T>>;
  /**
   * The wait between answers: milliseconds, a function of the last value, or a backoff policy walked
   * while nothing changes (reset by a change). Default {@link DEFAULT_POLL_INTERVAL}.
   */
  readonly interval?: number | IntervalFunction<T> | BackoffPolicy;
  /**
   * The relative spread applied to `number` and function intervals: the wait is uniform in
   * interval × [1 − jitter, 1 + jitter]. Policies carry their own jitter. `0` polls in lockstep. Default `0.2`.
   */
  readonly jitter?: number;
  /** Whether a value is final; the poller then resolves `result()` with it. Default: never. */
  readonly done?: (value: T) => boolean;
  /** An error to end with for a value that is final but a failure (a failed job). Default: none. */
  readonly failed?: (value: T) => unknown;
  /** Whether two answers are the same, so `update` fires on change only. Default: structural JSON equality. */
  readonly equals?: (previous: T, next: T) => boolean;
  /** Extracts progress from a value; `progress` fires when it changes. Default: none. */
  readonly progressOf?: (value: T) => P | null | undefined;
  /** The overall deadline in milliseconds; past it the poller ends with a {@link TimeoutError}. Default `Infinity`. */
  readonly timeoutMs?: number;
  /** The deadline of one request; a late answer counts as a retryable failure. Default `30000`. */
  readonly requestTimeoutMs?: number;
  /** The delay policy after retryable failures; the server's `Retry-After` is a floor. Default {@link DEFAULT_RETRY_POLICY}. */
  readonly retry?: BackoffPolicy;
  /** Consecutive retryable failures tolerated before ending with code `retries-exhausted`. Default `Infinity`. */
  readonly maxRetries?: number;
  /** The retry budget (share one between pollers to budget them together); `false` for none. Default: one per poller, as `new RetryBudget()` would be. */
  readonly budget?: RetryBudget | false;
  /** Ends the poller, including the request in flight. */
  readonly signal?: AbortSignal;
  /** Time and randomness. Default `systemClock`. */
  readonly clock?: Clock;
}

/** Payload of the `request` event. */
export interface PollRequestInfo {
  /** Which request this is, counting every request the poller has made from 1. */
  readonly attempt: number;
}

/** Payload of the `response` event. */
export interface PollResponseInfo {
  /** The request this answers, counting from 1 (matches its `request` event). */
  readonly attempt: number;
  /** Whether the answer differed from the last one. */
  readonly changed: boolean;
  /** How long the request took, in milliseconds. */
  readonly durationMs: number;
}

/** The events of a {@link ShortPoller}. */
export interface ShortPollerEvents<T, P = unknown> {
  /** A request is about to be sent. */
  request: [info: PollRequestInfo];
  /** A request was answered (changed or not). */
  response: [info: PollResponseInfo];
  /** The value changed (the first answer counts as a change). */
  update: [value: T, info: PollRequestInfo];
  /** The progress extracted by `progressOf` changed. */
  progress: [progress: P, value: T];
  /** The next request is scheduled. */
  schedule: [info: ScheduleInfo];
  /** A request failed and will be retried after `info.delayMs`. */
  error: [error: unknown, info: RetryInfo];
  /** Polling paused (hidden page, offline). */
  pause: [info: PauseInfo];
  /** Polling resumed. */
  resume: [info: ResumeInfo];
  /** The final value arrived. */
  result: [value: T];
  /** The poller ended, however it ended. */
  end: [info: EndInfo];
}

const OWNER = 'ShortPoller';

/**
 * Polls until a `done` predicate holds, emitting each distinct value.
 *
 * @example
 * ```ts
 * import { ShortPoller, pollReply } from 'pollkit/client';
 *
 * const poller = new ShortPoller<{ status: string; percent: number }>({
 *   poll: async ({ signal }) => (await fetch('https://example.com/export/42', { signal })).json(),
 *   interval: 2000,
 *   done: (value) => value.status === 'ready',
 *   progressOf: (value) => value.percent,
 *   timeoutMs: 10 * 60_000,
 * });
 * poller.on('progress', (percent) => console.log(`${String(percent)} %`));
 * const final = await poller.result(); // starts the poller
 * ```
 */
export class ShortPoller<T, P = unknown>
  extends PollerLifecycle<ShortPollerEvents<T, P>, T, T>
  implements AsyncIterable<T>
{
  readonly #poll: ShortPollerOptions<T, P>['poll'];
  readonly #interval: number | IntervalFunction<T> | BackoffPolicy;
  readonly #jitter: number;
  readonly #done: (value: T) => boolean;
  readonly #failed: ((value: T) => unknown) | undefined;
  readonly #equals: (previous: T, next: T) => boolean;
  readonly #progressOf: ((value: T) => P | null | undefined) | undefined;
  readonly #requestTimeoutMs: number;
  readonly #timeoutMs: number;
  #latest: { value: T } | undefined;
  #progress: unknown;

  constructor(options: ShortPollerOptions<T, P>) {
    super(OWNER, options, {
      retry: DEFAULT_RETRY_POLICY,
      resetAfterSuccesses: 1,
    });
    const interval = options.interval ?? DEFAULT_POLL_INTERVAL;
    if (typeof interval === 'number') checkNumber(OWNER, 'interval', interval, 0, 'finite');
    else if (typeof interval !== 'function' && !isPolicy(interval)) {
      invalidOption(OWNER, 'interval', 'a number, a function or a backoff policy', interval);
    }
    checkNumber(OWNER, 'jitter', options.jitter, 0, 'number', 1);
    checkNumber(OWNER, 'timeoutMs', options.timeoutMs, 0, 'above');
    checkNumber(OWNER, 'requestTimeoutMs', options.requestTimeoutMs, 0, 'above');
    for (const name of ['done', 'failed', 'equals', 'progressOf'] as const) checkFunction(OWNER, name, options[name]);
    this.#poll = options.poll;
    this.#interval = interval;
    this.#jitter = options.jitter ?? 0.2;
    this.#done = options.done ?? (() => false);
    this.#failed = options.failed;
    this.#equals = options.equals ?? jsonEqual;
    this.#progressOf = options.progressOf;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.#timeoutMs = options.timeoutMs ?? Infinity;
  }

  /** The latest distinct value, if any arrived. */
  get latest(): T | undefined {
    return this.#latest?.value;
  }

  /** Ends polling, aborting the request in flight; `result()` rejects with an {@link AbortedError}. */
  override stop(): void {
    super.stop();
  }

  /**
   * The final value: resolves when `done` holds; rejects with the error the poller ended with. Starts
   * the poller.
   */
  result(): Promise<T> {
    return this.startForResult();
  }

  /**
   * A promise for the next occurrence of `event` (its first argument); rejects if the poller ends
   * first. Does not start the poller.
   *
   * @example
   * ```ts
   * const first = await poller.start().waitFor('update');
   * ```
   */
  waitFor<E extends keyof ShortPollerEvents<T, P>>(
    event: E,
    options: WaitForOptions = {},
  ): Promise<ShortPollerEvents<T, P>[E][0]> {
    return this.nextEvent(event, options);
  }

  /**
   * Yields the latest value (if any), then each distinct value, ending after the final one; throws
   * the error the poller failed with. Starts the poller; breaking out of the loop stops it.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this.openChannel(this.#latest === undefined ? [] : [this.#latest.value]);
  }

  /** @internal */
  protected override finalValue(): T {
    return this.#latest?.value as T;
  }

  /** @internal */
  protected override async loop(signal: AbortSignal): Promise<void> {
    const clock = this.clock;
    // The overall deadline lives here, not in the lifecycle, so a LongPoller does not carry it. The
    // loop starts synchronously within start(), and finish() aborts `signal`, which clears the timer.
    const timeoutMs = this.#timeoutMs;
    if (timeoutMs < Infinity) {
      const timer = clock.setTimeout(
        () => this.finish('timeout', new TimeoutError(`Not done in ${timeoutMs} ms`)),
        timeoutMs,
      );
      onAbort(signal, () => clock.clearTimeout(timer));
    }
    let unchanged = 0;
    let previousInterval: number | undefined;
    for (;;) {
      await this.whenActive(signal);
      const attempt = this.nextAttempt();
      this.emit('request', { attempt });
      const started = clock.now();
      let raw: T | PollReply<T>;
      try {
        const cursor = this.#latest?.value;
        raw = await withDeadline(this.clock, this.#requestTimeoutMs, signal, (requestSignal) =>
          this.#poll({ signal: requestSignal, attempt, cursor }),
        );
      } catch (error) {
        if (signal.aborted) throw error;
        if (await this.retryAfter(error, attempt, signal)) continue;
        return;
      }
      if (this.isEnded()) return;
      this.recordSuccess();
      const reply: PollReply<T> = isReply<T>(raw) ? raw : pollReply(raw);
      let changed = false;
      if (!reply.unchanged) {
        const previous = this.#latest;
        changed = previous === undefined || !this.#equals(previous.value, reply.value);
        if (changed) this.#update(reply.value, attempt);
      }
      // A listener of update or progress may have stopped the poller.
      if (this.isEnded()) return;
      this.emit('response', { attempt, changed, durationMs: clock.now() - started });
      const latest = this.#latest;
      if (latest !== undefined) {
        const failure = this.#failed?.(latest.value);
        if (failure !== undefined && failure !== null) {
          this.finish('failed', failure);
          return;
        }
        if (this.#done(latest.value)) {
          this.emit('result', latest.value);
          this.finish('done', undefined);
          return;
        }
      }
      unchanged = changed ? 0 : unchanged + 1;
      const computed = this.#nextInterval(unchanged, attempt, previousInterval);
      previousInterval = computed;
      const delayMs = withHint(computed, reply.hintMs, this.random);
      this.emit('schedule', { attempt: attempt + 1, delayMs, reason: delayMs > computed ? 'hint' : 'interval' });
      await sleep(delayMs, { signal, clock });
    }
  }

  #update(value: T, attempt: number): void {
    this.#latest = { value };
    this.deliver([value]);
    this.emit('update', value, { attempt });
    if (this.#progressOf !== undefined) {
      const progress = this.#progressOf(value);
      if (progress !== undefined && progress !== null && !jsonEqual(progress, this.#progress)) {
        this.#progress = progress;
        this.emit('progress', progress, value);
      }
    }
  }

  #nextInterval(unchanged: number, attempt: number, previous: number | undefined): number {
    const interval = this.#interval;
    if (isPolicy(interval)) return interval.delay(unchanged, previous, this.random);
    const base = typeof interval === 'number' ? interval : interval(this.#latest?.value, { attempt, unchanged });
    if (!(Number.isFinite(base) && base >= 0)) {
      throw new InvalidArgumentError(
        `${OWNER} "interval" returned ${String(base)}; expected a finite number >= 0`,
        'interval',
      );
    }
    return base * (1 + this.#jitter * (2 * this.random() - 1));
  }
}
