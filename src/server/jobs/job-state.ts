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
import { type JobProgress, type JobSnapshot, type JobStatus, type Problem, problem } from '../../core/protocol.js';
import type { JobLease, StoredJob } from './stores/job-store.js';

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
  /** Held from the start by the registry that will run it (jobs of defined types). */
  readonly lease?: JobLease | undefined;
  /** Starts allowed when a run is lost with its process; stored only when above 1. */
  readonly maxAttempts?: number | undefined;
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
    ...(fields.lease === undefined ? {} : { lease: Object.freeze({ ...fields.lease }) }),
    ...(fields.maxAttempts === undefined || fields.maxAttempts <= 1 ? {} : { maxAttempts: fields.maxAttempts }),
  });
}

/**
 * queued → running, counting the attempt; with `lease`, the starter holds the job from now on.
 *
 * @example
 * ```ts
 * import { newJob, startJob } from './job-state.js';
 * const running = startJob(newJob({ id: 'a', type: 't', input: 0, runner: 'external', nowMs: 0 }), 5);
 * ```
 */
export function startJob(job: StoredJob, nowMs: number, lease?: JobLease): StoredJob {
  expectStatus(job, 'start', ['queued']);
  const now = iso(nowMs);
  const started = next(job, { status: 'running', startedAt: now }, now);
  return Object.freeze({
    ...started,
    attempts: (job.attempts ?? 0) + 1,
    ...(lease === undefined ? {} : { lease: Object.freeze({ ...lease }) }),
  });
}

/**
 * queued | running → queued for another attempt, held by `lease`'s holder: the run was lost with its
 * process. Progress and the start time go; the attempt count stays (the next start raises it).
 *
 * @example
 * ```ts
 * import { requeueJob } from './job-state.js';
 * declare const lost: import('pollkit/server').StoredJob;
 * const again = requeueJob(lost, { holder: 'registry-b', expiresAtMs: Date.now() + 30_000 }, Date.now());
 * ```
 */
export function requeueJob(job: StoredJob, lease: JobLease, nowMs: number): StoredJob {
  expectStatus(job, 'requeue', ['queued', 'running']);
  const requeued = next(job, { status: 'queued', startedAt: null, progress: null }, iso(nowMs));
  return Object.freeze({ ...requeued, lease: Object.freeze({ ...lease }) });
}

/**
 * True for an unfinished job whose lease lapsed at or before `nowMs`.
 *
 * @example
 * ```ts
 * import { leaseLapsed } from './job-state.js';
 * declare const job: import('pollkit/server').StoredJob;
 * if (leaseLapsed(job, Date.now())) console.log('its process is gone');
 * ```
 */
export function leaseLapsed(job: StoredJob, nowMs: number): boolean {
  return !job.snapshot.done && job.lease !== undefined && job.lease.expiresAtMs <= nowMs;
}

/**
 * The problem of a job whose process was lost while it held the job: retryable, so a client may
 * submit it again (with the same idempotency key: a failed retryable job gives its key up).
 *
 * @example
 * ```ts
 * import { workerLostProblem } from './job-state.js';
 * console.log(workerLostProblem().code); // "worker-lost"
 * ```
 */
export function workerLostProblem(): Problem {
  return problem(
    'worker-lost',
    'The process that held the job stopped renewing its lease (it died, or lost the store) before the job finished.',
    { retryable: true },
  );
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
  // A finished job is nobody's: its lease goes with the same version.
  const { lease: _lease, ...unleased } = finished;
  return Object.freeze(expires ? { ...unleased, expiresAtMs } : unleased);
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
