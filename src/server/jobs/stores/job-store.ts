/**
 * The storage seam of {@link JobRegistry}: everything the registry remembers about jobs goes through
 * this interface, so a shared store (Redis, a database) can replace the in-memory default without
 * changing the registry's public API. Every operation is async, every change advances the job's
 * version inside the store (so two workers cannot both succeed one job), and the store announces
 * changes made anywhere — in this process or another — through {@link JobStore.onChange}.
 *
 * @module
 */
import type { JobSnapshot, JobStatus } from '../../../core/protocol.js';

/**
 * One job as a store keeps it: the public snapshot plus what only the server may see.
 *
 * @example
 * ```ts
 * import type { StoredJob } from 'pollkit/server';
 * function isMine(job: StoredJob, owner: string): boolean {
 *   return job.owner === owner;
 * }
 * ```
 */
export interface StoredJob {
  /** The job as clients see it. Treated as immutable: stores replace it, never mutate it. */
  readonly snapshot: JobSnapshot;
  /** The validated input the job was submitted with. */
  readonly input: unknown;
  /** The caller the job belongs to; absent for jobs that belong to nobody in particular. */
  readonly owner?: string;
  /** The idempotency key it was submitted with, unique per owner while the job is retained. */
  readonly idempotencyKey?: string;
  /** A digest of the submitted type and input, compared when an idempotency key is reused. */
  readonly fingerprint?: string;
  /** Whether this process's registry runs the job (`'handler'`) or external workers drive it (`'external'`). */
  readonly runner: 'handler' | 'external';
  /** When a finished job may be removed, in wall-clock epoch milliseconds; absent while not finished. */
  readonly expiresAtMs?: number;
  /**
   * The process that holds an unfinished job and until when (see {@link JobLease}); absent for a job
   * nobody holds (queued for external workers) and for finished jobs.
   */
  readonly lease?: JobLease;
  /** How many times the job was started; absent before the first start. */
  readonly attempts?: number;
  /** How many starts the job may have when its process is lost mid-run (its type's `attempts`). Default 1. */
  readonly maxAttempts?: number;
}

/**
 * A lease: the job belongs to `holder` (one `JobRegistry`) until `expiresAtMs`, and the holder renews
 * it while the job is queued or running there ({@link JobStore.renewLeases}). A lease that lapses means
 * the holder is gone (killed, partitioned, stalled): any live registry then fails the job with a
 * retryable `worker-lost` problem, or runs it again while its `maxAttempts` allow.
 *
 * Renewals are not changes: they raise no version and announce nothing, so a store may keep the
 * current expiry apart from the job it stores; but the job it hands out — to `get`, and to the
 * transitions of `update` — must carry the current expiry.
 *
 * @example
 * ```ts
 * import type { JobLease } from 'pollkit/server';
 * const lease: JobLease = { holder: 'registry-7f3a', expiresAtMs: Date.now() + 30_000 };
 * ```
 */
export interface JobLease {
  /** The registry that holds the job: its `holderId`. */
  readonly holder: string;
  /** When the lease lapses unless renewed, in wall-clock epoch milliseconds. */
  readonly expiresAtMs: number;
}

/**
 * Computes the next state of a job from the current one. Stores that use optimistic concurrency may
 * call it more than once, so it must be pure. Throwing refuses the change (nothing is written, the
 * store rejects with the thrown error); returning `current` itself means "no change".
 *
 * @example
 * ```ts
 * import type { JobTransition } from 'pollkit/server';
 * const touch: JobTransition = (current) => current; // a no-op transition
 * ```
 */
export type JobTransition = (current: StoredJob) => StoredJob;

/**
 * A change announced by {@link JobStore.onChange}. `job` is present when the store has the new state
 * at hand (the in-memory store always does); a store that only learns "key changed" from elsewhere
 * may omit it, and listeners then re-read the store.
 *
 * @example
 * ```ts
 * import type { JobChange } from 'pollkit/server';
 * const log = (change: JobChange) => console.log(change.id, change.version, change.deleted === true);
 * ```
 */
export interface JobChange {
  /** The id of the job that changed. */
  readonly id: string;
  /** The version after the change; for deletions, the last version the job had. */
  readonly version: number;
  /** The new state, when known. Absent for deletions. */
  readonly job?: StoredJob;
  /** True when the job was removed (forgotten or expired). */
  readonly deleted?: boolean;
}

/**
 * What {@link JobStore.insert} did: `inserted` is false when a job with the same owner and
 * idempotency key already existed, which is then returned instead.
 *
 * @example
 * ```ts
 * import type { InsertResult } from 'pollkit/server';
 * const describe = (r: InsertResult) => (r.inserted ? 'new' : 'existing') + ' ' + r.job.snapshot.id;
 * ```
 */
export interface InsertResult {
  /** `true` when a new job was stored; `false` when an existing one matched the idempotency key. */
  readonly inserted: boolean;
  /** The job now stored: the new one, or the earlier job with the same owner and idempotency key. */
  readonly job: StoredJob;
}

/**
 * Options of {@link JobStore.insert}.
 *
 * @example
 * ```ts
 * import type { InsertOptions } from 'pollkit/server';
 * const options: InsertOptions = { maxPerOwner: 10_000 };
 * ```
 */
export interface InsertOptions {
  /**
   * Refuse the job (reject with a `PollkitError` of code `too-many-jobs`) when its owner already has
   * this many jobs stored, in any state. Checked atomically with the insert. Default: no cap.
   */
  readonly maxPerOwner?: number;
}

/**
 * What {@link JobStore.expiredLeases} found.
 *
 * @example
 * ```ts
 * import type { LeaseSweep } from 'pollkit/server';
 * const report = (sweep: LeaseSweep) => `${sweep.jobs.length} lapsed, next at ${sweep.nextExpiryMs ?? 'never'}`;
 * ```
 */
export interface LeaseSweep {
  /** Unfinished jobs whose lease lapsed, each as it is now (with its current lease). */
  readonly jobs: readonly StoredJob[];
  /** The earliest lease expiry still stored, if any. */
  readonly nextExpiryMs?: number;
}

/**
 * A query of {@link JobStore.list}; results come newest first.
 *
 * @example
 * ```ts
 * import type { JobListQuery } from 'pollkit/server';
 * const query: JobListQuery = { owner: 'alice', status: 'running', limit: 20 };
 * ```
 */
export interface JobListQuery {
  /** Only jobs of this owner; every job when absent. */
  readonly owner?: string;
  /** Only jobs in this state. */
  readonly status?: JobStatus;
  /** The most jobs to return. */
  readonly limit: number;
  /** A cursor returned by an earlier call; the page continues after it. */
  readonly cursor?: string;
}

/**
 * One page of {@link JobStore.list}.
 *
 * @example
 * ```ts
 * import type { JobListPage } from 'pollkit/server';
 * const more = (page: JobListPage) => page.cursor !== undefined;
 * ```
 */
export interface JobListPage {
  /** Up to `limit` jobs, newest first; may be empty. */
  readonly jobs: readonly StoredJob[];
  /** An opaque cursor for the next page; absent on the last page. */
  readonly cursor?: string;
}

/**
 * What {@link JobStore.sweep} removed, and when the next finished job expires.
 *
 * @example
 * ```ts
 * import type { SweepResult } from 'pollkit/server';
 * const report = (r: SweepResult) => `${r.removed.length} removed, next at ${r.nextExpiryMs ?? 'never'}`;
 * ```
 */
export interface SweepResult {
  /** The ids of the expired jobs removed by this call (at most `limit`). */
  readonly removed: readonly string[];
  /** The earliest `expiresAtMs` still stored, if any. */
  readonly nextExpiryMs?: number;
}

/**
 * Where jobs live. Implementations must apply {@link JobStore.update} atomically with respect to
 * every other writer (in memory that is free; in Redis it is a WATCH/MULTI loop or a script), raise
 * the version only through the transition, and call the {@link JobStore.onChange} listeners after
 * every insert, update and deletion, including those made by other processes.
 *
 * @example
 * ```ts
 * import { MemoryJobStore, JobRegistry } from 'pollkit/server';
 * const registry = new JobRegistry({ store: new MemoryJobStore() });
 * ```
 */
export interface JobStore {
  /**
   * Adds a job. When `job` carries an idempotency key and a job of the same owner with that key
   * exists, nothing is written and the existing job is returned with `inserted: false` — unless that
   * job failed with a retryable problem (`error.retryable === true`, as `worker-lost` is): such a job
   * no longer holds its key, the new job takes it, and the old one stays readable by its id. Rejects
   * with code `too-many-jobs` when `options.maxPerOwner` is reached.
   */
  insert(job: StoredJob, options?: InsertOptions): Promise<InsertResult>;
  /** The job with this id, or `undefined`. */
  get(id: string): Promise<StoredJob | undefined>;
  /** The job of this owner with this idempotency key, or `undefined`. */
  findByIdempotencyKey(owner: string | undefined, key: string): Promise<StoredJob | undefined>;
  /**
   * Applies `transition` atomically and returns the stored result, or `undefined` for an unknown id.
   * Rejects with whatever the transition throws, having changed nothing. Atomic includes the lease:
   * a renewal between the transition's read and the write must make the write retry on the renewed
   * job, so that a transition that fails a job because its lease lapsed cannot undo a renewal.
   */
  update(id: string, transition: JobTransition): Promise<StoredJob | undefined>;
  /**
   * Extends to `expiresAtMs` the leases of these jobs that `holder` still holds and that are not
   * finished, without a new version or a change notice. Resolves to the ids it did not renew: gone,
   * finished, or held by someone else now. A store that keeps a TTL on jobs extends it too.
   */
  renewLeases(holder: string, ids: readonly string[], expiresAtMs: number): Promise<readonly string[]>;
  /**
   * Up to `limit` unfinished jobs whose lease lapsed at or before `nowMs`, without scanning the
   * others, and the earliest lease expiry still stored.
   */
  expiredLeases(nowMs: number, limit: number): Promise<LeaseSweep>;
  /**
   * Removes a job if `condition` (when given) returns true; `condition` may throw to refuse, and the
   * store rejects with that error. Resolves to whether a job was removed.
   */
  delete(id: string, condition?: (job: StoredJob) => boolean): Promise<boolean>;
  /** Jobs newest first, filtered and paged. Rejects with an InvalidArgumentError for a bad cursor. */
  list(query: JobListQuery): Promise<JobListPage>;
  /** Removes up to `limit` jobs whose `expiresAtMs` is at or before `nowMs`, without scanning the rest. */
  sweep(nowMs: number, limit: number): Promise<SweepResult>;
  /** Calls `listener` after every change; returns a function that removes it. */
  onChange(listener: (change: JobChange) => void): () => void;
  /** Releases connections and timers; the in-memory store simply drops its listeners. */
  close(): Promise<void>;
}
