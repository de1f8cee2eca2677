/**
 * What {@link ShortPoller} and {@link LongPoller} share: the shape of a poll call, the vocabulary of
 * their lifecycle events, how a failure is classified, and the small queue behind their async
 * iterators. Kept apart so both pollers speak the same words to loggers and dashboards.
 *
 * @module
 */
import { abortReason, onAbort } from '../core/abort.js';
import type { Emitter, EventMap } from '../core/emitter.js';
import { Backoff, type BackoffPolicy, withHint } from '../core/backoff.js';
import { AbortedError, InvalidArgumentError, PollkitError } from '../core/errors.js';
import type { RetryBudget } from './retry-budget.js';

/**
 * What a poll function receives.
 *
 * @example
 * ```ts
 * import type { PollContext } from 'pollkit/client';
 * const poll = async ({ signal, attempt }: PollContext<number>) => {
 *   console.log('request', attempt);
 *   return (await fetch('https://example.com/status', { signal })).json();
 * };
 * ```
 */
export interface PollContext<Cursor> {
  /** Aborts when the poller stops, its signal aborts, its timeout passes or the request times out. Pass it on. */
  readonly signal: AbortSignal;
  /** 1 for the poller's first request, 2 for the next, … (failed requests count too). */
  readonly attempt: number;
  /** Where the last successful answer left off (a version, an offset, the last value, an opaque token). */
  readonly cursor: Cursor | undefined;
}

/**
 * Why a poller waits before its next request, as reported by its `schedule` and `error` events:
 * - `interval`: the short-poll interval (a number, a function, or a policy growing while nothing changes);
 * - `hint`: the server's `Retry-After` or `X-Poll-Interval`, a floor above the interval, won;
 * - `rearm`: a long poll is re-armed at once after an answer;
 * - `min-interval`: an empty long-poll answer came back too early (a server ignoring `wait`);
 * - `retry`: backoff after a retryable failure;
 * - `retry-after`: backoff after a failure whose `Retry-After` was the longer wait;
 * - `budget`: the retry budget is empty; waiting for a token;
 * - `gone`: resuming from a new cursor after an "offset gone" answer.
 */
export type DelayReason = 'interval' | 'hint' | 'rearm' | 'min-interval' | 'retry' | 'retry-after' | 'budget' | 'gone';

/** Payload of the `schedule` event: the next request's number, its delay and why. */
export interface ScheduleInfo {
  /** The number the next request will have. */
  readonly attempt: number;
  /** The delay before it, in milliseconds. */
  readonly delayMs: number;
  /** What set the delay: the interval, a server hint, backoff after a failure, and so on. */
  readonly reason: DelayReason;
}

/** Payload of the `error` event of a failure that will be retried. */
export interface RetryInfo extends ScheduleInfo {
  /** The number of the request that failed. */
  readonly failedAttempt: number;
  /** Consecutive failures so far, this one included. */
  readonly failures: number;
}

/** How a poller ended. */
export type EndReason = 'done' | 'stopped' | 'aborted' | 'timeout' | 'failed';

/** Payload of the `end` event. */
export interface EndInfo {
  /** Why it ended: finished (`done`), `stop()` called, signal aborted, overall timeout, or a failure not retried. */
  readonly reason: EndReason;
  /** The error the poller ended with; undefined for `done`. */
  readonly error: unknown;
  /** How many requests were made. */
  readonly attempts: number;
}

/** Payload of the `pause` event. */
export interface PauseInfo {
  /** `hidden` when the page is not visible, `offline` when the browser reports no network. */
  readonly reason: 'hidden' | 'offline';
}

/** Payload of the `resume` event. */
export interface ResumeInfo {
  /** How long the poller was paused, in milliseconds. */
  readonly pausedMs: number;
}

/** Where a poller is in its life. */
export type PollerState = 'idle' | 'running' | 'ended';

/**
 * True when a failure is worth another try: pollkit errors say so themselves; anything else (a
 * `TypeError` from `fetch`, a driver's socket error) is presumed transient.
 *
 * @internal
 */
export function isRetryableError(error: unknown): boolean {
  return PollkitError.is(error) ? error.retryable : true;
}

/**
 * The server's requested delay carried by an error (`HttpError.retryAfterMs`, `OverloadedError.retryAfterMs`).
 *
 * @internal
 */
export function errorHintMs(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const hint = (error as { retryAfterMs?: unknown }).retryAfterMs;
  return typeof hint === 'number' && Number.isFinite(hint) && hint > 0 ? hint : undefined;
}

/**
 * Structural equality for JSON-like data, the default notion of "changed" (a freshly parsed body is
 * never `===` to the last one).
 *
 * @internal
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as unknown[];
    return a.length === other.length && a.every((item, index) => jsonEqual(item, other[index]));
  }
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = Object.keys(left);
  if (keys.length !== Object.keys(right).length) return false;
  return keys.every((key) => Object.prototype.hasOwnProperty.call(right, key) && jsonEqual(left[key], right[key]));
}

/** Options for a poller's `waitFor` helper. */
export interface WaitForOptions {
  /** Stops waiting; rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

type AnyEmitter = Pick<Emitter<EventMap>, 'on' | 'off'>;

/**
 * Resolves with the first argument of the next `event`; rejects with `failure(end)` if `endEvent`
 * comes first (or already came: `ended()` returns its payload), or with the signal's reason.
 *
 * @internal
 */
export function nextEvent<Value, End>(
  emitter: AnyEmitter,
  event: string,
  endEvent: string,
  ended: () => End | undefined,
  failure: (end: End, event: string) => unknown,
  options: WaitForOptions = {},
): Promise<Value> {
  const { signal } = options;
  if (signal?.aborted === true) return Promise.reject(abortReason(signal));
  const already = ended();
  if (already !== undefined) {
    return event === endEvent ? Promise.resolve(already as unknown as Value) : Promise.reject(failure(already, event));
  }
  return new Promise<Value>((resolve, reject) => {
    const cleanup = (): void => {
      emitter.off(event, onEvent);
      emitter.off(endEvent, onEnd);
      removeAbort?.();
    };
    const onEvent = (value: unknown): void => {
      cleanup();
      resolve(value as Value);
    };
    const onEnd = (end: unknown): void => {
      cleanup();
      reject(failure(end as End, event));
    };
    emitter.on(event, onEvent);
    if (event !== endEvent) emitter.on(endEvent, onEnd);
    const removeAbort =
      signal &&
      onAbort(signal, () => {
        cleanup();
        reject(abortReason(signal));
      });
  });
}

/**
 * The error a poller's `waitFor` rejects with when the poller ends before the event.
 *
 * @internal
 */
export function endError(info: EndInfo, event: string): unknown {
  return info.error ?? new AbortedError(`The poller ended (${info.reason}) before "${event}"`);
}

/**
 * An unbounded async queue with one consumer, behind the pollers' async iterators. `waitForRoom` lets
 * the producer slow down (the long poller stops re-arming) while a slow consumer catches up.
 *
 * @internal
 */
export class Channel<T> implements AsyncIterableIterator<T> {
  readonly #queue: T[] = [];
  #pull: { resolve: (result: IteratorResult<T>) => void; reject: (error: unknown) => void } | undefined;
  #closed = false;
  #error: unknown;
  #failed = false;
  #room: (() => void)[] = [];
  readonly #onReturn: () => void;

  constructor(onReturn: () => void) {
    this.#onReturn = onReturn;
  }

  /** Records waiting for the consumer. */
  get size(): number {
    return this.#queue.length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  push(value: T): void {
    if (this.#closed) return;
    const pull = this.#pull;
    if (pull !== undefined) {
      this.#pull = undefined;
      pull.resolve({ value, done: false });
    } else {
      this.#queue.push(value);
    }
  }

  /** Ends the stream after the queued values; with an error, the consumer gets it after them. */
  close(error?: unknown, failed = error !== undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#error = error;
    this.#failed = failed;
    this.#wakeRoom();
    const pull = this.#pull;
    if (pull !== undefined && this.#queue.length === 0) {
      this.#pull = undefined;
      if (failed) pull.reject(error);
      else pull.resolve({ value: undefined, done: true });
    }
  }

  /** Resolves when fewer than `limit` values wait (or the channel closes). */
  waitForRoom(limit: number, signal: AbortSignal): Promise<void> {
    if (this.#queue.length < limit || this.#closed) return Promise.resolve();
    if (signal.aborted) return Promise.reject(abortReason(signal));
    return new Promise((resolve, reject) => {
      const done = (): void => {
        remove();
        resolve();
      };
      this.#room.push(done);
      const remove = onAbort(signal, () => {
        this.#room = this.#room.filter((wake) => wake !== done);
        reject(abortReason(signal));
      });
    });
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#queue.length > 0) {
      const value = this.#queue.shift() as T;
      this.#wakeRoom();
      return Promise.resolve({ value, done: false });
    }
    if (this.#closed) {
      if (this.#failed) {
        this.#failed = false;
        return Promise.reject(this.#error);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#pull = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<T>> {
    if (!this.#closed) {
      this.close();
      this.#onReturn();
    }
    this.#queue.length = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #wakeRoom(): void {
    for (const wake of this.#room.splice(0)) wake();
  }
}

/** What to do after a failed request. */
export type FailureDecision =
  | { readonly retry: true; readonly delayMs: number; readonly reason: DelayReason; readonly failures: number }
  | { readonly retry: false; readonly error: unknown };

/**
 * The retry half of a poller: classifies a failure, spends the retry budget, picks the backoff delay
 * with the server's hint as a floor, and forgets the failures after enough successes in a row.
 *
 * @internal
 */
export class RetrySchedule {
  readonly #backoff: Backoff;
  readonly #random: () => number;
  readonly #budget: RetryBudget | undefined;
  readonly #maxRetries: number;
  readonly #resetAfter: number;
  #failures = 0;
  #successes = 0;

  constructor(options: {
    policy: BackoffPolicy;
    random: () => number;
    budget: RetryBudget | undefined;
    maxRetries: number;
    resetAfterSuccesses: number;
  }) {
    this.#backoff = new Backoff(options.policy, options.random);
    this.#random = options.random;
    this.#budget = options.budget;
    this.#maxRetries = options.maxRetries;
    this.#resetAfter = options.resetAfterSuccesses;
  }

  /** Consecutive failures not yet forgiven. */
  get failures(): number {
    return this.#failures;
  }

  onSuccess(): void {
    this.#budget?.recordSuccess();
    this.#successes++;
    if (this.#successes >= this.#resetAfter) {
      this.#failures = 0;
      this.#backoff.reset();
    }
  }

  onFailure(error: unknown): FailureDecision {
    this.#successes = 0;
    if (!isRetryableError(error)) return { retry: false, error };
    this.#failures++;
    if (this.#failures > this.#maxRetries) {
      return {
        retry: false,
        error: new PollkitError(`Gave up after ${this.#maxRetries} retries`, 'retries-exhausted', { cause: error }),
      };
    }
    const computed = this.#backoff.next();
    const hint = errorHintMs(error);
    const hinted = withHint(computed, hint, this.#random);
    const budgetWait = this.#budget?.reserve() ?? 0;
    if (budgetWait === Number.POSITIVE_INFINITY) {
      return {
        retry: false,
        error: new PollkitError('The retry budget is exhausted', 'retry-budget-exhausted', { cause: error }),
      };
    }
    if (budgetWait > hinted) return { retry: true, delayMs: budgetWait, reason: 'budget', failures: this.#failures };
    return {
      retry: true,
      delayMs: hinted,
      reason: hinted > computed ? 'retry-after' : 'retry',
      failures: this.#failures,
    };
  }
}

/**
 * True for a backoff policy (anything with a `delay` method), as opposed to a number or a function.
 *
 * @internal
 */
export function isPolicy(value: unknown): value is BackoffPolicy {
  return typeof value === 'object' && value !== null && typeof (value as BackoffPolicy).delay === 'function';
}

/**
 * Throws {@link InvalidArgumentError} unless `value` is undefined or a number passing `ok`.
 *
 * @internal
 */
export function checkOption(
  owner: string,
  name: string,
  value: unknown,
  ok: (value: number) => boolean,
  rule: string,
): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || Number.isNaN(value) || !ok(value)) {
    throw new InvalidArgumentError(`${owner} option "${name}" must be ${rule}, got ${String(value)}`, name);
  }
}
