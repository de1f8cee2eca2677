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
import { type Clock, systemClock } from '../../core/clock.js';
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
import { type BackgroundErrorContext, type BackgroundErrorHandler, safeErrorHandler } from './background-errors.js';
import { ExpiryTimer, type ExpiryRunResult } from './expiry-timer.js';
import { type JobHandler, JobRunner, type JobTypeOptions } from './job-runner.js';
import {
  type FinishOptions,
  cancelJob,
  failJob,
  leaseLapsed,
  newJob,
  progressJob,
  requeueJob,
  startJob,
  succeedJob,
  workerLostProblem,
} from './job-state.js';
import { LeaseKeeper, LeaseSweeper } from './leases.js';
import { integerAtLeast } from '../validate.js';
import { type JobWait, JobWaits } from './job-waits.js';
import type {
  InsertOptions,
  InsertResult,
  JobChange,
  JobStore,
  JobTransition,
  StoredJob,
  SweepResult,
} from './stores/job-store.js';
import { MemoryJobStore } from './stores/memory-job-store.js';
import { releasesKey } from './stores/store-rules.js';
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
  /** The least time between two retention sweeps (and two checks for lapsed leases), in milliseconds. Default 1000. */
  readonly sweepIntervalMs?: number;
  /**
   * How long this registry holds a job it queued, runs or started without renewing it, in
   * milliseconds (≥ 1000). The registry renews every third of it; when a lease lapses (the process
   * was killed, partitioned, or blocked its event loop that long), any live registry sharing the store
   * fails the job with a retryable `worker-lost` problem, or runs it again if its type allows more
   * `attempts`. Shorter finds dead processes sooner and costs more renewals. Default 30,000.
   */
  readonly leaseMs?: number;
  /**
   * Most jobs one owner may have in the store at once, in any state (finished ones count until they
   * expire or are forgotten); past it, submits reject with code `too-many-jobs` (HTTP 429 with
   * `Retry-After`). Jobs without an owner are not counted. Default 10,000.
   */
  readonly maxJobsPerOwner?: number;
  /**
   * Receives failures of background work that no caller waits for — storing a handler's outcome (then
   * retried with backoff until the store takes it), a progress flush, the retention sweep, lease
   * upkeep, re-reading a job after a change notice — with the operation and the job's id. A store
   * outage is an expected event, so nothing here should crash the process. Default:
   * {@link logBackgroundError}, one line on `console.error`; it never throws, and an `onError` that
   * throws is logged the same way.
   */
  readonly onError?: (error: unknown, context: BackgroundErrorContext) => void;
}

const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
const NO_OPTIONS: SubmitOptions = Object.freeze({});
// The retention sweep's batch: it starts here, doubles while a backlog drains quickly and halves when
// one batch holds the store (or, in memory, the event loop) too long.
const SWEEP_BATCH = { initial: 500, min: 100, max: 20_000, fastMs: 10, slowMs: 50 } as const;
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
  readonly #onError: BackgroundErrorHandler;
  readonly #runner: JobRunner;
  readonly #waits: JobWaits;
  readonly #leaseMs: number;
  readonly #maxJobsPerOwner: number;
  readonly #insertOptions: InsertOptions;
  readonly #keeper: LeaseKeeper;
  readonly #leases: LeaseSweeper;
  readonly #sweeper: ExpiryTimer;
  /** The finish options of a job without pending progress: one object for all of them. */
  readonly #retention: FinishOptions;
  #sweepLimit: number = SWEEP_BATCH.initial;
  /** Types submitted here but run elsewhere (see `accept`), with their validators. */
  readonly #accepted = new Map<string, ((input: unknown) => unknown) | undefined>();
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #unsubscribe: () => void;

  constructor(options: JobRegistryOptions = {}) {
    super();
    this.#clock = options.clock ?? systemClock;
    this.#retentionMs = duration(options.retentionMs ?? 3_600_000, 'retentionMs', true);
    this.#retention = Object.freeze({ retentionMs: this.#retentionMs });
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
    this.#onError = safeErrorHandler(options.onError);
    this.#ownsStore = options.store === undefined;
    this.#store = options.store ?? new MemoryJobStore();
    this.#ownsPurgatory = options.purgatory === undefined;
    this.#purgatory = options.purgatory ?? new DelayedOperationPurgatory({ clock: this.#clock, name: 'jobs' });
    this.#leaseMs = integerAtLeast(options.leaseMs ?? 30_000, 'leaseMs', 1000);
    this.#maxJobsPerOwner = integerAtLeast(options.maxJobsPerOwner ?? 10_000, 'maxJobsPerOwner', 1);
    this.#insertOptions = Object.freeze({ maxPerOwner: this.#maxJobsPerOwner });
    this.#keeper = new LeaseKeeper({
      store: this.#store,
      clock: this.#clock,
      holder: randomId(),
      leaseMs: this.#leaseMs,
      onError: this.#onError,
      lost: (id) => this.#runner.lost(id),
    });
    this.#runner = new JobRunner(
      {
        store: this.#store,
        clock: this.#clock,
        timer: this.#purgatory.timer,
        onError: this.#onError,
        keeper: this.#keeper,
        finishOptions: (progress) => this.#finishOptions(progress),
        started: (job) => this.emit('started', job),
        progressed: (job) => this.emit('progress', job),
        settled: (job) => this.#afterSettle(job),
      },
      options,
    );
    this.#waits = new JobWaits(this.#store, this.#clock, this.#purgatory);
    this.#sweeper = new ExpiryTimer(this.#clock, this.#sweepIntervalMs, () => this.#sweep());
    this.#leases = new LeaseSweeper(
      {
        store: this.#store,
        clock: this.#clock,
        keeper: this.#keeper,
        onError: this.#onError,
        reclaim: (job, nowMs) => this.#reclaim(job, nowMs),
      },
      this.#sweepIntervalMs,
    );
    // Jobs of processes that died before this one started are found by looking once, at once.
    this.#leases.schedule(this.#clock.wallNow());
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
    if (this.#accepted.has(type)) throw new InvalidArgumentError(`job type "${type}" is already accepted`, 'type');
    this.#runner.define(type, handler, options);
    return this;
  }

  /**
   * Lets clients `submit` jobs of `type` that workers outside this registry run — a queue's workers
   * (`pollkit/bullmq`) or external workers driving {@link JobRegistry.start} and
   * {@link JobRegistry.succeed}: the job is stored queued and nothing runs it here.
   *
   * @throws InvalidArgumentError for a malformed type, or one already defined or accepted.
   *
   * @example
   * ```ts
   * import { JobRegistry } from 'pollkit/server';
   * const registry = new JobRegistry().accept('video.transcode', {
   *   validate: (input) => {
   *     if (typeof input !== 'object' || input === null) throw new TypeError('input must be an object');
   *     return input;
   *   },
   * });
   * ```
   */
  accept<Input>(type: string, options: Pick<JobTypeOptions<Input>, 'validate'> = {}): this {
    validateTypeName(type);
    if (this.#runner.has(type) || this.#accepted.has(type)) {
      throw new InvalidArgumentError(`job type "${type}" is already defined`, 'type');
    }
    if (options.validate !== undefined && typeof options.validate !== 'function') {
      throw new InvalidArgumentError('validate must be a function', 'validate');
    }
    this.#accepted.set(type, options.validate);
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
   * slot is free (a type taken with {@link JobRegistry.accept} waits for its workers). With an idempotency key, a repeated submit of the same type and input returns the
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
  submit(type: string, input: unknown, options: SubmitOptions = NO_OPTIONS): Promise<JobSnapshot> {
    // Not async itself: an async function returning #insert's promise would take two more turns to settle.
    try {
      this.#assertOpen();
      throwIfAborted(options.signal);
      const runsHere = this.#runner.has(type);
      if (!runsHere && !this.#accepted.has(type)) {
        throw new PollkitError(`Unknown job type "${String(type)}"`, 'unknown-job-type');
      }
      return this.#insert(type, input, options, runsHere);
    } catch (error) {
      return Promise.reject(error);
    }
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
    const job = await this.#transition(id, (current) => startJob(current, this.#clock.wallNow(), this.#keeper.lease()));
    this.#runner.dequeue(id);
    // This registry holds the job from now on: if its process dies, the job fails with `worker-lost`.
    if (!job.snapshot.done) this.#keeper.hold(id);
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
    this.#sweeper.close();
    this.#leases.close();
    await this.#runner.close();
    this.#keeper.close();
    await this.#waits.drain();
    this.#unsubscribe();
    if (this.#ownsPurgatory) this.#purgatory.shutdown();
    if (this.#ownsStore) await this.#store.close();
  }

  // --- submitting ---------------------------------------------------------------------------------

  #insert(type: string, input: unknown, options: SubmitOptions, runsHere: boolean): Promise<JobSnapshot> {
    const { owner, idempotencyKey } = options;
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
    const validated = this.#validate(type, input);
    if (idempotencyKey !== undefined) return this.#insertKeyed(type, input, validated, options, runsHere);
    return this.#storeNew(type, validated, options, runsHere, undefined);
  }

  #validate(type: string, input: unknown): unknown {
    const validate = this.#runner.validatorOf(type) ?? this.#accepted.get(type);
    if (validate === undefined) return input;
    try {
      return validate(input);
    } catch (error) {
      const detail = error instanceof Error ? error.message : `The input of a "${type}" job is not valid`;
      throw new PollkitError(detail, 'invalid-input', { cause: error });
    }
  }

  async #insertKeyed(
    type: string,
    input: unknown,
    validated: unknown,
    options: SubmitOptions,
    runsHere: boolean,
  ): Promise<JobSnapshot> {
    const { owner, idempotencyKey } = options;
    // The client's body is what "the same request" means, so the raw input is digested, not the validated one.
    const digest = await fingerprint({ type, input });
    const existing = await this.#store.findByIdempotencyKey(owner, idempotencyKey!);
    // A job that failed with a retryable problem (its process was lost) gives its key up: a repeat
    // of the same request then means "try again", and makes a new job.
    if (existing !== undefined && !(existing.fingerprint === digest && releasesKey(existing))) {
      return replay(existing, digest, idempotencyKey);
    }
    return this.#storeNew(type, validated, options, runsHere, digest);
  }

  // The unkeyed path, taken by most submits, runs its checks synchronously (a refusal throws here)
  // and then only reacts to the store's answer: no async frame of its own.
  #storeNew(
    type: string,
    validated: unknown,
    options: SubmitOptions,
    runsHere: boolean,
    digest: string | undefined,
  ): Promise<JobSnapshot> {
    const job = this.#newJob(type, validated, options, runsHere, digest);
    let inserting: Promise<InsertResult>;
    try {
      inserting = this.#store.insert(job, this.#insertOptions);
    } catch (error) {
      // A store that throws instead of rejecting still gets its reservation back below.
      inserting = Promise.reject(error);
    }
    return inserting.then(
      (result) => this.#inserted(result, options, runsHere, digest),
      (error: unknown) => {
        if (runsHere) this.#runner.admitted(undefined);
        throw PollkitError.is(error) && error.code === 'too-many-jobs' ? this.#withRetryHint(error) : error;
      },
    );
  }

  #inserted(
    result: InsertResult,
    options: SubmitOptions,
    runsHere: boolean,
    digest: string | undefined,
  ): JobSnapshot | Promise<JobSnapshot> {
    if (!result.inserted) {
      if (runsHere) this.#runner.admitted(undefined);
      return replay(result.job, digest, options.idempotencyKey);
    }
    const snapshot = result.job.snapshot;
    if (runsHere) this.#runner.admitted(snapshot.id);
    this.emit('submitted', snapshot);
    if (runsHere) {
      const abandoning = this.#runner.pump(snapshot.id);
      if (abandoning !== undefined) return abandoning.then(() => snapshot);
    }
    return snapshot;
  }

  /** Checks the registry can take the job now, reserves its place in the queue, and makes it. */
  #newJob(
    type: string,
    validated: unknown,
    options: SubmitOptions,
    runsHere: boolean,
    digest: string | undefined,
  ): StoredJob {
    throwIfAborted(options.signal);
    this.#assertOpen();
    if (runsHere) this.#runner.admit(typeof this.#retryAfter === 'number' ? this.#retryAfter : 1);
    return newJob({
      id: this.#generateId(),
      type,
      input: validated,
      runner: runsHere ? 'handler' : 'external',
      nowMs: this.#clock.wallNow(),
      owner: options.owner,
      idempotencyKey: options.idempotencyKey,
      fingerprint: digest,
      // A job this process will run is its own from the start, so that it is not lost if the process
      // dies while the job waits for a slot.
      lease: runsHere ? this.#keeper.lease() : undefined,
      maxAttempts: runsHere ? this.#runner.attemptsOf(type) : undefined,
    });
  }

  // --- store changes, waits and hints --------------------------------------------------------------

  #onStoreChange(change: JobChange): void {
    this.#waits.onChange(change);
    this.#runner.onChange(change);
    const job = change.job;
    if (job === undefined) return;
    if (job.expiresAtMs !== undefined) this.#sweeper.schedule(job.expiresAtMs);
    // When another process holds the job, this one looks once its lease would lapse: if the holder
    // died, the job is failed (or run again) here. Its own leases it renews instead.
    const lease = job.lease;
    if (lease !== undefined && !job.snapshot.done && lease.holder !== this.#keeper.holder) {
      this.#leases.schedule(lease.expiresAtMs);
    }
  }

  /**
   * A job whose lease lapsed: its holder is gone. Run it again here if its type is defined here, it
   * has attempts left and the queue has room; otherwise fail it with a retryable `worker-lost`. The
   * store re-checks the lapse atomically, so of several registries that saw it, one acts and a holder
   * that renewed just in time keeps its job.
   */
  async #reclaim(lapsed: StoredJob, nowMs: number): Promise<void> {
    const runner = this.#runner;
    const retake =
      !this.#closed &&
      lapsed.runner === 'handler' &&
      runner.has(lapsed.snapshot.type) &&
      (lapsed.attempts ?? 0) < (lapsed.maxAttempts ?? 1) &&
      runner.canAdopt();
    const job = await this.#store.update(lapsed.snapshot.id, (current) => {
      if (!leaseLapsed(current, nowMs)) return current;
      if (retake && (current.attempts ?? 0) < (current.maxAttempts ?? 1)) {
        return requeueJob(current, this.#keeper.lease(), this.#clock.wallNow());
      }
      return failJob(current, workerLostProblem(), this.#clock.wallNow(), this.#finishOptions());
    });
    if (job === undefined || job.snapshot.version === lapsed.snapshot.version) return;
    if (job.snapshot.status === 'queued' && job.lease?.holder === this.#keeper.holder) runner.adopt(job.snapshot.id);
    else if (job.snapshot.done) this.#afterSettle(job);
  }

  // The cap frees up as the owner's oldest jobs expire; a minute (or the retention, if shorter) is a
  // fair time to look again, and forgetting finished jobs frees it at once.
  #withRetryHint(error: PollkitError): PollkitError {
    const retryAfterMs = Math.min(this.#retentionMs, 60_000);
    return Object.assign(error, { retryAfterMs });
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
    return progress === undefined ? this.#retention : { retentionMs: this.#retentionMs, progress };
  }

  // --- retention -----------------------------------------------------------------------------------

  // Keeps pace with any submit rate: a batch that comes back full means a backlog, so the next one
  // follows on the next turn of the event loop (other work runs in between) instead of after the
  // interval, and batches grow while they stay quick and shrink when one takes too long. The store
  // hands back the next expiry after each batch, so nothing is ever scanned.
  async #sweep(): Promise<ExpiryRunResult> {
    const limit = this.#sweepLimit;
    const started = this.#clock.now();
    let result: SweepResult;
    try {
      result = await this.#store.sweep(this.#clock.wallNow(), limit);
    } catch (error) {
      // A failing store is retried at the next interval rather than dropping retention for good.
      this.#onError(error, { operation: 'sweep' });
      return this.#clock.wallNow() + this.#sweepIntervalMs;
    }
    const tookMs = this.#clock.now() - started;
    const { removed, nextExpiryMs } = result;
    for (const id of removed) this.emit('forgotten', id, 'expired');
    if (tookMs > SWEEP_BATCH.slowMs) this.#sweepLimit = Math.max(SWEEP_BATCH.min, Math.floor(limit / 2));
    if (removed.length < limit) return nextExpiryMs;
    if (tookMs <= SWEEP_BATCH.fastMs) this.#sweepLimit = Math.min(SWEEP_BATCH.max, limit * 2);
    return 'again';
  }

  // --- misc ----------------------------------------------------------------------------------------

  #assertOpen(): void {
    if (this.#closed) throw new PollkitError('The job registry is shutting down', 'shutting-down', { retryable: true });
  }
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
