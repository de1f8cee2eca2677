/**
 * Running job handlers in this process: the job types and their handlers, a bounded run queue with a
 * concurrency limit, per-job time limits (held in the purgatory's timing wheel), coalesced progress,
 * and aborting handlers whose job was finished elsewhere. The {@link JobRegistry} keeps job state and
 * answers waits; this runner is the executor it hands jobs to, so another one (a queue's workers) can
 * take its place. Internal: users reach it through `JobRegistry.define` and `submit`.
 *
 * @module
 */
import { Backoff, backoff } from '../../core/backoff.js';
import {
  AbortedError,
  IllegalTransitionError,
  OverloadedError,
  PollkitError,
  TimeoutError,
} from '../../core/errors.js';
import type { Clock, TimerHandle } from '../../core/clock.js';
import { type JobProgress, type JobSnapshot, problem } from '../../core/protocol.js';
import { TimerTask, type TimingWheel } from '../purgatory/timing-wheel.js';
import { integerAtLeast } from '../validate.js';
import type { BackgroundErrorHandler } from './background-errors.js';
import type { LeaseKeeper } from './leases.js';
import { jobFailureProblem } from './job-problem.js';
import { type FinishOptions, failJob, progressJob, startJob, succeedJob } from './job-state.js';
import type { JobChange, JobStore, JobTransition, StoredJob } from './stores/job-store.js';
import { duration, positiveDuration, validateProgress, validateTypeName } from './validation.js';
import { InvalidArgumentError } from '../../core/errors.js';

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
  /** The job type the handler was registered for with `JobRegistry.define`. */
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
 * Per-type options of `JobRegistry.define`.
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
  /**
   * How many times a job of this type may be started when a run is lost with its process (killed,
   * partitioned: its lease lapsed); a live registry that defines the type runs it again until the
   * attempts are spent, then fails it with `worker-lost`. Only for handlers that are safe to run
   * twice. A handler that throws fails the job at once, whatever this says. Default 1.
   */
  readonly attempts?: number;
}

/** The runner's options, as given to `JobRegistry` (see `JobRegistryOptions`). */
export interface JobRunnerOptions {
  readonly concurrency?: number;
  readonly maxQueued?: number;
  readonly defaultTimeoutMs?: number;
  readonly progressIntervalMs?: number;
  readonly exposeStackTraces?: boolean;
}

/** What the runner needs from the registry that owns it. */
export interface JobRunnerHost {
  readonly store: JobStore;
  readonly clock: Clock;
  /** Holds per-job time limits and progress flushes. */
  readonly timer: TimingWheel;
  /** Receives failures that have no caller to reject; never throws. */
  readonly onError: BackgroundErrorHandler;
  /** Renews the leases of the jobs this runner queued or runs. */
  readonly keeper: LeaseKeeper;
  /** Retention (and pending progress) for a job reaching a final state. */
  finishOptions(progress?: JobProgress): FinishOptions;
  /** A job this runner started is now `running`. */
  started(job: JobSnapshot): void;
  /** A coalesced progress report was stored. */
  progressed(job: JobSnapshot): void;
  /** A job this runner ran (or abandoned) reached a final state. */
  settled(job: StoredJob): void;
}

interface JobDefinition {
  readonly handler: JobHandler<unknown, unknown>;
  readonly validate: ((input: unknown) => unknown) | undefined;
  readonly timeoutMs: number | undefined;
  readonly attempts: number;
}

/**
 * A handler run in this process, from the moment it is taken off the queue until it settles. It is
 * also its own time limit: the task the timing wheel holds, so a run costs no closure or timer for it.
 */
class ActiveJob extends TimerTask {
  readonly id: string;
  readonly #runner: JobRunner;
  /** Made when the handler first reads `context.signal`: most handlers never do, and each costs an allocation. */
  controller: AbortController | undefined = undefined;
  /** Why the job was stopped, for a signal first read after the fact. */
  abortReason: unknown = undefined;
  /** The time limit in ms while it is held in the wheel. */
  timeoutMs = 0;
  finished = false;
  pendingProgress: JobProgress | undefined = undefined;
  progressTimer: TimerTask | undefined = undefined;
  lastProgressAt = Number.NEGATIVE_INFINITY;
  flushingProgress = false;

  constructor(id: string, runner: JobRunner) {
    super();
    this.id = id;
    this.#runner = runner;
  }

  /** The time limit passed. */
  override run(): void {
    this.#runner._timeout(this);
  }
}

/** A final state this process reached and is still storing. */
interface PendingFinish {
  /** Ends the current pause between two attempts at once (close() does, for a last attempt). */
  wake: (() => void) | undefined;
  done: Promise<void> | undefined;
}

/**
 * What a handler receives. A class, so that its `signal` getter is shared by every run: an object
 * literal with an accessor costs V8 a slow path of about a microsecond per run. `signal` is inherited
 * (its AbortController is made on first read); the rest are own properties.
 */
class HandlerContext implements JobContext {
  readonly id: string;
  readonly type: string;
  readonly input: unknown;
  readonly reportProgress: (progress: JobProgress) => void;
  readonly #active: ActiveJob;

  constructor(runner: JobRunner, active: ActiveJob, type: string, input: unknown) {
    this.id = active.id;
    this.type = type;
    this.input = input;
    this.reportProgress = (progress) => runner._reportProgress(active, progress);
    this.#active = active;
    Object.freeze(this);
  }

  get signal(): AbortSignal {
    return signalOf(this.#active);
  }
}

// Retries of a final write that the store refused: quick at first, since most outages are a blip
// (a failover, a restart), then every few seconds for as long as it takes.
const FINISH_BACKOFF = backoff({ strategy: 'full', initial: 200, factor: 2, max: 5000 });

/** Whether a store failure may pass: an outage, not a write that can never succeed. */
function isTransient(error: unknown): boolean {
  if (PollkitError.is(error)) return error.retryable;
  // What a serializer throws (a BigInt, a cycle) is the same on every attempt.
  return !(error instanceof TypeError || error instanceof RangeError);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs the handlers of defined job types, `concurrency` at a time, in submission order. */
export class JobRunner {
  readonly #host: JobRunnerHost;
  readonly #concurrency: number;
  readonly #maxQueued: number;
  readonly #defaultTimeoutMs: number;
  readonly #progressIntervalMs: number;
  readonly #exposeStackTraces: boolean;
  readonly #types = new Map<string, JobDefinition>();
  // A Set keeps submission order and lets a canceled job leave the queue in O(1).
  readonly #queue = new Set<string>();
  readonly #active = new Map<string, ActiveJob>();
  /** Outcomes whose first write was refused, retried until the store takes them. */
  readonly #finishing = new Map<string, PendingFinish>();
  /** Outcomes whose first write is in flight. */
  #storing = 0;
  #storedResolvers: (() => void)[] = [];
  #running = 0;
  #admitting = 0;
  #idleResolvers: (() => void)[] = [];
  #closed = false;

  constructor(host: JobRunnerHost, options: JobRunnerOptions = {}) {
    this.#host = host;
    this.#concurrency = integerAtLeast(options.concurrency ?? 16, 'concurrency', 1);
    this.#maxQueued = integerAtLeast(options.maxQueued ?? 1000, 'maxQueued', 0);
    this.#defaultTimeoutMs = positiveDuration(options.defaultTimeoutMs ?? 3_600_000, 'defaultTimeoutMs');
    this.#progressIntervalMs = duration(options.progressIntervalMs ?? 100, 'progressIntervalMs', false);
    this.#exposeStackTraces = options.exposeStackTraces ?? false;
  }

  /** Handlers running now (at most `concurrency`). */
  get running(): number {
    return this.#running;
  }

  /** Jobs accepted by this process and waiting for a free handler slot. */
  get queued(): number {
    return this.#queue.size;
  }

  /** Whether problems of failed handlers carry the error's stack. */
  get exposeStackTraces(): boolean {
    return this.#exposeStackTraces;
  }

  /** Registers `handler` for `type`; throws `InvalidArgumentError` for a bad or duplicate type. */
  define<Input, Result>(type: string, handler: JobHandler<Input, Result>, options: JobTypeOptions<Input> = {}): void {
    validateTypeName(type);
    if (this.#types.has(type)) throw new InvalidArgumentError(`job type "${type}" is already defined`, 'type');
    if (typeof handler !== 'function') throw new InvalidArgumentError('handler must be a function', 'handler');
    if (options.validate !== undefined && typeof options.validate !== 'function') {
      throw new InvalidArgumentError('validate must be a function', 'validate');
    }
    const timeoutMs = options.timeoutMs === undefined ? undefined : positiveDuration(options.timeoutMs, 'timeoutMs');
    const attempts = integerAtLeast(options.attempts ?? 1, 'attempts', 1);
    this.#types.set(type, {
      handler: handler as JobHandler<unknown, unknown>,
      validate: options.validate,
      timeoutMs,
      attempts,
    });
  }

  /** How many starts a job of `type` may have (its `attempts`); 1 for a type not defined here. */
  attemptsOf(type: string): number {
    return this.#types.get(type)?.attempts ?? 1;
  }

  /** Whether a job taken over from a lost process fits in the queue now. */
  canAdopt(): boolean {
    return this.#running + this.#queue.size + this.#admitting < this.#concurrency + this.#maxQueued;
  }

  /** Queues a job this registry took over (its lease already names this registry). */
  adopt(id: string): void {
    if (this.#closed || this.#queue.has(id) || this.#active.has(id)) return;
    this.#queue.add(id);
    this.#host.keeper.hold(id);
    this.#pump();
  }

  /** The lease of a job this process held went elsewhere: stop working on it. */
  lost(id: string): void {
    const active = this.#active.get(id);
    if (active !== undefined) this.#release(active, new AbortedError(`Job ${id} is no longer held by this process`));
    this.dequeue(id);
  }

  /** True when `type` has a handler here. */
  has(type: string): boolean {
    return this.#types.has(type);
  }

  /** The `validate` function of `type`, if it has one. */
  validatorOf(type: string): ((input: unknown) => unknown) | undefined {
    return this.#types.get(type)?.validate;
  }

  /**
   * Reserves a place for a job about to be stored, or throws {@link OverloadedError} when
   * `concurrency` handlers run and `maxQueued` jobs wait. Call {@link JobRunner.admitted} after the
   * store answered, whether it stored the job or not.
   */
  admit(retryAfterSeconds: number): void {
    if (this.#running + this.#queue.size + this.#admitting >= this.#concurrency + this.#maxQueued) {
      throw new OverloadedError(`The job queue is full (${this.#maxQueued} waiting)`, {
        retryAfterMs: retryAfterSeconds * 1000,
      });
    }
    this.#admitting++;
  }

  /** Ends a reservation of {@link JobRunner.admit}; `id` is the stored job to run, if one was stored. */
  admitted(id: string | undefined): void {
    this.#admitting--;
    if (id !== undefined) {
      this.#queue.add(id);
      this.#host.keeper.hold(id);
    }
    this.#notifyIdle();
  }

  /**
   * Starts queued handlers while slots are free; a job stored after `close()` is failed instead, and
   * the promise returned then resolves once that is stored.
   */
  pump(id: string): Promise<void> | undefined {
    if (this.#closed) return this.#abandonQueued(id);
    this.#pump();
    return undefined;
  }

  /** The job left the queue without this runner (an external `start`, a settle). */
  dequeue(id: string): void {
    if (this.#queue.delete(id)) this.#notifyIdle();
  }

  /** A store change: a job finished or removed elsewhere stops its handler here. */
  onChange(change: JobChange): void {
    const active = this.#active.get(change.id);
    if (change.deleted === true || change.job?.snapshot.done === true) {
      this.#host.keeper.release(change.id);
      // Finished elsewhere (cancel through any registry sharing the store, a worker's succeed): stop the handler.
      if (active !== undefined)
        this.#release(active, new AbortedError(`Job ${change.id} was ${change.job?.snapshot.status ?? 'removed'}`));
      this.dequeue(change.id);
    } else if (active !== undefined && change.job === undefined) {
      this.#host.store.get(change.id).then(
        (job) => {
          if (job === undefined || job.snapshot.done)
            this.#release(active, new AbortedError(`Job ${change.id} finished elsewhere`));
        },
        (error: unknown) => this.#host.onError(error, { operation: 'resync', jobId: change.id }),
      );
    }
  }

  /** Resolves when no handler runs, none is queued, and every outcome is stored. */
  onIdle(): Promise<void> {
    if (this.#idle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleResolvers.push(resolve));
  }

  /**
   * Aborts running handlers and fails their jobs and the queued ones with code `shutting-down`;
   * resolves once the store has them.
   */
  async close(): Promise<void> {
    this.#closed = true;
    const host = this.#host;
    // Retryable: a client may submit the job again, with the same idempotency key, elsewhere.
    const body = problem('shutting-down', 'The job registry shut down before the job finished.', { retryable: true });
    const queued = [...this.#queue];
    this.#queue.clear();
    const active = [...this.#active.values()];
    for (const job of active) this.#release(job, new AbortedError('The job registry is closing'));
    const ids = [...queued, ...active.map((job) => job.id)];
    const settled = await Promise.allSettled(
      ids.map((id) =>
        host.store.update(
          id,
          this.#own(id, (current) =>
            current.snapshot.done ? current : failJob(current, body, host.clock.wallNow(), host.finishOptions()),
          ),
        ),
      ),
    );
    for (const [index, outcome] of settled.entries()) {
      if (outcome.status === 'fulfilled' && outcome.value?.snapshot.status === 'failed') host.settled(outcome.value);
      else if (outcome.status === 'rejected' && !IllegalTransitionError.is(outcome.reason)) {
        host.onError(outcome.reason, { operation: 'close', jobId: ids[index]! });
      }
    }
    // First writes in flight settle first (a refused one then joins #finishing, or gives up: closing).
    if (this.#storing > 0) await new Promise<void>((resolve) => this.#storedResolvers.push(resolve));
    // Outcomes still waiting for the store get one last attempt now rather than after their pause.
    const finishing = [...this.#finishing.values()];
    for (const pending of finishing) pending.wake?.();
    await Promise.all(finishing.map((pending) => pending.done));
    this.#notifyIdle();
  }

  // A job stored while close() was already under way would otherwise stay queued forever.
  async #abandonQueued(id: string): Promise<void> {
    if (!this.#queue.delete(id)) return;
    const host = this.#host;
    const body = problem('shutting-down', 'The job registry shut down before the job started.', { retryable: true });
    const job = await host.store.update(
      id,
      this.#own(id, (current) =>
        current.snapshot.done ? current : failJob(current, body, host.clock.wallNow(), host.finishOptions()),
      ),
    );
    if (job !== undefined) host.settled(job);
    this.#notifyIdle();
  }

  // --- running handlers ---------------------------------------------------------------------------

  #pump(): void {
    while (!this.#closed && this.#running < this.#concurrency && this.#queue.size > 0) {
      const id = this.#queue.values().next().value as string;
      this.#queue.delete(id);
      this.#running++;
      void this.#run(id);
    }
    this.#notifyIdle();
  }

  // Never rejects: whatever escapes (a 'started' listener that throws) goes to onError. The final
  // write is not awaited: #finish never rejects, and close() and onIdle() track it.
  async #run(id: string): Promise<void> {
    try {
      const host = this.#host;
      const active = new ActiveJob(id, this);
      // Registered before the start is stored, so a cancel racing the start still finds and aborts it.
      this.#active.set(id, active);
      let job: StoredJob | undefined;
      try {
        job = await host.store.update(id, (current) => {
          this.#assertHeld(current, id);
          return startJob(current, host.clock.wallNow(), host.keeper.lease());
        });
      } catch (error) {
        if (!IllegalTransitionError.is(error)) {
          // The store failed; the job cannot be run, so it is failed if that at least can be stored.
          this.#release(active);
          void this.#finish(id, (current) => {
            this.#assertHeld(current, id);
            return failJob(current, jobFailureProblem(error), host.clock.wallNow(), host.finishOptions());
          });
          return;
        }
      }
      if (job === undefined || active.finished) {
        this.#release(active);
        return;
      }
      host.started(job.snapshot);
      const definition = this.#types.get(job.snapshot.type)!;
      const timeoutMs = definition.timeoutMs ?? this.#defaultTimeoutMs;
      if (Number.isFinite(timeoutMs)) {
        active.timeoutMs = timeoutMs;
        host.timer.add(active, timeoutMs);
      }
      let result: unknown;
      try {
        result = await definition.handler(new HandlerContext(this, active, job.snapshot.type, job.input));
      } catch (error) {
        if (active.finished) return;
        const pending = active.pendingProgress;
        this.#release(active);
        const body = jobFailureProblem(error, { exposeStackTraces: this.#exposeStackTraces });
        void this.#finish(id, (current) => {
          this.#assertHeld(current, id);
          return failJob(current, body, host.clock.wallNow(), host.finishOptions(pending));
        });
        return;
      }
      if (active.finished) return;
      const pending = active.pendingProgress;
      this.#release(active);
      void this.#finish(id, (current) => {
        this.#assertHeld(current, id);
        return succeedJob(current, result, host.clock.wallNow(), host.finishOptions(pending));
      });
    } catch (error) {
      this.#host.onError(error, { operation: 'start', jobId: id });
    }
  }

  /** @internal the time limit of a running handler passed (the wheel calls it). */
  _timeout(active: ActiveJob): void {
    this.#timeout(active, active.timeoutMs).catch((error: unknown) =>
      this.#host.onError(error, { operation: 'timeout', jobId: active.id }),
    );
  }

  async #timeout(active: ActiveJob, timeoutMs: number): Promise<void> {
    if (active.finished) return;
    const host = this.#host;
    const pending = active.pendingProgress;
    this.#release(active, new TimeoutError(`The job exceeded its time limit of ${timeoutMs} ms`));
    const body = problem('job-timeout', `The job did not finish within ${timeoutMs} ms.`);
    await this.#finish(active.id, (current) => {
      this.#assertHeld(current, active.id);
      return failJob(current, body, host.clock.wallNow(), host.finishOptions(pending));
    });
  }

  /**
   * Stores a terminal state reached by this process. Losing the race to another writer is not an
   * error. A store that refuses the write (an outage) does not lose the outcome: the transition, which
   * holds the result, is retried with backoff until the store takes it, and the job stays in
   * {@link JobRunner.finishing} meanwhile so that its lease keeps being renewed. A write that can never
   * succeed (a result the store cannot serialize) is replaced by a failure saying so. `transition`
   * refuses a job another registry holds now (see {@link JobRunner.#assertHeld}).
   */
  #finish(id: string, transition: JobTransition): Promise<void> {
    // The first write is a plain promise reaction: nearly every outcome is stored at once, and only a
    // refused one pays for the retry loop and a place in #finishing.
    this.#storing++;
    return this.#host.store.update(id, transition).then(
      (job) => {
        if (job !== undefined && job.snapshot.done) {
          try {
            this.#host.settled(job);
          } catch (error) {
            return this.#retryOutcome(id, transition, error);
          }
        }
        this.#storing--;
        // Stored: the store's change released the lease already; this only makes sure.
        this.#host.keeper.release(id);
        this.#afterFirstWrite();
        return undefined;
      },
      (error: unknown) => this.#retryOutcome(id, transition, error),
    );
  }

  /** An outcome whose first write failed: tracked in #finishing while it is retried. */
  #retryOutcome(id: string, transition: JobTransition, error: unknown): Promise<void> {
    const pending: PendingFinish = { wake: undefined, done: undefined };
    this.#finishing.set(id, pending);
    this.#storing--;
    this.#afterFirstWrite();
    pending.done = this.#storeOutcome(id, transition, error, pending);
    return pending.done;
  }

  #afterFirstWrite(): void {
    if (this.#storing === 0 && this.#storedResolvers.length > 0) {
      for (const resolve of this.#storedResolvers.splice(0)) resolve();
    }
    this.#notifyIdle();
  }

  /**
   * Guards a write of this runner: a job whose lease names another registry was taken over (this
   * process stalled past its lease), so this runner's outcome for it no longer counts.
   */
  #own(id: string, transition: JobTransition): JobTransition {
    return (current) => {
      this.#assertHeld(current, id);
      return transition(current);
    };
  }

  /** Refuses a write of this runner to a job another registry holds now (see {@link JobRunner.#own}). */
  #assertHeld(current: StoredJob, id: string): void {
    if (current.lease !== undefined && current.lease.holder !== this.#host.keeper.holder) {
      throw new IllegalTransitionError(`job ${id} is held by another process now`);
    }
  }

  async #storeOutcome(id: string, transition: JobTransition, first: unknown, pending: PendingFinish): Promise<void> {
    const host = this.#host;
    let retry: Backoff | undefined;
    let write = transition;
    let replaced = false;
    let error = first;
    try {
      for (let attempt = 1; ; attempt++) {
        if (IllegalTransitionError.is(error)) return;
        host.onError(error, { operation: 'finish', jobId: id, attempt });
        if (!isTransient(error) && !replaced) {
          replaced = true;
          const body = problem('job-failed', `The job's outcome could not be stored: ${describe(error)}`);
          write = this.#own(id, (current) => failJob(current, body, host.clock.wallNow(), host.finishOptions()));
        } else {
          if (!isTransient(error) || this.#closed) return;
          retry ??= new Backoff(FINISH_BACKOFF, () => host.clock.random());
          await this.#pause(pending, retry.next());
          // One last attempt when close() woke the pause; the lease then lapses elsewhere if it fails.
        }
        try {
          const job = await host.store.update(id, write);
          if (job !== undefined && job.snapshot.done) host.settled(job);
          return;
        } catch (failure) {
          error = failure;
        }
      }
    } finally {
      if (this.#finishing.get(id) === pending) this.#finishing.delete(id);
      // Stored (then the store's change released it already) or given up: either way, not ours to renew.
      host.keeper.release(id);
      this.#notifyIdle();
    }
  }

  /** Waits `ms`, or less when close() wakes every pending finish for its last attempt. */
  #pause(pending: PendingFinish, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const clock = this.#host.clock;
      const timer: TimerHandle = clock.setTimeout(() => wake(), ms, { unref: true });
      const wake = (): void => {
        pending.wake = undefined;
        clock.clearTimeout(timer);
        resolve();
      };
      pending.wake = wake;
    });
  }

  /** Frees the slot of a handler (once), stops its timers and, with a reason, aborts its signal. */
  #release(active: ActiveJob, reason?: unknown): void {
    if (active.finished) return;
    active.finished = true;
    active.cancel();
    active.progressTimer?.cancel();
    active.progressTimer = undefined;
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
  /** @internal `context.reportProgress` of a running handler. */
  _reportProgress(active: ActiveJob, progress: JobProgress): void {
    validateProgress(progress);
    if (active.finished) return;
    active.pendingProgress = progress;
    this.#scheduleProgress(active);
  }

  #scheduleProgress(active: ActiveJob): void {
    if (active.finished || active.flushingProgress || active.progressTimer !== undefined) return;
    const delay = active.lastProgressAt + this.#progressIntervalMs - this.#host.clock.now();
    if (delay <= 0) {
      void this.#flushProgress(active);
      return;
    }
    active.progressTimer = this.#host.timer.schedule(() => {
      active.progressTimer = undefined;
      void this.#flushProgress(active);
    }, delay);
  }

  async #flushProgress(active: ActiveJob): Promise<void> {
    const progress = active.pendingProgress;
    if (progress === undefined || active.finished) return;
    const host = this.#host;
    active.pendingProgress = undefined;
    active.flushingProgress = true;
    active.lastProgressAt = host.clock.now();
    try {
      const job = await host.store.update(
        active.id,
        this.#own(active.id, (current) => progressJob(current, progress, host.clock.wallNow())),
      );
      if (job !== undefined) host.progressed(job.snapshot);
    } catch (error) {
      // Progress is advisory: a job that finished meanwhile or a failing store write loses this report
      // only; the next report is stored as usual.
      if (!IllegalTransitionError.is(error)) host.onError(error, { operation: 'progress', jobId: active.id });
    } finally {
      active.flushingProgress = false;
      if (active.pendingProgress !== undefined) this.#scheduleProgress(active);
    }
  }

  #idle(): boolean {
    return (
      this.#running === 0 &&
      this.#queue.size === 0 &&
      this.#admitting === 0 &&
      this.#storing === 0 &&
      this.#finishing.size === 0
    );
  }

  #notifyIdle(): void {
    if (this.#idleResolvers.length > 0 && this.#idle()) {
      for (const resolve of this.#idleResolvers.splice(0)) resolve();
    }
  }
}

function signalOf(active: ActiveJob): AbortSignal {
  if (active.controller === undefined) {
    active.controller = new AbortController();
    if (active.abortReason !== undefined) active.controller.abort(active.abortReason);
  }
  return active.controller.signal;
}
