/**
 * What {@link ShortPoller} and {@link LongPoller} share with each other and with the subscriber: the
 * shape of a poll call, the vocabulary of their lifecycle events, structural equality, `waitFor` and
 * the per-request deadline.
 * Kept apart so both pollers speak the same words to loggers and dashboards.
 *
 * @module
 */
import { abortable, abortReason, onAbort } from '../core/abort.js';
import type { BackoffPolicy } from '../core/backoff.js';
import type { Clock } from '../core/clock.js';
import { TimeoutError } from '../core/errors.js';
import type { Emitter, EventMap } from '../core/emitter.js';

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
 * Structural equality for JSON-like data, the default notion of "changed" (a freshly parsed body is
 * never `===` to the last one). Arrays compare by index like objects by key, but never equal an object.
 *
 * @internal
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || !a || !b || Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  return (
    keys.length === Object.keys(b).length &&
    keys.every(
      (key) =>
        Object.hasOwn(b, key) && jsonEqual((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]),
    )
  );
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
 * True for a backoff policy (anything with a `delay` method), as opposed to a number or a function.
 *
 * @internal
 */
export function isPolicy(value: unknown): value is BackoffPolicy {
  return typeof (value as BackoffPolicy | undefined)?.delay === 'function';
}

/**
 * One request under a deadline: `call` gets a signal that aborts when `signal` does or, with a
 * {@link TimeoutError}, when `timeoutMs` passes; the promise settles as soon as either happens, whether
 * or not `call` listens. Without a finite deadline the run's own signal is passed on.
 *
 * @internal
 */
export async function withDeadline<Answer>(
  clock: Clock,
  timeoutMs: number,
  signal: AbortSignal,
  call: (signal: AbortSignal) => Answer | PromiseLike<Answer>,
): Promise<Answer> {
  const finite = timeoutMs < Infinity;
  const controller = new AbortController();
  const requestSignal = finite ? controller.signal : signal;
  const stop = (reason: unknown): void => controller.abort(reason);
  const removeAbort = finite ? onAbort(signal, () => stop(abortReason(signal))) : undefined;
  if (signal.aborted) stop(abortReason(signal));
  const timer = finite && clock.setTimeout(() => stop(new TimeoutError(`No answer in ${timeoutMs} ms`)), timeoutMs);
  try {
    return await abortable(
      Promise.resolve().then(() => call(requestSignal)),
      requestSignal,
    );
  } finally {
    if (finite) {
      clock.clearTimeout(timer);
      removeAbort!();
    }
  }
}
