/**
 * Turns failures into RFC 9457 problem responses. Every failure that reaches the client goes through
 * {@link errorToProblem}, so a stable `code` always travels with the status it implies and nothing a
 * client can cause is reported as a server fault.
 *
 * @module
 */
import {
  InvalidArgumentError,
  OffsetGoneError,
  OffsetOutOfRangeError,
  OverloadedError,
  PollkitError,
} from '../../core/errors.js';
import {
  HEADERS,
  MEDIA_TYPES,
  PROBLEMS,
  type Problem,
  type ProblemCode,
  type ProblemDefinition,
  problem,
  problemType,
} from '../../core/protocol.js';
import type { PollkitResponse } from './types.js';

/**
 * The status and title for a problem code, or `undefined` for a code the protocol does not define.
 *
 * @example
 * ```ts
 * import { problemInfo } from 'pollkit/server';
 * console.log(problemInfo('offset-gone')?.status); // 410
 * ```
 */
export function problemInfo(code: string): ProblemDefinition | undefined {
  return Object.hasOwn(PROBLEMS, code) ? PROBLEMS[code as ProblemCode] : undefined;
}

/** A problem and the `Retry-After` seconds to send with it, if any. */
export interface MappedProblem {
  /** The problem to send. */
  readonly problem: Problem;
  /** The `Retry-After` seconds to send with it, when the client should come back later. */
  readonly retryAfterSeconds?: number;
}

/**
 * Maps anything thrown while serving a request to a problem: pollkit errors by their `code` (invalid
 * arguments become 400 `invalid-parameter` naming the parameter; gone offsets carry `earliestOffset`
 * and `epoch`), errors that carry an HTTP `status` of 4xx/5xx by that status, and everything else to a
 * 500 `internal-error` whose detail reveals nothing.
 *
 * @example
 * ```ts
 * import { errorToProblem } from 'pollkit/server';
 * import { InvalidArgumentError } from 'pollkit';
 * const { problem } = errorToProblem(new InvalidArgumentError('bad size', 'pageSize'));
 * console.log(problem.status, problem.parameter); // 400 "pageSize"
 * ```
 */
export function errorToProblem(error: unknown): MappedProblem {
  if (!PollkitError.is(error)) return { problem: problem('internal-error', 'The server failed to answer.') };
  if (InvalidArgumentError.is(error)) {
    return { problem: problem('invalid-parameter', error.message, { parameter: error.argument }) };
  }
  if (OffsetGoneError.is(error)) {
    return {
      problem: problem('offset-gone', error.message, {
        topic: error.topic,
        offset: error.offset,
        earliestOffset: error.earliestOffset,
        epoch: error.epoch,
      }),
    };
  }
  if (OffsetOutOfRangeError.is(error)) {
    return {
      problem: problem('offset-out-of-range', error.message, {
        parameter: 'offset',
        offset: error.offset,
        highWatermark: error.highWatermark,
      }),
    };
  }
  if (OverloadedError.is(error)) {
    const ms = error.retryAfterMs;
    return {
      problem: problem('overloaded', error.message),
      retryAfterSeconds: ms === undefined ? 1 : Math.max(1, Math.ceil(ms / 1000)),
    };
  }
  if (problemInfo(error.code) !== undefined) {
    // A refusal that passes with time (a cap that frees as jobs expire) says when to come back.
    const ms = (error as { retryAfterMs?: unknown }).retryAfterMs;
    const mapped = problem(error.code as ProblemCode, error.message);
    return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0
      ? { problem: mapped, retryAfterSeconds: Math.max(1, Math.ceil(ms / 1000)) }
      : { problem: mapped };
  }
  const status = (error as { status?: unknown }).status;
  if (typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599) {
    return {
      problem: {
        type: problemType(error.code),
        title: error.message,
        status,
        code: error.code,
        detail: error.message,
        message: error.message,
      },
    };
  }
  return { problem: problem('internal-error', 'The server failed to answer.') };
}

/**
 * A complete `application/problem+json` response for a problem, with `Cache-Control: no-store` and
 * `Retry-After` when given.
 *
 * @example
 * ```ts
 * import { problem, problemResponse } from 'pollkit/server';
 * const response = problemResponse(problem('shutting-down', 'The server is shutting down.'), 5);
 * ```
 */
export function problemResponse(
  problem: Problem,
  retryAfterSeconds?: number,
  headers: Readonly<Record<string, string>> = {},
): PollkitResponse {
  return {
    status: problem.status,
    headers: {
      ...headers,
      [HEADERS.contentType]: MEDIA_TYPES.problem,
      [HEADERS.cacheControl]: 'no-store',
      ...(retryAfterSeconds === undefined ? {} : { [HEADERS.retryAfter]: String(retryAfterSeconds) }),
    },
    body: JSON.stringify(problem),
  };
}
