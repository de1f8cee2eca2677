/**
 * One error hierarchy for both sides: a {@link PollkitError} base with a stable `code`, the original
 * failure in `cause`, and a `retryable` flag that pollers and servers act on. Guards use a registered
 * symbol rather than `instanceof`, so they hold across realms (iframes, workers, vm contexts) and across
 * two copies of the package.
 *
 * @module
 */
import type { Problem } from './protocol.js';

const BRAND = /* @__PURE__ */ Symbol.for('pollkit.error');

/** Options accepted by every pollkit error constructor. */
export interface PollkitErrorOptions {
  /** The underlying failure, kept for debugging. */
  readonly cause?: unknown;
  /** Whether repeating the same operation later may succeed. Default depends on the class. */
  readonly retryable?: boolean;
}

/**
 * The base class of every error pollkit throws or rejects with.
 *
 * @example
 * ```ts
 * import { PollkitError, isPollkitError } from 'pollkit';
 *
 * try {
 *   throw new PollkitError('something broke', 'example-code');
 * } catch (error) {
 *   if (isPollkitError(error)) console.log(error.code, error.retryable);
 * }
 * ```
 */
export class PollkitError extends Error {
  /** A stable, documented identifier; safe to branch on. */
  readonly code: string;
  /** Whether repeating the same operation later may succeed. */
  readonly retryable: boolean;

  constructor(message: string, code: string, options: PollkitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /**
   * True for any pollkit error, from any realm or copy of the package.
   *
   * @example
   * ```ts
   * import { PollkitError } from 'pollkit';
   * console.log(PollkitError.is(new Error('x'))); // false
   * ```
   */
  static is(value: unknown): value is PollkitError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/**
 * True when `value` is a pollkit error, optionally with the given `code`.
 *
 * @example
 * ```ts
 * import { isPollkitError, TimeoutError } from 'pollkit';
 * console.log(isPollkitError(new TimeoutError('slow'), 'timeout')); // true
 * ```
 */
export function isPollkitError(value: unknown, code?: string): value is PollkitError {
  return PollkitError.is(value) && (code === undefined || value.code === code);
}

/**
 * An operation did not finish within its time limit (`code: "timeout"`, retryable).
 *
 * @example
 * ```ts
 * import { TimeoutError } from 'pollkit';
 * const error = new TimeoutError('job did not finish within 60 s');
 * console.log(TimeoutError.is(error)); // true
 * ```
 */
export class TimeoutError extends PollkitError {
  constructor(message = 'The operation timed out', options: PollkitErrorOptions = {}) {
    super(message, 'timeout', { ...options, retryable: options.retryable ?? true });
  }
  /** Cross-realm guard. @example `TimeoutError.is(error)` */
  static override is(value: unknown): value is TimeoutError {
    return isPollkitError(value, 'timeout');
  }
}

/**
 * The caller aborted the operation through its `AbortSignal` (`code: "aborted"`). Waits reject with the
 * signal's own `reason`; this class is that reason when the signal was aborted without one.
 *
 * @example
 * ```ts
 * import { AbortedError } from 'pollkit';
 * const controller = new AbortController();
 * controller.abort(new AbortedError('user left the page'));
 * ```
 */
export class AbortedError extends PollkitError {
  constructor(message = 'The operation was aborted', options: PollkitErrorOptions = {}) {
    super(message, 'aborted', options);
  }
  /** Cross-realm guard. @example `AbortedError.is(error)` */
  static override is(value: unknown): value is AbortedError {
    return isPollkitError(value, 'aborted');
  }
}

/**
 * An argument or option was invalid (`code: "invalid-argument"`); thrown at construction or call time,
 * never retryable.
 *
 * @example
 * ```ts
 * import { InvalidArgumentError } from 'pollkit';
 * throw new InvalidArgumentError('initial must be a finite number >= 0, got -1', 'initial');
 * ```
 */
export class InvalidArgumentError extends PollkitError {
  /** The name of the offending argument or option. */
  readonly argument: string;
  constructor(message: string, argument: string, options: PollkitErrorOptions = {}) {
    super(message, 'invalid-argument', options);
    this.argument = argument;
  }
  /** Cross-realm guard. @example `InvalidArgumentError.is(error)` */
  static override is(value: unknown): value is InvalidArgumentError {
    return isPollkitError(value, 'invalid-argument');
  }
}

/** Options for {@link HttpError}. */
export interface HttpErrorOptions extends PollkitErrorOptions {
  /** The parsed RFC 9457 body, when the server sent one. */
  readonly problem?: Problem;
  /** The server's `Retry-After`, already converted to milliseconds. */
  readonly retryAfterMs?: number;
}

/**
 * The server answered with an error status. `code` is the problem's `code` when the body was a pollkit
 * problem, otherwise `http-<status>`. Retryable for 408, 429 and 5xx.
 *
 * @example
 * ```ts
 * import { HttpError } from 'pollkit';
 * const error = new HttpError(503, { retryAfterMs: 2000 });
 * console.log(error.retryable, error.retryAfterMs); // true 2000
 * ```
 */
export class HttpError extends PollkitError {
  /** The HTTP status code. */
  readonly status: number;
  /** The parsed problem body, if any. */
  readonly problem: Problem | undefined;
  /** The server's requested delay before a retry, in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(status: number, options: HttpErrorOptions = {}) {
    const problem = options.problem;
    super(problem?.detail ?? problem?.title ?? `HTTP ${status}`, problem?.code ?? `http-${status}`, {
      ...options,
      retryable: options.retryable ?? isRetryableStatus(status),
    });
    this.status = status;
    this.problem = problem;
    this.retryAfterMs = options.retryAfterMs;
  }
  /** Cross-realm guard. @example `HttpError.is(error)` */
  static override is(value: unknown): value is HttpError {
    return PollkitError.is(value) && typeof (value as { status?: unknown }).status === 'number';
  }
}

/**
 * True for statuses worth retrying: 408, 425, 429 and every 5xx.
 *
 * @example
 * ```ts
 * import { isRetryableStatus } from 'pollkit';
 * console.log(isRetryableStatus(503), isRetryableStatus(404)); // true false
 * ```
 */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/**
 * The peer broke the wire protocol: an unparsable body, a missing header, an impossible value
 * (`code: "protocol-violation"`).
 *
 * @example
 * ```ts
 * import { ProtocolError } from 'pollkit';
 * throw new ProtocolError('job response has no "version"');
 * ```
 */
export class ProtocolError extends PollkitError {
  constructor(message: string, options: PollkitErrorOptions = {}) {
    super(message, 'protocol-violation', options);
  }
  /** Cross-realm guard. @example `ProtocolError.is(error)` */
  static override is(value: unknown): value is ProtocolError {
    return isPollkitError(value, 'protocol-violation');
  }
}

/**
 * A polled job ended in `failed` (`code: "job-failed"`); `problem` is the job's error.
 *
 * @example
 * ```ts
 * import { JobFailedError } from 'pollkit';
 * const error = new JobFailedError('3f1c', { type: 'about:blank', title: 'Boom', status: 500, code: 'boom' });
 * console.log(error.jobId, error.problem.code);
 * ```
 */
export class JobFailedError extends PollkitError {
  /** The id of the failed job. */
  readonly jobId: string;
  /** The job's error as the server reported it. */
  readonly problem: Problem;
  constructor(jobId: string, problem: Problem, options: PollkitErrorOptions = {}) {
    super(problem.detail ?? problem.title ?? `Job ${jobId} failed`, 'job-failed', options);
    this.jobId = jobId;
    this.problem = problem;
  }
  /** Cross-realm guard. @example `JobFailedError.is(error)` */
  static override is(value: unknown): value is JobFailedError {
    return isPollkitError(value, 'job-failed');
  }
}

/**
 * A polled job ended in `canceled` (`code: "canceled"`).
 *
 * @example
 * ```ts
 * import { JobCanceledError } from 'pollkit';
 * console.log(new JobCanceledError('3f1c').code); // "canceled"
 * ```
 */
export class JobCanceledError extends PollkitError {
  /** The id of the canceled job. */
  readonly jobId: string;
  constructor(jobId: string, options: PollkitErrorOptions = {}) {
    super(`Job ${jobId} was canceled`, 'canceled', options);
    this.jobId = jobId;
  }
  /** Cross-realm guard. @example `JobCanceledError.is(error)` */
  static override is(value: unknown): value is JobCanceledError {
    return isPollkitError(value, 'canceled');
  }
}

/** Where a topic log stands after a trim or reset, carried by {@link OffsetGoneError}. */
export interface LogPosition {
  /** The first offset still retained. */
  readonly earliestOffset: number;
  /** The log's current epoch; it changes whenever the log is reset. */
  readonly epoch: string;
}

/**
 * The requested offset is no longer available: trimmed by retention, or the log's epoch changed
 * (`code: "offset-gone"`, HTTP 410). The consumer must restart from `earliestOffset` knowingly.
 *
 * @example
 * ```ts
 * import { OffsetGoneError } from 'pollkit';
 * const gone = new OffsetGoneError('orders', 10, { earliestOffset: 120, epoch: 'k9f' });
 * console.log(gone.earliestOffset); // 120
 * ```
 */
export class OffsetGoneError extends PollkitError implements LogPosition {
  /** The topic that was read. */
  readonly topic: string;
  /** The offset that was asked for. */
  readonly offset: number;
  readonly earliestOffset: number;
  readonly epoch: string;
  constructor(topic: string, offset: number, position: LogPosition, options: PollkitErrorOptions = {}) {
    super(
      `Offset ${offset} of topic "${topic}" is gone; the log now starts at ${position.earliestOffset} (epoch ${position.epoch})`,
      'offset-gone',
      options,
    );
    this.topic = topic;
    this.offset = offset;
    this.earliestOffset = position.earliestOffset;
    this.epoch = position.epoch;
  }
  /** Cross-realm guard. @example `OffsetGoneError.is(error)` */
  static override is(value: unknown): value is OffsetGoneError {
    return isPollkitError(value, 'offset-gone');
  }
}

/**
 * The requested offset lies beyond the log's high watermark (`code: "offset-out-of-range"`, HTTP 400).
 *
 * @example
 * ```ts
 * import { OffsetOutOfRangeError } from 'pollkit';
 * console.log(new OffsetOutOfRangeError('orders', 500, 121).highWatermark); // 121
 * ```
 */
export class OffsetOutOfRangeError extends PollkitError {
  /** The topic that was read. */
  readonly topic: string;
  /** The offset that was asked for. */
  readonly offset: number;
  /** The offset the next appended record will get. */
  readonly highWatermark: number;
  constructor(topic: string, offset: number, highWatermark: number, options: PollkitErrorOptions = {}) {
    super(
      `Offset ${offset} of topic "${topic}" is beyond the high watermark ${highWatermark}`,
      'offset-out-of-range',
      options,
    );
    this.topic = topic;
    this.offset = offset;
    this.highWatermark = highWatermark;
  }
  /** Cross-realm guard. @example `OffsetOutOfRangeError.is(error)` */
  static override is(value: unknown): value is OffsetOutOfRangeError {
    return isPollkitError(value, 'offset-out-of-range');
  }
}

/**
 * A state change that the current state forbids, such as succeeding a canceled job or reporting
 * progress on a finished one (`code: "illegal-transition"`). Nothing was changed.
 *
 * @example
 * ```ts
 * import { IllegalTransitionError } from 'pollkit';
 * throw new IllegalTransitionError('cannot succeed job 3f1c: it is canceled');
 * ```
 */
export class IllegalTransitionError extends PollkitError {
  constructor(message: string, options: PollkitErrorOptions = {}) {
    super(message, 'illegal-transition', options);
  }
  /** Cross-realm guard. @example `IllegalTransitionError.is(error)` */
  static override is(value: unknown): value is IllegalTransitionError {
    return isPollkitError(value, 'illegal-transition');
  }
}

/**
 * A capacity limit was reached: a full queue, too many held requests (`code: "overloaded"`, retryable).
 *
 * @example
 * ```ts
 * import { OverloadedError } from 'pollkit';
 * throw new OverloadedError('job queue is full (1000 waiting)', { retryAfterMs: 1000 });
 * ```
 */
export class OverloadedError extends PollkitError {
  /** A suggested delay before retrying, in milliseconds. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, options: PollkitErrorOptions & { readonly retryAfterMs?: number } = {}) {
    super(message, 'overloaded', { ...options, retryable: options.retryable ?? true });
    this.retryAfterMs = options.retryAfterMs;
  }
  /** Cross-realm guard. @example `OverloadedError.is(error)` */
  static override is(value: unknown): value is OverloadedError {
    return isPollkitError(value, 'overloaded');
  }
}
