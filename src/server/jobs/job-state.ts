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
  const snapshot = snapshotOf(fields.id, fields.type, 'queued', false, null, null, null, 1, now, now, null, null, null);
  const job: Mutable<StoredJob> = { snapshot, input: fields.input, runner: fields.runner };
  if (fields.owner !== undefined) job.owner = fields.owner;
  if (fields.idempotencyKey !== undefined) job.idempotencyKey = fields.idempotencyKey;
  if (fields.fingerprint !== undefined) job.fingerprint = fields.fingerprint;
  if (fields.lease !== undefined) job.lease = leaseOf(fields.lease);
  if (fields.maxAttempts !== undefined && fields.maxAttempts > 1) job.maxAttempts = fields.maxAttempts;
  return Object.freeze(job);
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
  const s = job.snapshot;
  const snapshot = snapshotOf(
    s.id,
    s.type,
    'running',
    false,
    s.progress,
    s.result,
    s.error,
    s.version + 1,
    s.createdAt,
    now,
    now,
    s.finishedAt,
    s.expiresAt,
  );
  return storedOf(
    job,
    snapshot,
    lease === undefined ? job.lease : leaseOf(lease),
    (job.attempts ?? 0) + 1,
    job.expiresAtMs,
  );
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
  const s = job.snapshot;
  const snapshot = snapshotOf(
    s.id,
    s.type,
    'queued',
    s.done,
    null,
    s.result,
    s.error,
    s.version + 1,
    s.createdAt,
    iso(nowMs),
    null,
    s.finishedAt,
    s.expiresAt,
  );
  return storedOf(job, snapshot, leaseOf(lease), job.attempts, job.expiresAtMs);
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
  const s = job.snapshot;
  const snapshot = snapshotOf(
    s.id,
    s.type,
    s.status,
    s.done,
    Object.freeze({ ...progress }),
    s.result,
    s.error,
    s.version + 1,
    s.createdAt,
    iso(nowMs),
    s.startedAt,
    s.finishedAt,
    s.expiresAt,
  );
  return storedOf(job, snapshot, job.lease, job.attempts, job.expiresAtMs);
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
  return finish(job, 'succeeded', result ?? null, job.snapshot.error, nowMs, options);
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
  return finish(job, 'failed', job.snapshot.result, Object.freeze({ ...error }), nowMs, options);
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
  return finish(job, 'canceled', job.snapshot.result, Object.freeze({ ...error }), nowMs, options);
}

function finish(
  job: StoredJob,
  status: JobStatus,
  result: unknown,
  error: Problem | null,
  nowMs: number,
  options: FinishOptions,
): StoredJob {
  const expiresAtMs = nowMs + options.retentionMs;
  const expires = Number.isFinite(expiresAtMs);
  const now = iso(nowMs);
  const s = job.snapshot;
  const progress = options.progress === undefined ? s.progress : Object.freeze({ ...options.progress });
  const expiresAt = expires ? expiryIso(expiresAtMs) : null;
  const snapshot = snapshotOf(
    s.id,
    s.type,
    status,
    true,
    progress,
    result,
    error,
    s.version + 1,
    s.createdAt,
    now,
    s.startedAt,
    now,
    expiresAt,
  );
  // A finished job is nobody's: its lease goes with the same version.
  return storedOf(job, snapshot, undefined, job.attempts, expires ? expiresAtMs : job.expiresAtMs);
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

// Every snapshot is built by this one literal, so all of them share one hidden class, and a transition
// costs one object instead of the two or three a spread of the previous snapshot takes.
function snapshotOf(
  id: string,
  type: string,
  status: JobStatus,
  done: boolean,
  progress: JobProgress | null,
  result: unknown,
  error: Problem | null,
  version: number,
  createdAt: string,
  updatedAt: string,
  startedAt: string | null,
  finishedAt: string | null,
  expiresAt: string | null,
): JobSnapshot {
  return Object.freeze({
    id,
    type,
    status,
    done,
    progress,
    result,
    error,
    version,
    createdAt,
    updatedAt,
    startedAt,
    finishedAt,
    expiresAt,
  });
}

/** `job` with a new snapshot, lease, attempt count and expiry; its other fields carried over. */
function storedOf(
  job: StoredJob,
  snapshot: JobSnapshot,
  lease: JobLease | undefined,
  attempts: number | undefined,
  expiresAtMs: number | undefined,
): StoredJob {
  const next: Mutable<StoredJob> = { snapshot, input: job.input, runner: job.runner };
  if (job.owner !== undefined) next.owner = job.owner;
  if (job.idempotencyKey !== undefined) next.idempotencyKey = job.idempotencyKey;
  if (job.fingerprint !== undefined) next.fingerprint = job.fingerprint;
  if (expiresAtMs !== undefined) next.expiresAtMs = expiresAtMs;
  if (lease !== undefined) next.lease = lease;
  if (attempts !== undefined) next.attempts = attempts;
  if (job.maxAttempts !== undefined) next.maxAttempts = job.maxAttempts;
  return Object.freeze(next);
}

// A frozen lease cannot change under the job, so it is shared rather than copied.
function leaseOf(lease: JobLease): JobLease {
  return Object.isFrozen(lease) ? lease : Object.freeze({ holder: lease.holder, expiresAtMs: lease.expiresAtMs });
}

function expectStatus(job: StoredJob, action: string, allowed: readonly JobStatus[]): void {
  const { status, id } = job.snapshot;
  if (!allowed.includes(status)) {
    throw new IllegalTransitionError(`cannot ${action} job ${id}: it is ${status}`);
  }
}

// Transitions in one burst share a millisecond, so one-entry caches (one for the time of the change,
// one for the expiry it sets) save most Date allocations.
function isoCache(): (ms: number) => string {
  let lastMs = Number.NaN;
  let lastIso = '';
  return (ms) => {
    if (ms !== lastMs) {
      lastIso = new Date(ms).toISOString();
      lastMs = ms;
    }
    return lastIso;
  };
}
const iso = isoCache();
const expiryIso = isoCache();
