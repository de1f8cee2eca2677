/**
 * Long-running jobs that clients short- or long-poll: a registry of job types with in-process handlers
 * (or external workers driving jobs through `create`/`start`/`succeed`/`fail`), a bounded run queue,
 * per-job timeouts (held in the purgatory's timing wheel, like the waits), retention swept from an
 * expiry-ordered index, idempotency keys, and `wait()` — a long poll on one job built on the
 * {@link DelayedOperationPurgatory}, so ten thousand held requests cost ten thousand watcher entries
 * and no timers of their own.
 *
 * State lives behind a {@link JobStore}. Because the purgatory's `check()` is synchronous and the store
 * is not, the registry keeps a small hint per watched job (the newest version it has heard of, and the
 * job itself when the store's change notification carried it); a wake-up either answers from that
 * hint or re-reads the store. Hints exist only while someone waits on the job.
 *
 * @module
 */
import { EventEmitter } from 'eventemitter3';
import { throwIfAborted } from '../../core/abort.js';
import { type Clock, type TimerHandle, systemClock } from '../../core/clock.js';
import {
  AbortedError,
  IllegalTransitionError,
  InvalidArgumentError,
  OverloadedError,
  PollkitError,
  TimeoutError,
} from '../../core/errors.js';
import {
  type JobPage,
  type JobProgress,
  type JobSnapshot,
  type JobStatus,
  JOB_STATUSES,
  problem,
} from '../../core/protocol.js';
import { fingerprint } from './fingerprint.js';
import { randomId } from '../ids.js';
import { jobFailureProblem } from './job-problem.js';
import { cancelJob, type FinishOptions, failJob, newJob, progressJob, startJob, succeedJob } from './job-state.js';
import { DelayedOperationPurgatory } from '../purgatory/purgatory.js';
import type { TimerTask } from '../purgatory/timing-wheel.js';
import { integerAtLeast } from '../validate.js';
import type { JobChange, JobStore, JobTransition, StoredJob, SweepResult } from './stores/job-store.js';
import { MemoryJobStore } from './stores/memory-job-store.js';

/**
 * What a job handler receives.
 *
 * @example
 * ```ts
 * import type { JobContext } from 'pollkit/server';
 * async function transcode(context: JobContext<{ url: string }>): Promise<string> {
 *   context.reportProgress({ percent: 0, message: `fetching ${context.input.url}` });
 *   context.signal.throwIfAborted();
 *   return 'done';
 * }
 * ```
 */
export interface JobContext<Input = unknown> {
  /** The job's id, as clients see it in the job URL. */
  readonly id: string;
  /** The job type the handler was registered for with {@link JobRegistry.define}. */
  readonly type: string;
  /** The submitted input, after the type's `validate` (when it has one). */
  readonly input: Input;
  /** Aborts on cancel, on the per-job timeout and when the registry closes; stop work when it fires. */
  readonly signal: AbortSignal;
  /**
   * Records progress. Cheap to call in a tight loop: reports are coalesced so the stored job (and every
   * waiter) sees at most one progress change per `progressIntervalMs`, carrying the last report. A
   * report after the job finished is ignored.
   *
   * @throws InvalidArgumentError for a malformed report (percent outside 0–100, non-string message).
   */
  reportProgress(progress: JobProgress): void;
}

/**
 * Runs one job; its return value becomes the result, anything it throws (or rejects with) the error.
 *
 * @example
 * ```ts
 * import type { JobHandler } from 'pollkit/server';
 * const double: JobHandler<number, number> = ({ input }) => input * 2;
 * ```
 */
export type JobHandler<Input = unknown, Result = unknown> = (context: JobContext<Input>) => Result | Promise<Result>;

/**
 * Per-type options of {@link JobRegistry.define}.
 *
 * @example
 * ```ts
 * import type { JobTypeOptions } from 'pollkit/server';
 * const options: JobTypeOptions<number> = {
 *   validate: (input) => {
 *     if (typeof input !== 'number') throw new TypeError('input must be a number');
 *     return input;
 *   },
 *   timeoutMs: 60_000,
 * };
 * ```
 */
export interface JobTypeOptions<Input> {
  /** Checks and converts the submitted input; throwing rejects the submit with code `invalid-input`. */
  readonly validate?: (input: unknown) => Input;
  /** How long one run may take (ms, > 0) before it fails with code `job-timeout`. Default: the registry's `defaultTimeoutMs`. */
  readonly timeoutMs?: number;
}

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

interface JobDefinition {
  readonly handler: JobHandler<unknown, unknown>;
  readonly validate: ((input: unknown) => unknown) | undefined;
  readonly timeoutMs: number | undefined;
}

/** A handler run in this process, from the moment it is taken off the queue until it settles. */
interface ActiveJob {
  readonly id: string;
  /** Made when the handler first reads `context.signal`: most handlers never do, and each costs an allocation. */
  controller: AbortController | undefined;
  /** Why the job was stopped, for a signal first read after the fact. */
  abortReason: unknown;
  /** The per-job timeout, held in the purgatory's timing wheel rather than a timer of its own. */
  timer: TimerTask | undefined;
  finished: boolean;
  pendingProgress: JobProgress | undefined;
  progressTimer: TimerTask | undefined;
  lastProgressAt: number;
  flushingProgress: boolean;
}

/** What the registry knows about a job someone is waiting on. */
interface Watch {
  /** The purgatory keys of this job, shared by all its waiters. */
  readonly keys: readonly string[];
  refs: number;
  version: number;
  job: StoredJob | undefined;
  gone: boolean;
  stale: boolean;
  /** A store read in flight for waiters that arrived before the hint was filled. */
  loading: Promise<StoredJob | undefined> | undefined;
}

const GONE = Symbol('gone');
const RELOAD = Symbol('reload');
type Wake = StoredJob | typeof GONE | typeof RELOAD;

const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
const TYPE_NAME = /^[A-Za-z0-9._:/-]{1,200}$/;
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
  readonly #concurrency: number;
  readonly #maxQueued: number;
  readonly #retentionMs: number;
  readonly #defaultTimeoutMs: number;
  readonly #progressIntervalMs: number;
  readonly #exposeStackTraces: boolean;
  readonly #retryAfter: number | ((job: JobSnapshot) => number);
  readonly #generateId: () => string;
  readonly #sweepIntervalMs: number;
  readonly #onError: (error: unknown) => void;

  readonly #types = new Map<string, JobDefinition>();
  // A Set keeps submission order and lets a canceled job leave the queue in O(1).
  readonly #queue = new Set<string>();
  readonly #active = new Map<string, ActiveJob>();
  readonly #watches = new Map<string, Watch>();
  #running = 0;
  #admitting = 0;
  #waiting = 0;
  #idleResolvers: (() => void)[] = [];
  #drainResolvers: (() => void)[] = [];
  #sweepTimer: TimerHandle | undefined;
  #sweepAtMs: number | undefined;
  #lastSweepAt = Number.NEGATIVE_INFINITY;
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #unsubscribe: () => void;

  constructor(options: JobRegistryOptions = {}) {
    super();
    this.#clock = options.clock ?? systemClock;
    this.#concurrency = integerAtLeast(options.concurrency ?? 16, 'concurrency', 1);
    this.#maxQueued = integerAtLeast(options.maxQueued ?? 1000, 'maxQueued', 0);
    this.#retentionMs = duration(options.retentionMs ?? 3_600_000, 'retentionMs', true);
    this.#defaultTimeoutMs = positiveDuration(options.defaultTimeoutMs ?? 3_600_000, 'defaultTimeoutMs');
    this.#progressIntervalMs = duration(options.progressIntervalMs ?? 100, 'progressIntervalMs', false);
    this.#sweepIntervalMs = duration(options.sweepIntervalMs ?? 1000, 'sweepIntervalMs', false);
    this.#exposeStackTraces = options.exposeStackTraces ?? false;
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
    validateTypeName(type);
    if (this.#types.has(type)) throw new InvalidArgumentError(`job type "${type}" is already defined`, 'type');
    if (typeof handler !== 'function') throw new InvalidArgumentError('handler must be a function', 'handler');
    if (options.validate !== undefined && typeof options.validate !== 'function') {
      throw new InvalidArgumentError('validate must be a function', 'validate');
    }
    const timeoutMs = options.timeoutMs === undefined ? undefined : positiveDuration(options.timeoutMs, 'timeoutMs');
    this.#types.set(type, {
      handler: handler as JobHandler<unknown, unknown>,
      validate: options.validate,
      timeoutMs,
    });
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
    return this.#types.has(type);
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
    const definition = this.#types.get(type);
    if (definition === undefined) {
      throw new PollkitError(`Unknown job type "${String(type)}"`, 'unknown-job-type');
    }
    return this.#insert(type, input, options, definition);
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
    return this.#insert(type, input, options, undefined);
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
    this.#queue.delete(id);
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
    const body = jobFailureProblem(error, { exposeStackTraces: this.#exposeStackTraces });
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
    return (await this.#visible(id, access.owner))?.snapshot;
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
    const visible = await this.#visible(id, access.owner);
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
    const visible = await this.#visible(id, access.owner);
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
    const { sinceVersion, signal, owner } = options;
    let timeoutMs: number;
    try {
      timeoutMs = duration(options.timeoutMs, 'timeoutMs', false);
      if (sinceVersion !== undefined && !(Number.isInteger(sinceVersion) && sinceVersion >= 0)) {
        throw new InvalidArgumentError(
          `sinceVersion must be an integer >= 0, got ${String(sinceVersion)}`,
          'sinceVersion',
        );
      }
      throwIfAborted(signal);
    } catch (error) {
      return Promise.reject(error);
    }
    const deadline = this.#clock.now() + timeoutMs;
    // Watch before reading, so a change landing between the read and the purgatory registration
    // still reaches this wait's hint (the check–watch–recheck order of Kafka's purgatory).
    const watch = this.#watch(id);
    this.#waiting++;
    // Another waiter's hint is as fresh as the last change notification; when it is at or past the
    // caller's version it answers (or starts the hold) without a store read.
    const hinted = watch.job;
    if (
      hinted !== undefined &&
      !watch.stale &&
      !watch.gone &&
      sinceVersion !== undefined &&
      watch.version >= sinceVersion
    ) {
      const job = this.#visibleJob(hinted, owner);
      if (job === undefined || job.snapshot.version !== sinceVersion || this.#closed || timeoutMs === 0) {
        this.#leave(id, watch);
        return Promise.resolve(job?.snapshot);
      }
      return this.#hold(id, watch, sinceVersion, deadline, owner, signal);
    }
    return this.#readThenHold(id, watch, sinceVersion, deadline, owner, signal);
  }

  async #readThenHold(
    id: string,
    watch: Watch,
    sinceVersion: number | undefined,
    deadline: number,
    owner: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<JobSnapshot | undefined> {
    let holding = false;
    try {
      // Waiters arriving together share one store read instead of making one each.
      const loaded = await (watch.loading ??= this.#load(id, watch));
      const job = loaded === undefined ? undefined : this.#visibleJob(loaded, owner);
      if (job === undefined) return undefined;
      observe(watch, job);
      if (sinceVersion === undefined || job.snapshot.version !== sinceVersion || this.#closed) return job.snapshot;
      if (deadline - this.#clock.now() <= 0) return job.snapshot;
      holding = true;
      // Returned, not awaited: this frame ends here, and only the small one of #hold stays alive while held.
      return this.#hold(id, watch, sinceVersion, deadline, owner, signal);
    } finally {
      if (!holding) this.#leave(id, watch);
    }
  }

  // Held waits are what a server keeps ten thousand of, so this frame is kept to the few values it needs.
  async #hold(
    id: string,
    watch: Watch,
    sinceVersion: number,
    deadline: number,
    owner: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<JobSnapshot | undefined> {
    try {
      for (;;) {
        const remaining = deadline - this.#clock.now();
        watch.stale = false;
        const outcome = await this.#purgatory.waitFor<Wake>(
          watch.keys,
          () => this.#check(watch, sinceVersion),
          signal === undefined ? { timeoutMs: remaining } : { timeoutMs: remaining, signal },
        );
        if (outcome.status === 'completed') {
          if (outcome.value === GONE) return undefined;
          if (outcome.value !== RELOAD) return outcome.value.snapshot;
        }
        const job = await this.#visible(id, owner);
        if (job === undefined || outcome.status !== 'completed') return job?.snapshot;
        // A bare "something changed" notification: re-read and, if the version did not move, hold again.
        observe(watch, job);
        if (job.snapshot.version !== sinceVersion || this.#closed) return job.snapshot;
        if (deadline - this.#clock.now() <= 0) return job.snapshot;
      }
    } finally {
      this.#leave(id, watch);
    }
  }

  #load(id: string, watch: Watch): Promise<StoredJob | undefined> {
    const loading = typeof id === 'string' && id.length > 0 ? this.#store.get(id) : Promise.resolve(undefined);
    const done = (): void => {
      if (watch.loading === loading) watch.loading = undefined;
    };
    loading.then(done, done);
    return loading;
  }

  #leave(id: string, watch: Watch): void {
    this.#unwatch(id, watch);
    if (--this.#waiting === 0 && this.#drainResolvers.length > 0) {
      for (const resolve of this.#drainResolvers.splice(0)) resolve();
    }
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
    if (this.#running === 0 && this.#queue.size === 0 && this.#admitting === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleResolvers.push(resolve));
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
    return { running: this.#running, queued: this.#queue.size, waiting: this.#waiting };
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
    if (this.#sweepTimer !== undefined) this.#clock.clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    const body = problem('shutting-down', 'The job registry shut down before the job finished.');
    const queued = [...this.#queue];
    this.#queue.clear();
    const active = [...this.#active.values()];
    for (const job of active) this.#release(job, new AbortedError('The job registry is closing'));
    const settled = await Promise.allSettled(
      [...queued, ...active.map((job) => job.id)].map((id) =>
        this.#store.update(id, (current) =>
          current.snapshot.done ? current : failJob(current, body, this.#clock.wallNow(), this.#finishOptions()),
        ),
      ),
    );
    for (const outcome of settled) {
      if (outcome.status === 'fulfilled' && outcome.value?.snapshot.status === 'failed') {
        this.emit('settled', outcome.value.snapshot);
      }
    }
    // Every held wait re-checks, sees the registry closed and answers with the state it re-reads.
    for (const id of [...this.#watches.keys()]) this.#purgatory.checkAndComplete(jobKey(id));
    if (this.#waiting > 0) await new Promise<void>((resolve) => this.#drainResolvers.push(resolve));
    this.#unsubscribe();
    if (this.#ownsPurgatory) this.#purgatory.shutdown();
    if (this.#ownsStore) await this.#store.close();
    this.#notifyIdle();
  }

  // --- submitting ---------------------------------------------------------------------------------

  async #insert(
    type: string,
    input: unknown,
    options: SubmitOptions,
    definition: JobDefinition | undefined,
  ): Promise<JobSnapshot> {
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
    const validate = this.#types.get(type)?.validate;
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
    const runsHere = definition !== undefined;
    if (runsHere && this.#running + this.#queue.size + this.#admitting >= this.#concurrency + this.#maxQueued) {
      const retryAfterMs = (typeof this.#retryAfter === 'number' ? this.#retryAfter : 1) * 1000;
      throw new OverloadedError(`The job queue is full (${this.#maxQueued} waiting)`, { retryAfterMs });
    }
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
    if (runsHere) this.#admitting++;
    let stored: StoredJob;
    try {
      const result = await this.#store.insert(job);
      if (!result.inserted) return replay(result.job, digest, idempotencyKey);
      stored = result.job;
      if (runsHere) this.#queue.add(stored.snapshot.id);
    } finally {
      if (runsHere) {
        this.#admitting--;
        this.#notifyIdle();
      }
    }
    this.emit('submitted', stored.snapshot);
    if (runsHere) {
      if (this.#closed) await this.#abandonQueued(stored.snapshot.id);
      else this.#pump();
    }
    return stored.snapshot;
  }

  // A job stored while close() was already under way would otherwise stay queued forever.
  async #abandonQueued(id: string): Promise<void> {
    if (!this.#queue.delete(id)) return;
    const body = problem('shutting-down', 'The job registry shut down before the job started.');
    const job = await this.#store.update(id, (current) =>
      current.snapshot.done ? current : failJob(current, body, this.#clock.wallNow(), this.#finishOptions()),
    );
    if (job !== undefined) this.emit('settled', job.snapshot);
    this.#notifyIdle();
  }

  // --- running handlers ---------------------------------------------------------------------------

  #pump(): void {
    while (!this.#closed && this.#running < this.#concurrency && this.#queue.size > 0) {
      const id = this.#queue.values().next().value as string;
      this.#queue.delete(id);
      this.#running++;
      this.#run(id).catch(this.#onError);
    }
    this.#notifyIdle();
  }

  async #run(id: string): Promise<void> {
    const active: ActiveJob = {
      id,
      controller: undefined,
      abortReason: undefined,
      timer: undefined,
      finished: false,
      pendingProgress: undefined,
      progressTimer: undefined,
      lastProgressAt: Number.NEGATIVE_INFINITY,
      flushingProgress: false,
    };
    // Registered before the start is stored, so a cancel racing the start still finds and aborts it.
    this.#active.set(id, active);
    let job: StoredJob | undefined;
    try {
      job = await this.#store.update(id, (current) => startJob(current, this.#clock.wallNow()));
    } catch (error) {
      if (!IllegalTransitionError.is(error)) {
        // The store failed; the job cannot be run, so it is failed if that at least can be stored.
        this.#release(active);
        await this.#finish(id, (current) =>
          failJob(current, jobFailureProblem(error), this.#clock.wallNow(), this.#finishOptions()),
        );
        return;
      }
    }
    if (job === undefined || active.finished) {
      this.#release(active);
      return;
    }
    this.emit('started', job.snapshot);
    const definition = this.#types.get(job.snapshot.type)!;
    const timeoutMs = definition.timeoutMs ?? this.#defaultTimeoutMs;
    if (Number.isFinite(timeoutMs)) {
      active.timer = this.#purgatory.timer.schedule(
        () => void this.#timeout(active, timeoutMs).catch(this.#onError),
        timeoutMs,
      );
    }
    const context: JobContext = Object.freeze({
      id,
      type: job.snapshot.type,
      input: job.input,
      get signal(): AbortSignal {
        return signalOf(active);
      },
      reportProgress: (progress: JobProgress) => this.#reportProgress(active, progress),
    });
    let result: unknown;
    try {
      result = await definition.handler(context);
    } catch (error) {
      if (active.finished) return;
      const pending = active.pendingProgress;
      this.#release(active);
      const body = jobFailureProblem(error, { exposeStackTraces: this.#exposeStackTraces });
      await this.#finish(id, (current) => failJob(current, body, this.#clock.wallNow(), this.#finishOptions(pending)));
      return;
    }
    if (active.finished) return;
    const pending = active.pendingProgress;
    this.#release(active);
    await this.#finish(id, (current) =>
      succeedJob(current, result, this.#clock.wallNow(), this.#finishOptions(pending)),
    );
  }

  async #timeout(active: ActiveJob, timeoutMs: number): Promise<void> {
    active.timer = undefined;
    if (active.finished) return;
    const pending = active.pendingProgress;
    this.#release(active, new TimeoutError(`The job exceeded its time limit of ${timeoutMs} ms`));
    const body = problem('job-timeout', `The job did not finish within ${timeoutMs} ms.`);
    await this.#finish(active.id, (current) =>
      failJob(current, body, this.#clock.wallNow(), this.#finishOptions(pending)),
    );
  }

  // Stores a terminal state reached by this process; losing the race to another writer is not an error.
  async #finish(id: string, transition: JobTransition): Promise<void> {
    try {
      const job = await this.#store.update(id, transition);
      if (job !== undefined && job.snapshot.done) this.#afterSettle(job);
    } catch (error) {
      if (!IllegalTransitionError.is(error)) throw error;
    }
  }

  /** Frees the slot of a handler (once), stops its timers and, with a reason, aborts its signal. */
  #release(active: ActiveJob, reason?: unknown): void {
    if (active.finished) return;
    active.finished = true;
    active.timer?.cancel();
    active.progressTimer?.cancel();
    active.timer = active.progressTimer = undefined;
    active.pendingProgress = undefined;
    if (this.#active.get(active.id) === active) this.#active.delete(active.id);
    this.#running--;
    if (reason !== undefined) {
      active.abortReason = reason;
      active.controller?.abort(reason);
    }
    this.#pump();
  }

  // --- progress coalescing -------------------------------------------------------------------------

  // Leading and trailing edge: the first report after a quiet spell is stored at once; later ones
  // only replace the pending value, stored when progressIntervalMs has passed since the last store
  // and no store write is in flight. So a storm of N reports costs two writes per interval, not N.
  #reportProgress(active: ActiveJob, progress: JobProgress): void {
    validateProgress(progress);
    if (active.finished) return;
    active.pendingProgress = progress;
    this.#scheduleProgress(active);
  }

  #scheduleProgress(active: ActiveJob): void {
    if (active.finished || active.flushingProgress || active.progressTimer !== undefined) return;
    const delay = active.lastProgressAt + this.#progressIntervalMs - this.#clock.now();
    if (delay <= 0) {
      void this.#flushProgress(active);
      return;
    }
    active.progressTimer = this.#purgatory.timer.schedule(() => {
      active.progressTimer = undefined;
      void this.#flushProgress(active);
    }, delay);
  }

  async #flushProgress(active: ActiveJob): Promise<void> {
    const progress = active.pendingProgress;
    if (progress === undefined || active.finished) return;
    active.pendingProgress = undefined;
    active.flushingProgress = true;
    active.lastProgressAt = this.#clock.now();
    try {
      const job = await this.#store.update(active.id, (current) =>
        progressJob(current, progress, this.#clock.wallNow()),
      );
      if (job !== undefined) this.emit('progress', job.snapshot);
    } catch {
      // Progress is advisory: a job that finished meanwhile or a failing store write loses this report only.
    } finally {
      active.flushingProgress = false;
      if (active.pendingProgress !== undefined) this.#scheduleProgress(active);
    }
  }

  // --- store changes, waits and hints --------------------------------------------------------------

  #onStoreChange(change: JobChange): void {
    const watch = this.#watches.get(change.id);
    if (watch !== undefined) {
      if (change.deleted === true) watch.gone = true;
      else if (change.job !== undefined) observe(watch, change.job);
      else if (change.version > watch.version) {
        watch.version = change.version;
        watch.stale = true;
      } else watch.stale = true;
      this.#purgatory.checkAndComplete(jobKey(change.id));
    }
    const active = this.#active.get(change.id);
    if (change.deleted === true || change.job?.snapshot.done === true) {
      // Finished elsewhere (cancel through any registry sharing the store, a worker's succeed): stop the handler.
      if (active !== undefined)
        this.#release(active, new AbortedError(`Job ${change.id} was ${change.job?.snapshot.status ?? 'removed'}`));
      if (this.#queue.delete(change.id)) this.#notifyIdle();
    } else if (active !== undefined && change.job === undefined) {
      this.#store.get(change.id).then((job) => {
        if (job === undefined || job.snapshot.done)
          this.#release(active, new AbortedError(`Job ${change.id} finished elsewhere`));
      }, this.#onError);
    }
    const expiresAtMs = change.job?.expiresAtMs;
    if (expiresAtMs !== undefined) this.#scheduleSweep(expiresAtMs);
  }

  #check(watch: Watch, sinceVersion: number): Wake | undefined {
    if (watch.gone) return GONE;
    if (watch.version !== sinceVersion) return watch.job?.snapshot.version === watch.version ? watch.job : RELOAD;
    if (watch.stale || this.#closed) return RELOAD;
    return undefined;
  }

  #watch(id: string): Watch {
    let watch = this.#watches.get(id);
    if (watch === undefined) {
      watch = {
        keys: [jobKey(id)],
        refs: 0,
        version: 0,
        job: undefined,
        gone: false,
        stale: false,
        loading: undefined,
      };
      this.#watches.set(id, watch);
    }
    watch.refs++;
    return watch;
  }

  #unwatch(id: string, watch: Watch): void {
    if (--watch.refs === 0 && this.#watches.get(id) === watch) this.#watches.delete(id);
  }

  async #visible(id: string, owner: string | undefined): Promise<StoredJob | undefined> {
    if (typeof id !== 'string' || id.length === 0) return undefined;
    const job = await this.#store.get(id);
    return job === undefined ? undefined : this.#visibleJob(job, owner);
  }

  #visibleJob(job: StoredJob, owner: string | undefined): StoredJob | undefined {
    if (owner !== undefined && job.owner !== owner) return undefined;
    if (job.expiresAtMs !== undefined && job.expiresAtMs <= this.#clock.wallNow()) return undefined;
    return job;
  }

  async #transition(id: string, transition: JobTransition): Promise<StoredJob> {
    const job = await this.#store.update(id, transition);
    if (job === undefined) throw new PollkitError(`No job ${id}`, 'job-not-found');
    return job;
  }

  #afterSettle(job: StoredJob): void {
    this.#queue.delete(job.snapshot.id);
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

  #notifyIdle(): void {
    if (this.#running === 0 && this.#queue.size === 0 && this.#admitting === 0 && this.#idleResolvers.length > 0) {
      for (const resolve of this.#idleResolvers.splice(0)) resolve();
    }
  }
}

function rethrowLater(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

function signalOf(active: ActiveJob): AbortSignal {
  if (active.controller === undefined) {
    active.controller = new AbortController();
    if (active.abortReason !== undefined) active.controller.abort(active.abortReason);
  }
  return active.controller.signal;
}

function jobKey(id: string): string {
  return `job:${id}`;
}

function observe(watch: Watch, job: StoredJob): void {
  if (job.snapshot.version >= watch.version) {
    watch.version = job.snapshot.version;
    watch.job = job;
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

function validateTypeName(type: string): void {
  if (typeof type !== 'string' || !TYPE_NAME.test(type)) {
    throw new InvalidArgumentError(
      `type must be 1 to 200 characters of letters, digits and . _ : / -, got ${JSON.stringify(type)}`,
      'type',
    );
  }
}

function validateProgress(progress: JobProgress): void {
  if (typeof progress !== 'object' || progress === null) {
    throw new InvalidArgumentError('progress must be an object', 'progress');
  }
  const { percent, message } = progress;
  if (percent !== undefined && !(typeof percent === 'number' && percent >= 0 && percent <= 100)) {
    throw new InvalidArgumentError(
      `progress.percent must be a number from 0 to 100, got ${String(percent)}`,
      'progress',
    );
  }
  if (message !== undefined && typeof message !== 'string') {
    throw new InvalidArgumentError('progress.message must be a string', 'progress');
  }
}

// A time limit of zero would fire before the handler even starts.
function positiveDuration(value: number, name: string): number {
  if (typeof value !== 'number' || !(value > 0)) {
    throw new InvalidArgumentError(
      `${name} must be a number of milliseconds > 0 (or Infinity), got ${String(value)}`,
      name,
    );
  }
  return value;
}

function duration(value: number, name: string, allowInfinity: boolean, unit = 'milliseconds'): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || (!allowInfinity && !Number.isFinite(value))) {
    throw new InvalidArgumentError(
      `${name} must be a number of ${unit} >= 0${allowInfinity ? ' (or Infinity)' : ''}, got ${String(value)}`,
      name,
    );
  }
  return value;
}
