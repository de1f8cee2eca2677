/**
 * Long-running jobs that clients short- or long-poll: job state behind a {@link JobStore}, the
 * transitions external workers drive (`create`/`start`/`progress`/`succeed`/`fail`), cancel and
 * forget, retention swept from an expiry-ordered index, idempotency keys, and the long polls `wait()`
 * and `changes()`. Handlers of defined types run in this process through the runner (`job-runner.ts`);
 * waits are held in the purgatory (`job-waits.ts`).
 *
 * @module
 */
import { EventEmitter } from 'eventemitter3';
import { throwIfAborted } from '../../core/abort.js';
import { type Clock, type TimerHandle, systemClock } from '../../core/clock.js';
import { InvalidArgumentError, PollkitError } from '../../core/errors.js';
import {
  type JobPage,
  type JobProgress,
  type JobSnapshot,
  type JobStatus,
  JOB_STATUSES,
  problem,
} from '../../core/protocol.js';
import { randomId } from '../ids.js';
import { DelayedOperationPurgatory } from '../purgatory/purgatory.js';
import { fingerprint } from './fingerprint.js';
import { jobFailureProblem } from './job-problem.js';
import { type JobHandler, JobRunner, type JobTypeOptions } from './job-runner.js';
import { type FinishOptions, cancelJob, failJob, newJob, progressJob, startJob, succeedJob } from './job-state.js';
import { type JobWait, JobWaits } from './job-waits.js';
import type { JobChange, JobStore, JobTransition, StoredJob, SweepResult } from './stores/job-store.js';
import { MemoryJobStore } from './stores/memory-job-store.js';
import { duration, validateProgress, validateTypeName } from './validation.js';

/**
 * Options of {@link JobRegistry.submit} and {@link JobRegistry.create}.
 *
 * @example
 * ```ts
 * import type { SubmitOptions } from 'pollkit/server';
 * const options: SubmitOptions = { owner: 'alice', idempotencyKey: 'order-42' };
 * ```
 */
export interface SubmitOptions {
  /** The caller the job belongs to; only calls with the same `owner` (or none) see it. */
  readonly owner?: string;
  /** Makes the submit repeatable: the same key and input give the same job. At most 255 characters. */
  readonly idempotencyKey?: string;
  /** Abandons the submit if it aborts before the job is stored. */
  readonly signal?: AbortSignal;
}

/**
 * Who is asking. When `owner` is given, a job of another owner behaves exactly as a missing one.
 *
 * @example
 * ```ts
 * import type { JobAccess } from 'pollkit/server';
 * const access: JobAccess = { owner: 'alice' };
 * ```
 */
export interface JobAccess {
  /** The caller; only jobs submitted with the same `owner` are visible. Default: every job (a trusted caller). */
  readonly owner?: string;
}

/**
 * Options of {@link JobRegistry.list}.
 *
 * @example
 * ```ts
 * import type { JobListOptions } from 'pollkit/server';
 * const options: JobListOptions = { owner: 'alice', status: 'running', pageSize: 20 };
 * ```
 */
export interface JobListOptions extends JobAccess {
  /** Only jobs in this state. */
  readonly status?: JobStatus;
  /** Jobs per page, 1–1000. Default 50. */
  readonly pageSize?: number;
  /** The `nextPageToken` of the previous page. */
  readonly pageToken?: string;
}

/**
 * Options of {@link JobRegistry.wait}.
 *
 * @example
 * ```ts
 * import type { JobWaitOptions } from 'pollkit/server';
 * const options: JobWaitOptions = { sinceVersion: 7, timeoutMs: 25_000 };
 * ```
 */
export interface JobWaitOptions extends JobAccess {
  /** The version the caller already has; the wait ends as soon as the job's version differs. */
  readonly sinceVersion?: number;
  /** The longest time to hold, in milliseconds. */
  readonly timeoutMs: number;
  /** Ends the wait early: the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/**
 * Options of {@link JobRegistry.changes}.
 *
 * @example
 * ```ts
 * import type { JobChangesOptions } from 'pollkit/server';
 * const options: JobChangesOptions = { sinceVersion: 3, signal: AbortSignal.timeout(60_000) };
 * ```
 */
export interface JobChangesOptions extends JobAccess {
  /** Skip states up to this version. */
  readonly sinceVersion?: number;
  /** Stops the iteration: the pending `next()` rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/**
 * Why a job left the registry: `forget()` or the retention sweep.
 *
 * @example
 * ```ts
 * import type { ForgetReason } from 'pollkit/server';
 * const reason: ForgetReason = 'expired';
 * ```
 */
export type ForgetReason = 'forgotten' | 'expired';

/**
 * The events of a {@link JobRegistry}, for changes made through this registry instance.
 *
 * @example
 * ```ts
 * import { JobRegistry } from 'pollkit/server';
 * const registry = new JobRegistry();
 * registry.on('settled', (job) => console.log(job.id, job.status));
 * ```
 */
export interface JobRegistryEvents {
  /** A job was stored (by `submit` or `create`). */
  submitted: [job: JobSnapshot];
  /** A job moved to `running`. */
  started: [job: JobSnapshot];
  /** A (coalesced) progress report was stored. */
  progress: [job: JobSnapshot];
  /** A job reached `succeeded`, `failed` or `canceled`. */
  settled: [job: JobSnapshot];
  /** A finished job was removed. */
  forgotten: [id: string, reason: ForgetReason];
}

/**
 * Options for {@link JobRegistry}.
 *
 * @example
 * ```ts
 * import { JobRegistry, ManualClock } from 'pollkit/server';
 * const registry = new JobRegistry({ clock: new ManualClock(), concurrency: 4, maxQueued: 100 });
 * ```
 */
export interface JobRegistryOptions {
  /** Time, timers and randomness. Default `systemClock`. */
  readonly clock?: Clock;
  /** Where jobs live. Default: a new {@link MemoryJobStore}, closed with the registry. */
  readonly store?: JobStore;
  /** Holds `wait()` calls. Default: a new purgatory on `clock`, shut down with the registry. */
  readonly purgatory?: DelayedOperationPurgatory;
  /** Handlers running at once. Default 16. */
  readonly concurrency?: number;
  /** Submitted jobs waiting for a free slot before `submit` rejects with {@link OverloadedError}. Default 1000. */
  readonly maxQueued?: number;
  /** How long a finished job is kept, in milliseconds (`Infinity`: forever). Default 3,600,000 (1 h). */
  readonly retentionMs?: number;
  /** A handler's time limit unless its type sets one, in milliseconds (> 0; `Infinity`: none). Default 3,600,000 (1 h). */
  readonly defaultTimeoutMs?: number;
  /** The least time between two stored progress changes of one job, in milliseconds. Default 100. */
  readonly progressIntervalMs?: number;
  /** Put the error's `stack` into failed jobs' problems. Default `false`: stacks stay on the server. */
  readonly exposeStackTraces?: boolean;
  /** The `Retry-After` hint for a job that is not done, in seconds, or a function of the job. Default 1. */
  readonly retryAfterSeconds?: number | ((job: JobSnapshot) => number);
  /** Makes job ids. Default: `crypto.randomUUID()`. */
  readonly generateId?: () => string;
  /** The least time between two retention sweeps, in milliseconds. Default 1000. */
  readonly sweepIntervalMs?: number;
  /**
   * Receives failures that have no caller to reject: a store error while running a handler, timing a
   * job out or sweeping. Default: rethrown in a microtask (an uncaught exception, as from a timer).
   */
  readonly onError?: (error: unknown) => void;
}

const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
const SWEEP_BATCH = 1000;
// changes() holds one wait at a time; this only bounds how long one of them sits in the purgatory.
const CHANGES_WAIT_MS = 60_000;

/**
 * Runs and tracks jobs: short-poll them with {@link JobRegistry.get}, long-poll them with
 * {@link JobRegistry.wait}, stream them with {@link JobRegistry.changes}.
 *
 * Lifecycle: `queued → running → succeeded | failed | canceled`; `version` rises by one on every
 * observable change; illegal transitions reject with {@link IllegalTransitionError} and change nothing.
 * Handler failures of every kind end in a defined state: a synchronous throw or a rejection gives
 * `failed` with a serializable problem; a handler that never settles is failed with code
 * `job-timeout` at its time limit (its signal aborts and its slot is freed; its eventual result is
 * ignored).
 *
 * @example
 * ```ts
 * import { JobRegistry } from 'pollkit/server';
 *
 * const registry = new JobRegistry();
 * registry.define('double', async ({ input, reportProgress }) => {
 *   reportProgress({ percent: 50 });
 *   return (input as number) * 2;
 * });
 * const job = await registry.submit('double', 21);
 * const done = await registry.wait(job.id, { sinceVersion: job.version, timeoutMs: 25_000 });
 * ```
 */
export class JobRegistry extends EventEmitter<JobRegistryEvents> {
  readonly #clock: Clock;
  readonly #store: JobStore;
  readonly #ownsStore: boolean;
  readonly #purgatory: DelayedOperationPurgatory;
  readonly #ownsPurgatory: boolean;
  readonly #retentionMs: number;
  readonly #retryAfter: number | ((job: JobSnapshot) => number);
  readonly #generateId: () => string;
  readonly #sweepIntervalMs: number;
  readonly #onError: (error: unknown) => void;
  readonly #runner: JobRunner;
  readonly #waits: JobWaits;
  #sweepTimer: TimerHandle | undefined;
  #sweepAtMs: number | undefined;
  #lastSweepAt = Number.NEGATIVE_INFINITY;
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #unsubscribe: () => void;

  constructor(options: JobRegistryOptions = {}) {
    super();
    this.#clock = options.clock ?? systemClock;
    this.#retentionMs = duration(options.retentionMs ?? 3_600_000, 'retentionMs', true);
    this.#sweepIntervalMs = duration(options.sweepIntervalMs ?? 1000, 'sweepIntervalMs', false);
    const retryAfter = options.retryAfterSeconds ?? 1;
    if (typeof retryAfter !== 'function') duration(retryAfter, 'retryAfterSeconds', false, 'seconds');
    this.#retryAfter = retryAfter;
    if (options.generateId !== undefined && typeof options.generateId !== 'function') {
      throw new InvalidArgumentError('generateId must be a function', 'generateId');
    }
    this.#generateId = options.generateId ?? randomId;
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw new InvalidArgumentError('onError must be a function', 'onError');
    }
    this.#onError = options.onError ?? rethrowLater;
    this.#ownsStore = options.store === undefined;
    this.#store = options.store ?? new MemoryJobStore();
    this.#ownsPurgatory = options.purgatory === undefined;
    this.#purgatory = options.purgatory ?? new DelayedOperationPurgatory({ clock: this.#clock, name: 'jobs' });
    this.#runner = new JobRunner(
      {
        store: this.#store,
        clock: this.#clock,
        timer: this.#purgatory.timer,
        onError: this.#onError,
        finishOptions: (progress) => this.#finishOptions(progress),
        started: (job) => this.emit('started', job),
        progressed: (job) => this.emit('progress', job),
        settled: (job) => this.#afterSettle(job),
      },
      options,
    );
    this.#waits = new JobWaits(this.#store, this.#clock, this.#purgatory);
    this.#unsubscribe = this.#store.onChange((change) => this.#onStoreChange(change));
  }

  /**
   * Registers a job type run by `handler` in this process.
   *
   * @throws InvalidArgumentError for a malformed or already defined type.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry().define('sleep', async ({ input, signal }) => {
   *   await new Promise((resolve) => setTimeout(resolve, input as number));
   *   signal.throwIfAborted();
   * });
   * ```
   */
  define<Input, Result>(type: string, handler: JobHandler<Input, Result>, options: JobTypeOptions<Input> = {}): this {
    this.#runner.define(type, handler, options);
    return this;
  }

  /**
   * True when `type` was defined with a handler.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * console.log(new JobRegistry().hasType('echo')); // false
   * ```
   */
  hasType(type: string): boolean {
    return this.#runner.has(type);
  }

  /**
   * Validates `input`, stores a queued job and returns its snapshot at once; the handler runs when a
   * slot is free. With an idempotency key, a repeated submit of the same type and input returns the
   * existing job (in its current state) instead of starting another.
   *
   * @throws PollkitError `unknown-job-type`, `invalid-input`, `idempotency-key-reused`, `shutting-down`;
   *   {@link OverloadedError} when `concurrency` handlers run and `maxQueued` jobs wait.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry().define('echo', ({ input }) => input);
   * const job = await registry.submit('echo', { hello: 'world' }, { owner: 'alice', idempotencyKey: 'k1' });
   * console.log(job.status); // "queued"
   * ```
   */
  async submit(type: string, input: unknown, options: SubmitOptions = {}): Promise<JobSnapshot> {
    this.#assertOpen();
    throwIfAborted(options.signal);
    if (!this.#runner.has(type)) {
      throw new PollkitError(`Unknown job type "${String(type)}"`, 'unknown-job-type');
    }
    return this.#insert(type, input, options, true);
  }

  /**
   * Stores a queued job for external workers: no handler runs; drive it with {@link JobRegistry.start},
   * {@link JobRegistry.progress}, {@link JobRegistry.succeed} and {@link JobRegistry.fail}. A type that
   * was defined still has its input validated.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry();
   * const job = await registry.create('render', { frames: 120 });
   * await registry.start(job.id);
   * await registry.succeed(job.id, { url: '/render.mp4' });
   * ```
   */
  async create(type: string, input: unknown, options: SubmitOptions = {}): Promise<JobSnapshot> {
    this.#assertOpen();
    throwIfAborted(options.signal);
    validateTypeName(type);
    return this.#insert(type, input, options, false);
  }

  /**
   * queued → running, for external workers.
   *
   * @throws PollkitError `job-not-found`; {@link IllegalTransitionError} unless the job is queued.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry();
   * const job = await registry.create('render', {});
   * console.log((await registry.start(job.id)).status); // "running"
   * ```
   */
  async start(id: string): Promise<JobSnapshot> {
    const job = await this.#transition(id, (current) => startJob(current, this.#clock.wallNow()));
    this.#runner.dequeue(id);
    this.emit('started', job.snapshot);
    return job.snapshot;
  }

  /**
   * Stores a progress report of a running job, for external workers (not coalesced: each call is one
   * version).
   *
   * @throws PollkitError `job-not-found`; {@link IllegalTransitionError} unless the job is running.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry();
   * const job = await registry.create('render', {});
   * await registry.start(job.id);
   * await registry.progress(job.id, { percent: 30, message: 'frame 36 of 120' });
   * ```
   */
  async progress(id: string, progress: JobProgress): Promise<JobSnapshot> {
    validateProgress(progress);
    const job = await this.#transition(id, (current) => progressJob(current, progress, this.#clock.wallNow()));
    this.emit('progress', job.snapshot);
    return job.snapshot;
  }

  /**
   * running → succeeded with `result`. Of two workers racing to finish one job, one wins and the other
   * gets {@link IllegalTransitionError}.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry();
   * const job = await registry.create('render', {});
   * await registry.start(job.id);
   * console.log((await registry.succeed(job.id, 42)).result); // 42
   * ```
   */
  async succeed(id: string, result: unknown): Promise<JobSnapshot> {
    const job = await this.#transition(id, (current) =>
      succeedJob(current, result, this.#clock.wallNow(), this.#finishOptions()),
    );
    this.#afterSettle(job);
    return job.snapshot;
  }

  /**
   * queued | running → failed; `error` becomes the job's problem: a problem object is kept as it is, an
   * error whose `code` looks like a pollkit code (`video-too-long`) keeps that code, and anything else
   * becomes code `job-failed` with the error's message as `detail`.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry();
   * const job = await registry.create('render', {});
   * const failed = await registry.fail(job.id, new Error('codec missing'));
   * console.log(failed.error?.detail); // "codec missing"
   * ```
   */
  async fail(id: string, error: unknown): Promise<JobSnapshot> {
    const body = jobFailureProblem(error, { exposeStackTraces: this.#runner.exposeStackTraces });
    const job = await this.#transition(id, (current) =>
      failJob(current, body, this.#clock.wallNow(), this.#finishOptions()),
    );
    this.#afterSettle(job);
    return job.snapshot;
  }

  /**
   * The job's current snapshot, or `undefined` when it does not exist, has expired, or belongs to
   * another owner.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry();
   * console.log(await registry.get('no-such-id')); // undefined
   * ```
   */
  async get(id: string, access: JobAccess = {}): Promise<JobSnapshot | undefined> {
    return (await this.#waits.visible(id, access.owner))?.snapshot;
  }

  /**
   * One page of jobs, newest first, optionally of one owner and in one state.
   *
   * @throws InvalidArgumentError for a bad `pageSize`, `status` or `pageToken`.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry();
   * const first = await registry.list({ owner: 'alice', pageSize: 20 });
   * if (first.nextPageToken) await registry.list({ owner: 'alice', pageSize: 20, pageToken: first.nextPageToken });
   * ```
   */
  async list(options: JobListOptions = {}): Promise<JobPage> {
    const pageSize = options.pageSize ?? 50;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) {
      throw new InvalidArgumentError(`pageSize must be an integer from 1 to 1000, got ${String(pageSize)}`, 'pageSize');
    }
    if (options.status !== undefined && !JOB_STATUSES.includes(options.status)) {
      throw new InvalidArgumentError(`status must be one of ${JOB_STATUSES.join(', ')}`, 'status');
    }
    if (options.pageToken !== undefined && typeof options.pageToken !== 'string') {
      throw new InvalidArgumentError('pageToken must be a string', 'pageToken');
    }
    const page = await this.#store.list({
      limit: pageSize,
      ...(options.owner === undefined ? {} : { owner: options.owner }),
      ...(options.status === undefined ? {} : { status: options.status }),
      ...(options.pageToken === undefined ? {} : { cursor: options.pageToken }),
    });
    const now = this.#clock.wallNow();
    // Expired jobs the sweep has not reached yet are already gone as far as callers can tell.
    const jobs = page.jobs.filter((job) => !isExpired(job, now)).map((job) => job.snapshot);
    return page.cursor === undefined ? { jobs } : { jobs, nextPageToken: page.cursor };
  }

  /**
   * Cancels a job, best effort: a queued job never starts; a running handler's signal aborts and the
   * job is `canceled` at once (whatever the handler does afterwards is ignored); a finished job is
   * returned unchanged. Resolves to `undefined` for a job the caller cannot see.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry();
   * const job = await registry.create('render', {});
   * console.log((await registry.cancel(job.id))?.error?.code); // "canceled"
   * ```
   */
  async cancel(id: string, access: JobAccess = {}): Promise<JobSnapshot | undefined> {
    const visible = await this.#waits.visible(id, access.owner);
    if (visible === undefined) return undefined;
    if (visible.snapshot.done) return visible.snapshot;
    const body = problem('canceled', 'The job was canceled.');
    const job = await this.#store.update(id, (current) =>
      cancelJob(current, body, this.#clock.wallNow(), this.#finishOptions()),
    );
    if (job === undefined) return undefined;
    if (job.snapshot.version !== visible.snapshot.version && job.snapshot.status === 'canceled') {
      this.#afterSettle(job);
    }
    return job.snapshot;
  }

  /**
   * Removes a finished job before its retention ends (a running job is not canceled by this).
   * Resolves to false for a job the caller cannot see.
   *
   * @throws PollkitError `job-not-finished` for a job that is queued or running.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry();
   * const job = await registry.create('render', {});
   * await registry.cancel(job.id);
   * console.log(await registry.forget(job.id)); // true
   * ```
   */
  async forget(id: string, access: JobAccess = {}): Promise<boolean> {
    const visible = await this.#waits.visible(id, access.owner);
    if (visible === undefined) return false;
    const removed = await this.#store.delete(id, (job) => {
      if (!job.snapshot.done) {
        throw new PollkitError(
          `Job ${id} is ${job.snapshot.status}; only finished jobs can be forgotten`,
          'job-not-finished',
        );
      }
      return true;
    });
    if (removed) this.emit('forgotten', id, 'forgotten');
    return removed;
  }

  /**
   * A long poll on one job: resolves with its snapshot as soon as its version differs from
   * `sinceVersion` (at once when it already does, or when `sinceVersion` is absent), with the
   * unchanged snapshot when `timeoutMs` passes, with the current snapshot when the registry closes,
   * and with `undefined` when the job is (or becomes) invisible: unknown, forgotten, expired, another
   * owner's. Rejects with the signal's reason on abort. Held in the purgatory: no timer per wait.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry();
   * const job = await registry.create('render', {});
   * const next = registry.wait(job.id, { sinceVersion: job.version, timeoutMs: 25_000 });
   * await registry.start(job.id);
   * console.log((await next)?.status); // "running"
   * ```
   */
  wait(id: string, options: JobWaitOptions): Promise<JobSnapshot | undefined> {
    return this.#waits.wait(id, options);
  }

  /**
   * {@link JobRegistry.wait} without a promise: the HTTP handler's held polls hand over the operation
   * that receives the outcome.
   *
   * @internal
   */
  _startWait(wait: JobWait, id: string, request: JobWaitOptions): void {
    this.#waits.start(wait, id, request);
  }

  /**
   * The job's states as they change, for push transports (SSE): the current state first (unless its
   * version is `sinceVersion`), then each newer state, ending after a terminal one, when the job
   * disappears, or when the registry closes. Versions can skip (coalesced progress, several changes
   * between two reads): every yield is the newest state. Rejects with the signal's reason on abort.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry();
   * const job = await registry.create('render', {});
   * for await (const state of registry.changes(job.id)) {
   *   console.log(state.version, state.status);
   *   if (state.status === 'queued') await registry.cancel(job.id);
   * }
   * ```
   */
  async *changes(id: string, options: JobChangesOptions = {}): AsyncIterableIterator<JobSnapshot> {
    let since = options.sinceVersion;
    const access: JobAccess = options.owner === undefined ? {} : { owner: options.owner };
    // A finished job the caller already has would otherwise be held for nothing: it never changes again.
    const current = await this.get(id, access);
    if (current === undefined || (current.done && current.version === since)) return;
    for (;;) {
      const job = await this.wait(id, {
        ...access,
        timeoutMs: CHANGES_WAIT_MS,
        ...(since === undefined ? {} : { sinceVersion: since }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      if (job === undefined) return;
      if (job.version !== since) {
        yield job;
        since = job.version;
      }
      if (job.done || this.#closed) return;
    }
  }

  /**
   * The `Retry-After` value, in whole seconds, to send with a job that is not done.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry({ retryAfterSeconds: (job) => (job.status === 'queued' ? 5 : 1) });
   * ```
   */
  retryAfterSeconds(job: JobSnapshot): number {
    const value = typeof this.#retryAfter === 'function' ? this.#retryAfter(job) : this.#retryAfter;
    return Number.isFinite(value) && value > 0 ? Math.ceil(value) : 0;
  }

  /**
   * Resolves when no handler runs and none is queued in this process.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry();
   * await registry.onIdle();
   * ```
   */
  onIdle(): Promise<void> {
    return this.#runner.onIdle();
  }

  /**
   * Counters for metrics: handlers running, jobs queued for a slot, and calls held in `wait`.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * console.log(new JobRegistry().stats()); // { running: 0, queued: 0, waiting: 0 }
   * ```
   */
  stats(): {
    /** Handlers running in this process now (at most `concurrency`). */
    readonly running: number;
    /** Jobs accepted by this process and waiting for a free handler slot. */
    readonly queued: number;
    /** Long polls held now: pending `wait` calls, including those behind `changes` iterators. */
    readonly waiting: number;
  } {
    return { running: this.#runner.running, queued: this.#runner.queued, waiting: this.#waits.waiting };
  }

  /**
   * Stops the registry: later submits reject with code `shutting-down`; handlers running or queued in
   * this process are aborted and their jobs failed with code `shutting-down` (jobs of external
   * workers are left alone); every held `wait` resolves with the job's current state. Resolves when
   * all of that has happened. Idempotent.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry();
   * process.once('SIGTERM', () => void registry.close());
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#waits.stopHolding();
    if (this.#sweepTimer !== undefined) this.#clock.clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    await this.#runner.close();
    await this.#waits.drain();
    this.#unsubscribe();
    if (this.#ownsPurgatory) this.#purgatory.shutdown();
    if (this.#ownsStore) await this.#store.close();
  }

  // --- submitting ---------------------------------------------------------------------------------

  async #insert(type: string, input: unknown, options: SubmitOptions, runsHere: boolean): Promise<JobSnapshot> {
    const { owner, idempotencyKey, signal } = options;
    if (owner !== undefined && typeof owner !== 'string')
      throw new InvalidArgumentError('owner must be a string', 'owner');
    if (
      idempotencyKey !== undefined &&
      (typeof idempotencyKey !== 'string' ||
        idempotencyKey.length === 0 ||
        idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH)
    ) {
      throw new InvalidArgumentError(
        `idempotencyKey must be a string of 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`,
        'idempotencyKey',
      );
    }
    const validate = this.#runner.validatorOf(type);
    let validated = input;
    if (validate !== undefined) {
      try {
        validated = validate(input);
      } catch (error) {
        const detail = error instanceof Error ? error.message : `The input of a "${type}" job is not valid`;
        throw new PollkitError(detail, 'invalid-input', { cause: error });
      }
    }
    let digest: string | undefined;
    if (idempotencyKey !== undefined) {
      // The client's body is what "the same request" means, so the raw input is digested, not the validated one.
      digest = await fingerprint({ type, input });
      const existing = await this.#store.findByIdempotencyKey(owner, idempotencyKey);
      if (existing !== undefined) return replay(existing, digest, idempotencyKey);
    }
    throwIfAborted(signal);
    this.#assertOpen();
    if (runsHere) this.#runner.admit(typeof this.#retryAfter === 'number' ? this.#retryAfter : 1);
    const job = newJob({
      id: this.#generateId(),
      type,
      input: validated,
      runner: runsHere ? 'handler' : 'external',
      nowMs: this.#clock.wallNow(),
      owner,
      idempotencyKey,
      fingerprint: digest,
    });
    let stored: StoredJob | undefined;
    try {
      const result = await this.#store.insert(job);
      if (!result.inserted) return replay(result.job, digest, idempotencyKey);
      stored = result.job;
    } finally {
      if (runsHere) this.#runner.admitted(stored?.snapshot.id);
    }
    this.emit('submitted', stored.snapshot);
    if (runsHere) await this.#runner.pump(stored.snapshot.id);
    return stored.snapshot;
  }

  // --- store changes, waits and hints --------------------------------------------------------------

  #onStoreChange(change: JobChange): void {
    this.#waits.onChange(change);
    this.#runner.onChange(change);
    const expiresAtMs = change.job?.expiresAtMs;
    if (expiresAtMs !== undefined) this.#scheduleSweep(expiresAtMs);
  }

  async #transition(id: string, transition: JobTransition): Promise<StoredJob> {
    const job = await this.#store.update(id, transition);
    if (job === undefined) throw new PollkitError(`No job ${id}`, 'job-not-found');
    return job;
  }

  #afterSettle(job: StoredJob): void {
    this.#runner.dequeue(job.snapshot.id);
    this.emit('settled', job.snapshot);
  }

  #finishOptions(progress?: JobProgress): FinishOptions {
    return progress === undefined ? { retentionMs: this.#retentionMs } : { retentionMs: this.#retentionMs, progress };
  }

  // --- retention -----------------------------------------------------------------------------------

  // One timer, armed for the earliest known expiry (never sooner than sweepIntervalMs after the last
  // sweep); the store hands back the next expiry after each sweep, so nothing is ever scanned.
  #scheduleSweep(atMs: number): void {
    if (this.#closed) return;
    if (this.#sweepAtMs !== undefined && this.#sweepAtMs <= atMs) return;
    if (this.#sweepTimer !== undefined) this.#clock.clearTimeout(this.#sweepTimer);
    const delay = Math.max(
      atMs - this.#clock.wallNow(),
      this.#lastSweepAt + this.#sweepIntervalMs - this.#clock.now(),
      0,
    );
    this.#sweepAtMs = atMs;
    this.#sweepTimer = this.#clock.setTimeout(() => void this.#sweep().catch(this.#onError), delay, { unref: true });
  }

  async #sweep(): Promise<void> {
    this.#sweepTimer = undefined;
    this.#sweepAtMs = undefined;
    this.#lastSweepAt = this.#clock.now();
    if (this.#closed) return;
    let result: SweepResult;
    try {
      result = await this.#store.sweep(this.#clock.wallNow(), SWEEP_BATCH);
    } catch (error) {
      // A failing store is retried at the next interval rather than dropping retention for good.
      this.#scheduleSweep(this.#clock.wallNow() + this.#sweepIntervalMs);
      throw error;
    }
    const { removed, nextExpiryMs } = result;
    for (const id of removed) this.emit('forgotten', id, 'expired');
    if (nextExpiryMs !== undefined) this.#scheduleSweep(nextExpiryMs);
  }

  // --- misc ----------------------------------------------------------------------------------------

  #assertOpen(): void {
    if (this.#closed) throw new PollkitError('The job registry is shutting down', 'shutting-down', { retryable: true });
  }
}

function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

function isExpired(job: StoredJob, nowMs: number): boolean {
  return job.expiresAtMs !== undefined && job.expiresAtMs <= nowMs;
}

function replay(existing: StoredJob, digest: string | undefined, key: string | undefined): JobSnapshot {
  if (existing.fingerprint !== digest) {
    throw new PollkitError(
      `Idempotency key "${String(key)}" was already used with a different job type or input`,
      'idempotency-key-reused',
    );
  }
  return existing.snapshot;
}
