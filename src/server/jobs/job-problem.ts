/**
 * Turns whatever a job handler or an external worker failed with into the serializable problem that a
 * failed job carries. Handlers throw anything (errors, strings, problem objects, values without a
 * prototype), and the wire must only ever see plain JSON with a stable `code` — and no stack trace
 * unless the server's owner asked for one.
 *
 * @module
 */
import { PROBLEMS, type Problem, problemType } from '../../core/protocol.js';

/**
 * Options for {@link jobFailureProblem}.
 *
 * @example
 * ```ts
 * import type { JobFailureProblemOptions } from './job-problem.js';
 * const options: JobFailureProblemOptions = { exposeStackTraces: process.env.NODE_ENV !== 'production' };
 * ```
 */
export interface JobFailureProblemOptions {
  /** Include the error's `stack` as an extension member. Default `false`. */
  readonly exposeStackTraces?: boolean;
}

// Handler-chosen codes travel to clients, so they must look like ours: lowercase words joined by dashes.
const CODE = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

/**
 * The problem a failed job carries for `failure`:
 * - a problem object (with string `type`, `title`, `code` and numeric `status`) is kept as it is;
 * - an error whose `code` looks like a pollkit code (`video-too-long`) keeps that code, with the
 *   status and title of {@link PROBLEMS} when the code is one of ours, else 500 and "Job failed";
 * - anything else becomes `code: "job-failed"` with the error's message as `detail`.
 *
 * @example
 * ```ts
 * import { jobFailureProblem } from './job-problem.js';
 * const body = jobFailureProblem(new Error('disk full'));
 * console.log(body.code, body.detail); // "job-failed" "disk full"
 * ```
 */
export function jobFailureProblem(failure: unknown, options: JobFailureProblemOptions = {}): Problem {
  if (isProblem(failure)) return Object.freeze({ ...failure });
  const record = typeof failure === 'object' && failure !== null ? (failure as Record<string, unknown>) : undefined;
  const rawCode = record?.['code'];
  const code = typeof rawCode === 'string' && CODE.test(rawCode) ? rawCode : 'job-failed';
  const known = Object.hasOwn(PROBLEMS, code) ? PROBLEMS[code as keyof typeof PROBLEMS] : undefined;
  const message = record?.['message'];
  const detail =
    typeof message === 'string'
      ? message
      : typeof failure === 'string'
        ? failure
        : `The job failed with a ${failure === null ? 'null' : typeof failure} value`;
  const stack = record?.['stack'];
  return Object.freeze({
    type: problemType(code),
    title: known?.title ?? 'Job failed',
    status: known?.status ?? 500,
    code,
    detail,
    message: detail,
    ...(options.exposeStackTraces === true && typeof stack === 'string' ? { stack } : {}),
  });
}

function isProblem(value: unknown): value is Problem {
  if (typeof value !== 'object' || value === null || value instanceof Error) return false;
  const candidate = value as Record<string, unknown>;
  return (
    typeof candidate['type'] === 'string' &&
    typeof candidate['title'] === 'string' &&
    typeof candidate['code'] === 'string' &&
    typeof candidate['status'] === 'number'
  );
}
