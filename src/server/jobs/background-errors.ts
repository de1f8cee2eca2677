/**
 * Failures of work that no caller waits for — storing a handler's result, a progress flush, the
 * retention sweep, lease upkeep, re-reading a job after a change notice — go to the registry's
 * `onError`. An outage of the store is an expected event, so the default only logs, one line with the
 * error's code and the job's id; nothing here ever throws, whatever `onError` itself does.
 *
 * @module
 */
import { PollkitError } from '../../core/errors.js';

/**
 * Which background operation failed.
 * - `start`: marking a queued job `running` before its handler runs.
 * - `finish`: storing a job's final state (retried with backoff until the store takes it).
 * - `progress`: storing a coalesced progress report (the report is dropped; the next one is stored).
 * - `timeout`: failing a job at its time limit.
 * - `sweep`: removing expired jobs (retried at the next interval).
 * - `lease`: renewing this process's leases, or failing or re-running jobs whose lease lapsed.
 * - `resync`: re-reading a job after a change notice that did not carry it.
 * - `close`: failing this process's jobs while the registry closes.
 *
 * @example
 * ```ts
 * import type { BackgroundOperation } from 'pollkit/server';
 * const retried: BackgroundOperation[] = ['finish', 'sweep', 'lease'];
 * ```
 */
export type BackgroundOperation = 'start' | 'finish' | 'progress' | 'timeout' | 'sweep' | 'lease' | 'resync' | 'close';

/**
 * What `onError` learns besides the error: the operation, the job when there is one, and for
 * retried operations the attempt that failed.
 *
 * @example
 * ```ts
 * import type { BackgroundErrorContext } from 'pollkit/server';
 * const context: BackgroundErrorContext = { operation: 'finish', jobId: '3f1c', attempt: 2 };
 * ```
 */
export interface BackgroundErrorContext {
  /** The operation that failed. */
  readonly operation: BackgroundOperation;
  /** The job it was for; absent for work on many jobs at once (a sweep, a lease round). */
  readonly jobId?: string;
  /** For operations retried until they succeed: 1 for the first failure, 2 for the second, and so on. */
  readonly attempt?: number;
}

/**
 * The default `onError` of `JobRegistry`: one line on `console.error` naming the operation, the job,
 * the error's `code` (or its name) and its message. It never throws.
 *
 * @example
 * ```ts
 * import { JobRegistry, logBackgroundError } from 'pollkit/server';
 * let failures = 0;
 * const registry = new JobRegistry({
 *   onError: (error, context) => {
 *     failures++;
 *     logBackgroundError(error, context);
 *   },
 * });
 * ```
 */
export function logBackgroundError(error: unknown, context: BackgroundErrorContext): void {
  try {
    console.error(describeBackgroundError(error, context));
  } catch {
    // A console that throws (closed stdio) must not turn a logged failure into a crash.
  }
}

/** The line {@link logBackgroundError} prints. */
export function describeBackgroundError(error: unknown, context: BackgroundErrorContext): string {
  const code = PollkitError.is(error)
    ? error.code
    : error instanceof Error
      ? error.name
      : typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string'
        ? (error as { code: string }).code
        : typeof error;
  let message: string;
  try {
    message = error instanceof Error ? error.message : String(error);
  } catch {
    message = '(unprintable)';
  }
  const job = context.jobId === undefined ? '' : ` of job ${context.jobId}`;
  const attempt = context.attempt === undefined ? '' : ` (attempt ${context.attempt})`;
  return `pollkit: ${context.operation}${job} failed${attempt} [${code}]: ${message}`;
}

/** The signature of `onError`. */
export type BackgroundErrorHandler = (error: unknown, context: BackgroundErrorContext) => void;

/**
 * Wraps a user's `onError` so that calling it never throws: if it does, both failures are logged by
 * {@link logBackgroundError} instead.
 */
export function safeErrorHandler(onError: BackgroundErrorHandler | undefined): BackgroundErrorHandler {
  if (onError === undefined) return logBackgroundError;
  return (error, context) => {
    try {
      onError(error, context);
    } catch (thrown) {
      logBackgroundError(error, context);
      logBackgroundError(thrown, { ...context, operation: context.operation });
    }
  };
}
