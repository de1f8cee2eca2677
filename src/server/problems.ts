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
} from '../core/errors.js';
import { HEADERS, MEDIA_TYPES, PROBLEMS, type Problem, problemType } from '../core/protocol.js';
import type { PollkitResponse } from './http-types.js';

/**
 * Codes the HTTP layer needs beyond the protocol's `PROBLEMS` table: a caller rejected by the
 * `authorize` hook, and the one code reserved for the server's own bugs.
 */
const EXTRA_PROBLEMS: Readonly<Record<string, ProblemInfo>> = Object.freeze({
  unauthorized: { status: 401, title: 'Unauthorized' },
  'internal-error': { status: 500, title: 'Internal server error' },
});

/** The status and title a problem code is sent with. */
export interface ProblemInfo {
  /** The HTTP status code. */
  readonly status: number;
  /** The problem type's short summary. */
  readonly title: string;
}

/**
 * The status and title for a problem code, from the protocol's table or the HTTP layer's own; unknown
 * codes give `undefined`.
 *
 * @example
 * ```ts
 * import { problemInfo } from 'pollkit/server';
 * console.log(problemInfo('offset-gone')?.status); // 410
 * ```
 */
export function problemInfo(code: string): ProblemInfo | undefined {
  if (Object.hasOwn(PROBLEMS, code)) return PROBLEMS[code as keyof typeof PROBLEMS];
  if (Object.hasOwn(EXTRA_PROBLEMS, code)) return EXTRA_PROBLEMS[code];
  return undefined;
}

/**
 * Builds a problem object for any code {@link problemInfo} knows (falling back to 500 otherwise), with
 * `message` mirroring `detail`.
 *
 * @example
 * ```ts
 * import { makeProblem } from 'pollkit/server';
 * const body = makeProblem('invalid-parameter', 'wait must be a number of seconds', { parameter: 'wait' });
 * ```
 */
export function makeProblem(code: string, detail?: string, extensions: Record<string, unknown> = {}): Problem {
  const info = problemInfo(code) ?? { status: 500, title: 'Internal server error' };
  return {
    ...extensions,
    type: problemType(code),
    title: info.title,
    status: info.status,
    code,
    ...(detail === undefined ? {} : { detail, message: detail }),
  };
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
  if (!PollkitError.is(error)) return { problem: makeProblem('internal-error', 'The server failed to answer.') };
  if (InvalidArgumentError.is(error)) {
    return { problem: makeProblem('invalid-parameter', error.message, { parameter: error.argument }) };
  }
  if (OffsetGoneError.is(error)) {
    return {
      problem: makeProblem('offset-gone', error.message, {
        topic: error.topic,
        offset: error.offset,
        earliestOffset: error.earliestOffset,
        epoch: error.epoch,
      }),
    };
  }
  if (OffsetOutOfRangeError.is(error)) {
    return {
      problem: makeProblem('offset-out-of-range', error.message, {
        parameter: 'offset',
        offset: error.offset,
        highWatermark: error.highWatermark,
      }),
    };
  }
  if (OverloadedError.is(error)) {
    const ms = error.retryAfterMs;
    return {
      problem: makeProblem('overloaded', error.message),
      retryAfterSeconds: ms === undefined ? 1 : Math.max(1, Math.ceil(ms / 1000)),
    };
  }
  if (problemInfo(error.code) !== undefined) return { problem: makeProblem(error.code, error.message) };
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
  return { problem: makeProblem('internal-error', 'The server failed to answer.') };
}

/**
 * A complete `application/problem+json` response for a problem, with `Cache-Control: no-store` and
 * `Retry-After` when given.
 *
 * @example
 * ```ts
 * import { makeProblem, problemResponse } from 'pollkit/server';
 * const response = problemResponse(makeProblem('shutting-down', 'The server is shutting down.'), 5);
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
