/**
 * Long polls on jobs: each `wait` is held in the {@link DelayedOperationPurgatory} under the job's key,
 * so ten thousand held requests cost ten thousand watcher entries and no timers of their own.
 *
 * Because the purgatory's `check()` is synchronous and the store is not, a small hint is kept per
 * watched job (the newest version heard of, and the job itself when the store's change notification
 * carried it); a wake-up either answers from that hint or re-reads the store. Hints exist only while
 * someone waits on the job. Internal: users reach it through `JobRegistry.wait` and `changes`.
 *
 * @module
 */
import { throwIfAborted } from '../../core/abort.js';
import type { Clock } from '../../core/clock.js';
import { InvalidArgumentError } from '../../core/errors.js';
import type { JobSnapshot } from '../../core/protocol.js';
import type { DelayedOperationPurgatory } from '../purgatory/purgatory.js';
import type { JobChange, JobStore, StoredJob } from './stores/job-store.js';
import { duration } from './validation.js';

/** What a wait needs to know: the version the caller has, how long to hold, who asks, and when to stop. */
export interface WaitRequest {
  readonly sinceVersion?: number;
  readonly timeoutMs: number;
  readonly owner?: string;
  readonly signal?: AbortSignal;
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

/** Every held wait on the jobs of one store. */
export class JobWaits {
  readonly #store: JobStore;
  readonly #clock: Clock;
  readonly #purgatory: DelayedOperationPurgatory;
  readonly #watches = new Map<string, Watch>();
  #waiting = 0;
  #drainResolvers: (() => void)[] = [];
  #closed = false;

  constructor(store: JobStore, clock: Clock, purgatory: DelayedOperationPurgatory) {
    this.#store = store;
    this.#clock = clock;
    this.#purgatory = purgatory;
  }

  /** Waits held now. */
  get waiting(): number {
    return this.#waiting;
  }

  /** See `JobRegistry.wait`. */
  wait(id: string, request: WaitRequest): Promise<JobSnapshot | undefined> {
    const { sinceVersion, signal, owner } = request;
    let timeoutMs: number;
    try {
      timeoutMs = duration(request.timeoutMs, 'timeoutMs', false);
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
      const job = this.visibleJob(hinted, owner);
      if (job === undefined || job.snapshot.version !== sinceVersion || this.#closed || timeoutMs === 0) {
        this.#leave(id, watch);
        return Promise.resolve(job?.snapshot);
      }
      return this.#hold(id, watch, sinceVersion, deadline, owner, signal);
    }
    return this.#readThenHold(id, watch, sinceVersion, deadline, owner, signal);
  }

  /** A store change: updates the job's hint and wakes its waiters. */
  onChange(change: JobChange): void {
    const watch = this.#watches.get(change.id);
    if (watch === undefined) return;
    if (change.deleted === true) watch.gone = true;
    else if (change.job !== undefined) observe(watch, change.job);
    else if (change.version > watch.version) {
      watch.version = change.version;
      watch.stale = true;
    } else watch.stale = true;
    this.#purgatory.checkAndComplete(jobKey(change.id));
  }

  /** From now on, waits answer at once instead of holding (the registry is closing). */
  stopHolding(): void {
    this.#closed = true;
  }

  /** Answers every held wait with the job's current state; resolves once none is left. */
  async drain(): Promise<void> {
    this.#closed = true;
    // Every held wait re-checks, sees the registry closed and answers with the state it re-reads.
    for (const id of [...this.#watches.keys()]) this.#purgatory.checkAndComplete(jobKey(id));
    if (this.#waiting > 0) await new Promise<void>((resolve) => this.#drainResolvers.push(resolve));
  }

  /** The job as `owner` sees it now: `undefined` when it belongs to another owner or has expired. */
  visibleJob(job: StoredJob, owner: string | undefined): StoredJob | undefined {
    if (owner !== undefined && job.owner !== owner) return undefined;
    if (job.expiresAtMs !== undefined && job.expiresAtMs <= this.#clock.wallNow()) return undefined;
    return job;
  }

  /** Reads the job from the store as `owner` sees it. */
  async visible(id: string, owner: string | undefined): Promise<StoredJob | undefined> {
    if (typeof id !== 'string' || id.length === 0) return undefined;
    const job = await this.#store.get(id);
    return job === undefined ? undefined : this.visibleJob(job, owner);
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
      const job = loaded === undefined ? undefined : this.visibleJob(loaded, owner);
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
        const job = await this.visible(id, owner);
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
    if (--watch.refs === 0 && this.#watches.get(id) === watch) this.#watches.delete(id);
    if (--this.#waiting === 0 && this.#drainResolvers.length > 0) {
      for (const resolve of this.#drainResolvers.splice(0)) resolve();
    }
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
