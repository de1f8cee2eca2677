/**
 * The job state machine as pure functions over {@link StoredJob}: queued → running → succeeded |
 * failed | canceled. Keeping them pure lets a store with optimistic concurrency (Redis WATCH/MULTI)
 * replay a transition after a conflict, and lets every rule live in one place: each function either
 * returns the next state with the version raised by exactly one, or throws
 * {@link IllegalTransitionError} and changes nothing.
 *
 * @module
 */
import { IllegalTransitionError } from '../../core/errors.js';
import type { JobProgress, JobSnapshot, JobStatus, Problem } from '../../core/protocol.js';
import type { StoredJob } from './stores/job-store.js';

/**
 * The fields of a new job.
 *
 * @example
 * ```ts
 * import type { NewJob } from './job-state.js';
 * const fields: NewJob = { id: 'a', type: 'echo', input: 1, runner: 'external', nowMs: Date.now() };
 * ```
 */
export interface NewJob {
  readonly id: string;
  readonly type: string;
  readonly input: unknown;
  readonly runner: StoredJob['runner'];
  /** Wall-clock epoch milliseconds of creation. */
  readonly nowMs: number;
  readonly owner?: string | undefined;
  readonly idempotencyKey?: string | undefined;
  readonly fingerprint?: string | undefined;
}

/**
 * A queued job at version 1.
 *
 * @example
 * ```ts
 * import { newJob } from './job-state.js';
 * const job = newJob({ id: 'a', type: 'echo', input: 1, runner: 'external', nowMs: Date.now() });
 * console.log(job.snapshot.status, job.snapshot.version); // "queued" 1
 * ```
 */
export function newJob(fields: NewJob): StoredJob {
  const now = iso(fields.nowMs);
  const snapshot: JobSnapshot = Object.freeze({
    id: fields.id,
    type: fields.type,
    status: 'queued',
    done: false,
    progress: null,
    result: null,
    error: null,
    version: 1,
    createdAt: now,
    updatedAt: now,
    startedAt: null,
    finishedAt: null,
    expiresAt: null,
  });
  return Object.freeze({
    snapshot,
    input: fields.input,
    runner: fields.runner,
    ...(fields.owner === undefined ? {} : { owner: fields.owner }),
    ...(fields.idempotencyKey === undefined ? {} : { idempotencyKey: fields.idempotencyKey }),
    ...(fields.fingerprint === undefined ? {} : { fingerprint: fields.fingerprint }),
  });
}

/**
 * queued → running.
 *
 * @example
 * ```ts
 * import { newJob, startJob } from './job-state.js';
 * const running = startJob(newJob({ id: 'a', type: 't', input: 0, runner: 'external', nowMs: 0 }), 5);
 * ```
 */
export function startJob(job: StoredJob, nowMs: number): StoredJob {
  expectStatus(job, 'start', ['queued']);
  const now = iso(nowMs);
  return next(job, { status: 'running', startedAt: now }, now);
}

/**
 * running → running with new progress (the last report wins).
 *
 * @example
 * ```ts
 * import { progressJob } from './job-state.js';
 * declare const running: import('pollkit/server').StoredJob;
 * const updated = progressJob(running, { percent: 50 }, Date.now());
 * ```
 */
export function progressJob(job: StoredJob, progress: JobProgress, nowMs: number): StoredJob {
  expectStatus(job, 'report progress on', ['running']);
  return next(job, { progress: Object.freeze({ ...progress }) }, iso(nowMs));
}

/**
 * Options for the terminal transitions.
 *
 * @example
 * ```ts
 * import type { FinishOptions } from './job-state.js';
 * const options: FinishOptions = { retentionMs: 3_600_000, progress: { percent: 100 } };
 * ```
 */
export interface FinishOptions {
  /** How long the finished job is kept, in milliseconds; sets `expiresAt`. */
  readonly retentionMs: number;
  /** Progress to record in the same version, such as a coalesced report not yet stored. */
  readonly progress?: JobProgress | undefined;
}

/**
 * running → succeeded with `result`.
 *
 * @example
 * ```ts
 * import { succeedJob } from './job-state.js';
 * declare const running: import('pollkit/server').StoredJob;
 * const done = succeedJob(running, { url: '/out.mp4' }, Date.now(), { retentionMs: 3_600_000 });
 * ```
 */
export function succeedJob(job: StoredJob, result: unknown, nowMs: number, options: FinishOptions): StoredJob {
  expectStatus(job, 'succeed', ['running']);
  // `null` is how the wire says "no result", so an undefined result is stored as null too.
  return finish(job, { status: 'succeeded', result: result ?? null }, nowMs, options);
}

/**
 * queued | running → failed with `error` (a problem object).
 *
 * @example
 * ```ts
 * import { failJob, problem } from './job-state.js';
 * declare const running: import('pollkit/server').StoredJob;
 * const failed = failJob(running, problem('job-failed', 'disk full'), Date.now(), { retentionMs: 60_000 });
 * ```
 */
export function failJob(job: StoredJob, error: Problem, nowMs: number, options: FinishOptions): StoredJob {
  expectStatus(job, 'fail', ['queued', 'running']);
  return finish(job, { status: 'failed', error: Object.freeze({ ...error }) }, nowMs, options);
}

/**
 * queued | running → canceled with a `code: "canceled"` problem. A finished job is returned as it is
 * (cancel is idempotent), never as an error.
 *
 * @example
 * ```ts
 * import { cancelJob, problem } from './job-state.js';
 * declare const job: import('pollkit/server').StoredJob;
 * const canceled = cancelJob(job, problem('canceled', 'canceled by the user'), Date.now(), { retentionMs: 60_000 });
 * ```
 */
export function cancelJob(job: StoredJob, error: Problem, nowMs: number, options: FinishOptions): StoredJob {
  if (job.snapshot.done) return job;
  return finish(job, { status: 'canceled', error: Object.freeze({ ...error }) }, nowMs, options);
}

function finish(
  job: StoredJob,
  changes: Partial<Pick<JobSnapshot, 'status' | 'result' | 'error'>>,
  nowMs: number,
  options: FinishOptions,
): StoredJob {
  const expiresAtMs = nowMs + options.retentionMs;
  const expires = Number.isFinite(expiresAtMs);
  const now = iso(nowMs);
  const finished = next(
    job,
    {
      ...changes,
      done: true,
      finishedAt: now,
      expiresAt: expires ? new Date(expiresAtMs).toISOString() : null,
      ...(options.progress === undefined ? {} : { progress: Object.freeze({ ...options.progress }) }),
    },
    now,
  );
  return expires ? Object.freeze({ ...finished, expiresAtMs }) : finished;
}

function next(job: StoredJob, changes: Partial<JobSnapshot>, now: string): StoredJob {
  const snapshot: JobSnapshot = Object.freeze({
    ...job.snapshot,
    ...changes,
    version: job.snapshot.version + 1,
    updatedAt: now,
  });
  return Object.freeze({ ...job, snapshot });
}

function expectStatus(job: StoredJob, action: string, allowed: readonly JobStatus[]): void {
  const { status, id } = job.snapshot;
  if (!allowed.includes(status)) {
    throw new IllegalTransitionError(`cannot ${action} job ${id}: it is ${status}`);
  }
}

// Transitions in one burst share a millisecond, so a one-entry cache saves most Date allocations.
let lastMs = Number.NaN;
let lastIso = '';
function iso(ms: number): string {
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
}
