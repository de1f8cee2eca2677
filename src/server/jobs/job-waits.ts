/**
 * Long polls on jobs: each wait is one {@link JobWait}, the operation the
 * {@link DelayedOperationPurgatory} holds under the job's key, so ten thousand held requests cost ten
 * thousand operations and no timers, promises or closures of their own. Its subclass receives the
 * outcome: the promise form `JobRegistry.wait` resolves a promise, the HTTP handler writes its answer.
 *
 * Because the purgatory's `check()` is synchronous and the store is not, a small hint is kept per
 * watched job (the newest version heard of, and the job itself when the store's change notification
 * carried it or a read brought it). Waiters are woken from the hint; a notification without the job
 * makes the hint reload the job once for all of its waiters. Hints exist only while someone waits on
 * the job. Internal: users reach it through `JobRegistry.wait` and `changes`.
 *
 * @module
 */
import { abortReason } from '../../core/abort.js';
import type { Clock } from '../../core/clock.js';
import { AbortedError, InvalidArgumentError } from '../../core/errors.js';
import type { JobSnapshot } from '../../core/protocol.js';
import { type Admission, DelayedOperation, type DelayedOperationPurgatory } from '../purgatory/purgatory.js';
import type { Resumable } from '../purgatory/resume-batches.js';
import type { JobChange, JobStore, StoredJob } from './stores/job-store.js';
import { MemoryJobStore } from './stores/memory-job-store.js';
import { peekMemoryJob } from './stores/memory-peek.js';
import { duration } from './validation.js';
import { RunWallClock } from '../run-wall-clock.js';

/** What a wait needs to know: the version the caller has, how long to hold, who asks, and when to stop. */
export interface WaitRequest {
  readonly sinceVersion?: number;
  readonly timeoutMs: number;
  readonly owner?: string;
  readonly signal?: AbortSignal;
}

/** What the registry knows about a job someone is waiting on. */
class Watch {
  readonly id: string;
  /** The purgatory keys of this job, shared by all its waiters. */
  readonly keys: readonly string[];
  refs = 0;
  /** The newest version heard of. */
  version = 0;
  /** The newest state known; older than `version` while a reload is due. */
  job: StoredJob | undefined = undefined;
  gone = false;
  /** A notification without the job arrived: the store may hold something newer than `job`. */
  stale = false;
  /** A store read in flight, shared by waiters arriving and by the reload after a bare notification. */
  loading: Promise<StoredJob | undefined> | undefined = undefined;
  /** How long the latest read took, in ms: waiters that shared it hold that much less. */
  loadTook = 0;
  /** Waits that arrived while the hint could not answer them, started once the read in flight settles. */
  arriving: JobWait[] | undefined = undefined;
  /** A notification without the job arrived while a read was in flight: read again after it. */
  again = false;
  /** A failed reload, seen by the walk it triggers and then forgotten. */
  failure: { readonly error: unknown } | undefined = undefined;

  constructor(id: string) {
    this.id = id;
    this.keys = [jobKey(id)];
  }

  /** True when `job` is the newest state the hint knows of. */
  get fresh(): boolean {
    return this.job !== undefined && !this.stale && this.job.snapshot.version === this.version;
  }
}

// Compared with the store's `get`, never called.
const MEMORY_GET = MemoryJobStore.prototype.get;

/** A job that disappeared while waited on. */
const GONE = Symbol('gone');

/**
 * One long poll on one job: its parameters, the operation the purgatory holds while it waits, and the
 * receiver of its outcome. Subclasses implement {@link JobWait.delivered} and {@link JobWait.failed};
 * exactly one of them is called, once. Start it with `JobWaits.start`.
 *
 * @internal
 */
export abstract class JobWait extends DelayedOperation implements Resumable {
  /** @internal */
  _waits: JobWaits | undefined = undefined;
  /** @internal */
  _watch: Watch | undefined = undefined;
  /** @internal the version the caller has; -1 for none (then the wait answers at once). */
  _since = -1;
  /** @internal */
  _ownerId: string | undefined = undefined;
  /** @internal what the check woke the wait with: the job, GONE, or nothing (answer with the current state). */
  _woken: StoredJob | typeof GONE | undefined = undefined;

  /** `timeoutMs`: the longest hold; `signal`: ends the wait early, as {@link JobWait.aborted}. */
  constructor(timeoutMs: number, signal?: AbortSignal) {
    super(timeoutMs, signal === undefined ? undefined : { signal });
  }

  /** The id of the job waited on (empty before the wait starts). */
  get jobId(): string {
    return this._watch?.id ?? '';
  }

  /** Receives the job as the caller may see it; `undefined` when it cannot (unknown, gone, another owner's). */
  abstract delivered(job: JobSnapshot | undefined): void;
  /** Receives why the wait failed: a validation error, a store failure, an abort. */
  abstract failed(error: unknown): void;

  /** The wait is about to be held; the default is to hold. */
  admit(): Admission {
    return 'hold';
  }

  /** Ended by its signal or {@link DelayedOperation.abort}; by default a failure with the signal's reason. */
  aborted(): void {
    const signal = this.signal;
    this.failed(signal === undefined ? new AbortedError('The wait was aborted') : abortReason(signal));
  }

  /** @internal */
  tryComplete(): boolean {
    const watch = this._watch!;
    // Gone, a failed reload, or a closing registry: answered with what the state is (resume reads it).
    if (watch.failure !== undefined || watch.gone || this._waits!.closed) return this.forceComplete();
    if (!watch.fresh) return false;
    const job = watch.job!;
    if (job.snapshot.version === this._since) return false;
    this._woken = job;
    return this.forceComplete();
  }

  /** @internal */
  onComplete(): void {
    if (this.settlement === 'aborted') {
      this._release();
      this.aborted();
      return;
    }
    const watch = this._watch!;
    if (watch.failure !== undefined) {
      this._fail(watch.failure.error);
      return;
    }
    if (watch.gone) this._woken = GONE;
    // One change may settle thousands of waits in one walk; the purgatory paces their answers.
    const purgatory = this._purgatory;
    if (purgatory === null) this.resume();
    else purgatory._resume(this);
  }

  /** @internal answers with the job it was woken with, or with the current state (timeout, shutdown). */
  resume(): void {
    const woken = this._woken;
    this._woken = undefined;
    if (woken === GONE) this._deliver(undefined);
    else if (woken !== undefined) this._deliver(woken);
    else this._waits!._answerCurrent(this);
  }

  /** @internal leaves the hint; called once, before the outcome is handed over. */
  _release(): void {
    const waits = this._waits;
    if (waits === undefined) return;
    this._waits = undefined;
    waits._leave(this._watch!);
  }

  /** @internal */
  _deliver(job: StoredJob | undefined): void {
    const waits = this._waits;
    const visible = job === undefined || waits === undefined ? undefined : waits.visibleJob(job, this._ownerId);
    this._release();
    this.delivered(visible?.snapshot);
  }

  /** @internal */
  _fail(error: unknown): void {
    this._release();
    this.failed(error);
  }
}

/** Every held wait on the jobs of one store. */
export class JobWaits {
  readonly #store: JobStore;
  /** The store, when it is a {@link MemoryJobStore}: read synchronously while its `get` is its own. */
  readonly #memory: MemoryJobStore | undefined;
  readonly #clock: Clock;
  /** Asked by every answered wait whether its job has expired: once per synchronous run. */
  readonly #runClock: RunWallClock;
  readonly #purgatory: DelayedOperationPurgatory;
  readonly #watches = new Map<string, Watch>();
  #waiting = 0;
  #drainResolvers: (() => void)[] = [];
  #closed = false;

  constructor(store: JobStore, clock: Clock, purgatory: DelayedOperationPurgatory) {
    this.#store = store;
    this.#memory = store instanceof MemoryJobStore ? store : undefined;
    this.#clock = clock;
    this.#runClock = new RunWallClock(clock);
    this.#purgatory = purgatory;
  }

  /** Waits held now. */
  get waiting(): number {
    return this.#waiting;
  }

  /** True once the registry is closing: waits answer at once instead of holding. */
  get closed(): boolean {
    return this.#closed;
  }

  /** See `JobRegistry.wait`: the promise form, over {@link JobWaits.start}. */
  wait(id: string, request: WaitRequest): Promise<JobSnapshot | undefined> {
    const timeoutMs = request.timeoutMs;
    // A timeout the operation cannot even hold is refused by the validation in start, in its turn.
    const delayMs = typeof timeoutMs === 'number' && !Number.isNaN(timeoutMs) ? timeoutMs : 0;
    return new Promise((resolve, reject) => {
      this.start(new PromisedWait(delayMs, request.signal, resolve, reject), id, request);
    });
  }

  /**
   * Starts `wait` (its delay is the timeout unless `request.timeoutMs` says otherwise): answers at once
   * when the job already differs from `sinceVersion` (or there is none), otherwise holds it in the
   * purgatory. Its `delivered` or `failed` is called exactly once.
   */
  start(wait: JobWait, id: string, request: Omit<WaitRequest, 'signal'>): void {
    const { sinceVersion, owner } = request;
    let timeoutMs: number;
    try {
      timeoutMs = duration(request.timeoutMs ?? wait.delayMs, 'timeoutMs', false);
      if (sinceVersion !== undefined && !(Number.isInteger(sinceVersion) && sinceVersion >= 0)) {
        throw new InvalidArgumentError(
          `sinceVersion must be an integer >= 0, got ${String(sinceVersion)}`,
          'sinceVersion',
        );
      }
    } catch (error) {
      wait.failed(error);
      return;
    }
    const signal = wait.signal;
    if (signal?.aborted === true) {
      wait.failed(abortReason(signal));
      return;
    }
    // Watch before reading, so a change landing between the read and the purgatory registration
    // still reaches this wait's hint (the check–watch–recheck order of Kafka's purgatory).
    const watch = this.#watch(id);
    this.#waiting++;
    wait._waits = this;
    wait._watch = watch;
    wait._ownerId = owner;
    wait._since = sinceVersion ?? -1;
    // Not in a purgatory yet, so its delay can still be the one asked for here.
    if (timeoutMs !== wait.delayMs) (wait as { delayMs: number }).delayMs = timeoutMs;
    // Another waiter's hint is as fresh as the last change notification; when it is at or past the
    // caller's version it answers (or starts the hold) without a store read.
    if (watch.fresh && !watch.gone && sinceVersion !== undefined && watch.version >= sinceVersion) {
      this.#startFrom(wait, watch.job!, sinceVersion, timeoutMs);
      return;
    }
    const memory = this.#memory;
    // The in-memory store reads synchronously: the wait starts now rather than a promise later. Not
    // when `get` was replaced (a subclass, a wrapper): then it is what a read means.
    if (memory !== undefined && memory.get === MEMORY_GET && watch.loading === undefined) {
      const job = id.length > 0 ? peekMemoryJob(memory, id) : undefined;
      const before = watch.job;
      this.#observeRead(watch, job);
      if (watch.refs > 1 && (watch.job !== before || watch.gone)) this.#purgatory.checkAndComplete(watch.keys[0]!);
      this.#afterLoad(wait, watch.gone ? undefined : watch.fresh ? watch.job : job, 0);
      return;
    }
    // Waiters arriving together share one store read, and wait for it in a list rather than each in
    // a promise reaction of its own.
    (watch.arriving ??= []).push(wait);
    void this.#load(watch);
  }

  /** A store change: updates the job's hint and wakes its waiters (after a reload when it did not carry the job). */
  onChange(change: JobChange): void {
    const watch = this.#watches.get(change.id);
    if (watch === undefined) return;
    if (change.deleted === true) watch.gone = true;
    else if (change.job !== undefined) observe(watch, change.job);
    else {
      if (change.version > watch.version) watch.version = change.version;
      watch.stale = true;
      // A read already in flight may have started before this change: read once more after it.
      if (watch.loading !== undefined) watch.again = true;
      else void this.#load(watch);
      return;
    }
    this.#purgatory.checkAndComplete(watch.keys[0]!);
  }

  /** From now on, waits answer at once instead of holding (the registry is closing). */
  stopHolding(): void {
    this.#closed = true;
  }

  /** Answers every held wait with the job's current state; resolves once none is left. */
  async drain(): Promise<void> {
    this.#closed = true;
    // Every held wait re-checks, sees the registry closed and answers with the current state.
    for (const watch of [...this.#watches.values()]) this.#purgatory.checkAndComplete(watch.keys[0]!);
    if (this.#waiting > 0) await new Promise<void>((resolve) => this.#drainResolvers.push(resolve));
  }

  /** The job as `owner` sees it now: `undefined` when it belongs to another owner or has expired. */
  visibleJob(job: StoredJob, owner: string | undefined): StoredJob | undefined {
    if (owner !== undefined && job.owner !== owner) return undefined;
    if (job.expiresAtMs !== undefined && job.expiresAtMs <= this.#runClock.wallNow()) return undefined;
    return job;
  }

  /** Reads the job from the store as `owner` sees it. */
  async visible(id: string, owner: string | undefined): Promise<StoredJob | undefined> {
    if (typeof id !== 'string' || id.length === 0) return undefined;
    const job = await this.#store.get(id);
    return job === undefined ? undefined : this.visibleJob(job, owner);
  }

  /** @internal a wait that ended without news (timeout, shutdown) answers with the current state. */
  _answerCurrent(wait: JobWait): void {
    const watch = wait._watch!;
    if (watch.gone) wait._deliver(undefined);
    else if (watch.fresh) wait._deliver(watch.job);
    else
      this.#load(watch).then(
        (job) => wait._deliver(job),
        (error: unknown) => wait._fail(error),
      );
  }

  /** @internal */
  _leave(watch: Watch): void {
    if (--watch.refs === 0 && this.#watches.get(watch.id) === watch) this.#watches.delete(watch.id);
    if (--this.#waiting === 0 && this.#drainResolvers.length > 0) {
      for (const resolve of this.#drainResolvers.splice(0)) resolve();
    }
  }

  /** Starts a wait that waited for a store read of its job; the read's time counts against it. */
  #afterLoad(wait: JobWait, job: StoredJob | undefined, took: number): void {
    if (job === undefined || this.visibleJob(job, wait._ownerId) === undefined) wait._deliver(undefined);
    else if (wait._since < 0) wait._deliver(job);
    else this.#startFrom(wait, job, wait._since, wait.delayMs - took);
  }

  /** Answers at once when `job` already differs from the caller's version, otherwise holds the wait for `remaining` ms. */
  #startFrom(wait: JobWait, job: StoredJob, sinceVersion: number, remaining: number): void {
    if (job.snapshot.version !== sinceVersion || this.#closed || remaining <= 0) {
      wait._deliver(job);
      return;
    }
    if (this.visibleJob(job, wait._ownerId) === undefined) {
      wait._deliver(undefined);
      return;
    }
    wait._since = sinceVersion;
    const admission = wait.admit();
    if (admission === 'refused') {
      wait._release();
      return;
    }
    if (admission === 'now') {
      // Not held after all: settled here, outside the purgatory, it answers with the current state.
      wait.forceComplete();
      return;
    }
    // The operation is not in a purgatory yet, so its delay may still shrink by the time spent reading.
    if (remaining !== wait.delayMs) (wait as { delayMs: number }).delayMs = remaining;
    this.#purgatory.tryCompleteElseWatch(wait, wait._watch!.keys);
  }

  /**
   * Reads the job once for everyone who needs it now: waiters arriving, and the waiters of a hint that
   * a notification without the job made stale. The hint takes the result, then its held waiters are
   * checked again; a failed read fails them.
   */
  #load(watch: Watch): Promise<StoredJob | undefined> {
    if (watch.loading !== undefined) return watch.loading;
    const id = watch.id;
    const started = this.#clock.now();
    const loading = id.length > 0 ? this.#store.get(id) : Promise.resolve(undefined);
    watch.loading = loading;
    const key = watch.keys[0]!;
    loading.then(
      (job) => {
        if (watch.loading === loading) watch.loading = undefined;
        watch.loadTook = this.#clock.now() - started;
        if (watch.again) {
          watch.again = false;
          void this.#load(watch);
          return;
        }
        this.#observeRead(watch, job);
        this.#purgatory.checkAndComplete(key);
        const arriving = watch.arriving;
        if (arriving === undefined) return;
        watch.arriving = undefined;
        const current = watch.gone ? undefined : watch.fresh ? watch.job : job;
        for (const wait of arriving) this.#afterLoad(wait, current, watch.loadTook);
      },
      (error: unknown) => {
        if (watch.loading === loading) watch.loading = undefined;
        watch.again = false;
        watch.failure = { error };
        try {
          this.#purgatory.checkAndComplete(key);
        } finally {
          watch.failure = undefined;
        }
        const arriving = watch.arriving;
        watch.arriving = undefined;
        if (arriving !== undefined) for (const wait of arriving) wait._fail(error);
      },
    );
    return loading;
  }

  // A read can be older than a notification that arrived while it ran; the newer state wins.
  #observeRead(watch: Watch, job: StoredJob | undefined): void {
    if (job === undefined) {
      if (watch.job === undefined || watch.stale) watch.gone = true;
    } else if (job.snapshot.version >= watch.version) {
      watch.stale = false;
      observe(watch, job);
    }
  }

  #watch(id: string): Watch {
    let watch = this.#watches.get(id);
    if (watch === undefined) {
      watch = new Watch(id);
      this.#watches.set(id, watch);
    }
    watch.refs++;
    return watch;
  }
}

/** The promise form of a wait: what `JobRegistry.wait` returns. */
class PromisedWait extends JobWait {
  readonly #resolve: (job: JobSnapshot | undefined) => void;
  readonly #reject: (error: unknown) => void;

  constructor(
    timeoutMs: number,
    signal: AbortSignal | undefined,
    resolve: (job: JobSnapshot | undefined) => void,
    reject: (error: unknown) => void,
  ) {
    super(timeoutMs, signal);
    this.#resolve = resolve;
    this.#reject = reject;
  }

  delivered(job: JobSnapshot | undefined): void {
    this.#resolve(job);
  }

  failed(error: unknown): void {
    this.#reject(error);
  }
}

/** The purgatory key of a job. */
export function jobKey(id: string): string {
  return `job:${id}`;
}

function observe(watch: Watch, job: StoredJob): void {
  if (job.snapshot.version >= watch.version) {
    watch.version = job.snapshot.version;
    watch.job = job;
  }
}
