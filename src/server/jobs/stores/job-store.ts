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
   * exists, nothing is written and the existing job is returned with `inserted: false`.
   */
  insert(job: StoredJob): Promise<InsertResult>;
  /** The job with this id, or `undefined`. */
  get(id: string): Promise<StoredJob | undefined>;
  /** The job of this owner with this idempotency key, or `undefined`. */
  findByIdempotencyKey(owner: string | undefined, key: string): Promise<StoredJob | undefined>;
  /**
   * Applies `transition` atomically and returns the stored result, or `undefined` for an unknown id.
   * Rejects with whatever the transition throws, having changed nothing.
   */
  update(id: string, transition: JobTransition): Promise<StoredJob | undefined>;
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
