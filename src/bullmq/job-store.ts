/**
 * A {@link JobStore} served from a BullMQ queue: a submit is `queue.add` (the job type is the job name,
 * the pollkit job id is the BullMQ job id), plain BullMQ workers in any process run the jobs, and every
 * protocol route reads them back as pollkit jobs. BullMQ has no version per job, so the store keeps a
 * small hash beside each one (version, last state, owner and idempotency indexes) and folds BullMQ's
 * state into it whenever it reads or hears of a change (see `fold.ts`).
 *
 * Wake-ups come from one `QueueEvents` per process: every event about a job this process has seen
 * recently (progress, completed, failed, a cancel through another process) is folded once — one read
 * and at most one write, shared by every request held on that job — and announced through
 * {@link JobStore.onChange} to the local registry's purgatory. A held request costs Redis nothing.
 *
 * @module
 */
import type { JobsOptions, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Clock } from '../core/clock.js';
import { InvalidArgumentError } from '../core/errors.js';
import { ChangeListeners } from '../server/change-listeners.js';
import { randomToken } from '../server/ids.js';
import type {
  InsertOptions,
  InsertResult,
  JobChange,
  JobListPage,
  JobListQuery,
  JobStore,
  JobTransition,
  LeaseSweep,
  StoredJob,
  SweepResult,
} from '../server/jobs/stores/job-store.js';
import { tooManyJobs } from '../server/jobs/stores/store-rules.js';
import {
  type CommandGuard,
  StoreUnavailableError,
  positiveInteger,
  positiveMs,
  storeConnection,
} from '../redis/connection.js';
import { pageTokens, parseStoredJob, validateTransition } from '../redis/stored-jobs.js';
import { CANCELED_THROUGH_POLLKIT } from './cancellation.js';
import { type BullmqState, type BullmqView, type Folded, foldBullmqState, foldRemoval } from './fold.js';
import { DELETE_JOB, INSERT_JOB, READ_JOBS, READ_WIDTH, SWEEP_JOBS, WRITE_JOB } from './scripts.js';

/**
 * Options for {@link BullmqJobStore}.
 *
 * @example
 * ```ts
 * import { Queue, QueueEvents } from 'bullmq';
 * import { Redis } from 'ioredis';
 * import type { BullmqJobStoreOptions } from 'pollkit/bullmq';
 *
 * const connection = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null });
 * const options: BullmqJobStoreOptions = {
 *   queue: new Queue('media', { connection }),
 *   events: new QueueEvents('media', { connection }),
 *   redis: connection,
 *   jobOptions: { 'video.transcode': { attempts: 3, backoff: { type: 'exponential', delay: 1000 } } },
 * };
 * ```
 */
export interface BullmqJobStoreOptions {
  /** Your queue: its name, prefix and connection decide where jobs go. Required. */
  readonly queue: Queue;
  /**
   * The process's one `QueueEvents` of that queue: the store listens on it for wake-ups and never
   * closes it. Required.
   */
  readonly events: QueueEvents;
  /** An ioredis client of the same Redis, for the store's own commands; the store never closes it. Required. */
  readonly redis: Redis;
  /** BullMQ job options per job type (`attempts`, `backoff`, `priority`, `removeOnComplete`, …). Default none. */
  readonly jobOptions?: Readonly<Record<string, Omit<JobsOptions, 'jobId'>>>;
  /** Prefix of the store's own keys. Default `"pollkit:"`. */
  readonly keyPrefix?: string;
  /** Time for folds, deadlines and expiry. Default `systemClock`. */
  readonly clock?: Clock;
  /** How long a command may take before it fails with `StoreUnavailableError`. Default `2000`. */
  readonly commandTimeoutMs?: number;
  /**
   * How long a finished job stays visible when its BullMQ removal option gives no age (`true`, or a
   * count), in milliseconds. Default `3_600_000` (one hour).
   */
  readonly retentionMs?: number;
  /**
   * How long a job may be missing from the queue after its submit before it counts as lost (failed
   * with code `job-lost`), in milliseconds. Default `30_000`.
   */
  readonly lostAfterMs?: number;
  /** How long Redis keeps the store's hash of a finished job past its expiry when no process sweeps. Default one hour. */
  readonly ttlGraceMs?: number;
  /** How many recently used jobs the store follows on the event stream. Default `10_000`. */
  readonly trackLimit?: number;
  /** How many jobs one `list` call examines at most, however few match. Default `5000`. */
  readonly listScanLimit?: number;
}

/** What this process remembers of a recently used job. */
interface Known {
  version: number;
  job: StoredJob | undefined;
  progressSeen: string;
  /** How the job ended according to an event, for a job BullMQ removed before it could be read. */
  ending: BullmqView | undefined;
  removed: boolean;
}

/** One job as a read returns it: the stored state and what BullMQ says now. */
interface Read {
  readonly version: number;
  readonly job: StoredJob;
  readonly progressSeen: string;
  readonly view: BullmqView;
}

const MAX_CAS_ROUNDS = 64;
const LIST_BATCH = 128;
// The events that can change what a job looks like. The others cannot: a job back in a waiting set
// (waiting, delayed, stalled) stays queued if it never ran and running if it did.
const JOB_EVENTS = ['active', 'progress', 'completed', 'failed', 'removed', 'pollkit:change'] as const;

/**
 * Jobs on a BullMQ queue, served by `JobRegistry` and `PollkitHandler` like any other store.
 *
 * @example
 * ```ts
 * import { Queue, QueueEvents } from 'bullmq';
 * import { Redis } from 'ioredis';
 * import { JobRegistry } from 'pollkit/server';
 * import { BullmqJobStore } from 'pollkit/bullmq';
 *
 * const connection = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null });
 * const store = new BullmqJobStore({
 *   queue: new Queue('media', { connection }),
 *   events: new QueueEvents('media', { connection }),
 *   redis: connection,
 * });
 * const registry = new JobRegistry({ store });
 * const job = await registry.create('video.transcode', { url: 'https://example.com/in.mp4' });
 * ```
 */
export class BullmqJobStore implements JobStore {
  readonly #queue: Queue;
  readonly #clock: Clock;
  readonly #guard: CommandGuard;
  readonly #jobOptions: Readonly<Record<string, Omit<JobsOptions, 'jobId'>>>;
  readonly #retentionMs: number;
  readonly #lostAfterMs: number;
  readonly #ttlGraceMs: number;
  readonly #trackLimit: number;
  readonly #listScanLimit: number;
  readonly #prefix: string;
  readonly #jobPrefix: string;
  readonly #bullPrefix: string;
  readonly #stateKeys: readonly string[];
  readonly #listeners = new ChangeListeners<JobChange>();
  readonly #known = new Map<string, Known>();
  readonly #pending = new Set<string>();
  readonly #refreshing = new Set<string>();
  readonly #detach: (() => void)[] = [];
  /** Marks this store's own pollkit:change events, which it has announced already. */
  readonly #origin = randomToken();
  #flushScheduled = false;
  #closed = false;

  constructor(options: BullmqJobStoreOptions) {
    const connection = storeConnection('BullmqJobStore', options);
    const { queue, events } = options;
    if (typeof queue !== 'object' || queue === null || typeof queue.add !== 'function' || !queue.keys) {
      throw new InvalidArgumentError('queue must be a BullMQ Queue', 'queue');
    }
    if (typeof events !== 'object' || events === null || typeof events.on !== 'function') {
      throw new InvalidArgumentError('events must be a BullMQ QueueEvents', 'events');
    }
    if (events.qualifiedName !== queue.qualifiedName) {
      throw new InvalidArgumentError(
        `events listens to ${String(events.qualifiedName)}, not to the queue ${queue.qualifiedName}`,
        'events',
      );
    }
    const jobOptions = options.jobOptions ?? {};
    if (typeof jobOptions !== 'object' || jobOptions === null) {
      throw new InvalidArgumentError('jobOptions must map job types to BullMQ job options', 'jobOptions');
    }
    this.#queue = queue;
    this.#clock = connection.clock;
    this.#guard = connection.guard;
    this.#jobOptions = jobOptions;
    this.#retentionMs = positiveMs(options.retentionMs, 3_600_000, 'retentionMs');
    this.#lostAfterMs = positiveMs(options.lostAfterMs, 30_000, 'lostAfterMs');
    this.#ttlGraceMs = positiveMs(options.ttlGraceMs, 3_600_000, 'ttlGraceMs');
    this.#trackLimit = positiveInteger(options.trackLimit, 10_000, 'trackLimit');
    this.#listScanLimit = positiveInteger(options.listScanLimit, 5000, 'listScanLimit');
    this.#prefix = `${connection.keyPrefix}bullmq:${queue.qualifiedName}:`;
    this.#jobPrefix = `${this.#prefix}job:`;
    const keys = queue.keys;
    this.#bullPrefix = keys[''] ?? `${queue.qualifiedName}:`;
    this.#stateKeys = [
      keys['completed'],
      keys['failed'],
      keys['delayed'],
      keys['prioritized'],
      keys['active'],
      keys['waiting-children'],
    ].map((key) => String(key));
    for (const name of JOB_EVENTS) {
      const listener = (args: Record<string, unknown>): void => this.#onEvent(name, args);
      events.on(name as 'active', listener as never);
      this.#detach.push(() => events.off(name as 'active', listener as never));
    }
  }

  async insert(job: StoredJob, options: InsertOptions = {}): Promise<InsertResult> {
    const id = job.snapshot.id;
    if (/^\d+$/.test(id) || id.includes(':')) {
      throw new InvalidArgumentError(
        `BullMQ job ids cannot be integers or contain ":", got ${JSON.stringify(id)}`,
        'id',
      );
    }
    const json = JSON.stringify(job);
    const expiresAt = job.expiresAtMs;
    const reply = (await this.#guard.run((redis) =>
      INSERT_JOB.run(
        redis,
        [
          this.#jobKey(id),
          `${this.#prefix}jobs:all`,
          `${this.#prefix}jobs:seq`,
          `${this.#prefix}jobs:expiry`,
          `${this.#prefix}jobs:owner-seq`,
        ],
        [
          id,
          json,
          job.snapshot.version,
          job.snapshot.status,
          job.owner === undefined ? '' : this.#ownerKey(job.owner),
          job.idempotencyKey === undefined ? '' : this.#idempotencyKey(job.owner, job.idempotencyKey),
          expiresAt === undefined ? '' : expiresAt,
          expiresAt === undefined ? '' : this.#ttl(expiresAt),
          options.maxPerOwner ?? '',
        ],
      ),
    )) as [number, string?];
    if (reply[0] === -1) throw new InvalidArgumentError(`a job with id ${id} already exists`, 'id');
    if (reply[0] === -2) throw tooManyJobs(Number(reply[1]));
    if (reply[0] === 0) {
      const existing = await this.get(reply[1]!);
      // The earlier job expired between the key lookup and the read: its key is free again.
      if (existing === undefined) return await this.insert(job, options);
      return { inserted: false, job: existing };
    }
    if (!job.snapshot.done) {
      try {
        await this.#guard.run(() => this.#add(job));
      } catch (error) {
        // Not queued, so not kept: a retry with the same idempotency key must be able to submit again.
        await this.#guard.run((redis) => this.#deleteRaw(redis, id, job.snapshot.version, '')).catch(() => undefined);
        throw error;
      }
    }
    this.#remember(id, job.snapshot.version, job, '');
    this.#listeners.emit({ id, version: job.snapshot.version, job });
    return { inserted: true, job };
  }

  async get(id: string): Promise<StoredJob | undefined> {
    try {
      const read = await this.#read(id);
      // A read is not news to announce: this process's events announce what changed.
      return read === undefined ? undefined : await this.#settle(id, read, false);
    } catch (error) {
      // While Redis is out of reach, a read answers with the last state this process saw, if any.
      const known = this.#known.get(id)?.job;
      if (known !== undefined && StoreUnavailableError.is(error)) return known;
      throw error;
    }
  }

  async findByIdempotencyKey(owner: string | undefined, key: string): Promise<StoredJob | undefined> {
    const id = await this.#guard.run((redis) => redis.get(this.#idempotencyKey(owner, key)));
    return id === null ? undefined : await this.get(id);
  }

  async update(id: string, transition: JobTransition): Promise<StoredJob | undefined> {
    for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
      const read = await this.#read(id);
      if (read === undefined) return undefined;
      const folded = this.#fold(id, read);
      const base = folded?.job ?? read.job;
      const progressSeen = folded?.progressSeen ?? read.progressSeen;
      let next: StoredJob;
      try {
        next = transition(base);
      } catch (error) {
        if (folded !== undefined) await this.#write(id, read, folded.job, progressSeen, false, '');
        throw error;
      }
      if (next === base) {
        if (folded === undefined) return base;
        if (await this.#write(id, read, base, progressSeen, false, '')) return base;
        continue;
      }
      validateTransition(id, base, next);
      // A job pollkit finishes while BullMQ still has it (a cancel, an external succeed) leaves the queue.
      const withdraw = next.snapshot.done && !base.snapshot.done && isUnfinished(read.view.state);
      if (!(await this.#write(id, read, next, progressSeen, true, withdraw ? CANCELED_THROUGH_POLLKIT : ''))) continue;
      if (withdraw && read.view.state !== 'active') void this.#remove(id);
      return next;
    }
    throw new StoreUnavailableError(`job ${id} is changing too fast to update; try again`);
  }

  async delete(id: string, condition?: (job: StoredJob) => boolean): Promise<boolean> {
    for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
      const read = await this.#read(id);
      if (read === undefined) return false;
      const current = this.#fold(id, read)?.job ?? read.job;
      if (condition !== undefined && !condition(current)) return false;
      const reply = (await this.#guard.run((redis) => this.#deleteRaw(redis, id, read.version, '1'))) as [number];
      if (reply[0] === -1) return false;
      if (reply[0] === 0) continue;
      this.#known.delete(id);
      this.#listeners.emit({ id, version: read.version, deleted: true });
      if (isUnfinished(read.view.state)) void this.#remove(id);
      return true;
    }
    throw new StoreUnavailableError(`job ${id} is changing too fast to delete; try again`);
  }

  async list(query: JobListQuery): Promise<JobListPage> {
    let before = query.cursor === undefined ? '' : decodeCursor(query.cursor);
    const index = query.owner === undefined ? `${this.#prefix}jobs:all` : this.#ownerKey(query.owner);
    const budget = Math.max(this.#listScanLimit, query.limit);
    const jobs: StoredJob[] = [];
    let lastIncluded = '';
    let examined = 0;
    for (;;) {
      const max = before === '' ? '+inf' : `(${before}`;
      const pairs = await this.#guard.run((redis) =>
        redis.zrevrangebyscore(index, max, '-inf', 'WITHSCORES', 'LIMIT', 0, LIST_BATCH),
      );
      const ids: string[] = [];
      for (let n = 0; n < pairs.length; n += 2) ids.push(pairs[n]!);
      const reads = ids.length === 0 ? [] : await this.#readMany(ids);
      for (const [n, id] of ids.entries()) {
        const seq = pairs[n * 2 + 1]!;
        before = seq;
        examined++;
        const read = reads[n];
        const job = read === undefined ? undefined : await this.#settle(id, read);
        if (job !== undefined && (query.status === undefined || job.snapshot.status === query.status)) {
          // One match past the page says a next page exists; it starts after the last job on this one.
          if (jobs.length === query.limit) return { jobs, cursor: encodeCursor(lastIncluded) };
          jobs.push(job);
          lastIncluded = seq;
        }
        if (examined >= budget && jobs.length < query.limit) return { jobs, cursor: encodeCursor(seq) };
      }
      if (pairs.length < LIST_BATCH * 2) return { jobs };
    }
  }

  async sweep(nowMs: number, limit: number): Promise<SweepResult> {
    const [pairs, next] = (await this.#guard.run((redis) =>
      SWEEP_JOBS.run(
        redis,
        [`${this.#prefix}jobs:expiry`, `${this.#prefix}jobs:all`, this.#key('events'), this.#key('meta')],
        [Math.floor(nowMs), limit, this.#jobPrefix, this.#origin],
      ),
    )) as [string[], string | null];
    const removed: string[] = [];
    for (let n = 0; n < pairs.length; n += 2) {
      const id = pairs[n]!;
      removed.push(id);
      this.#known.delete(id);
      this.#listeners.emit({ id, version: Number(pairs[n + 1]), deleted: true });
    }
    return next === null ? { removed } : { removed, nextExpiryMs: Number(next) };
  }

  /**
   * BullMQ keeps its own leases: a worker holds a lock on each job it runs and renews it, and BullMQ's
   * stalled-job check hands the job of a lost worker to another (or fails it after its attempts). So
   * this store renews nothing and loses nothing: a registry that started a job through it simply
   * holds it until it finishes.
   */
  async renewLeases(): Promise<readonly string[]> {
    return [];
  }

  /** None: see {@link BullmqJobStore.renewLeases}; lost workers are BullMQ's to recover. */
  async expiredLeases(): Promise<LeaseSweep> {
    return { jobs: [] };
  }

  onChange(listener: (change: JobChange) => void): () => void {
    return this.#listeners.add(listener);
  }

  /** Stops listening to the queue's events; the queue, the `QueueEvents` and the client stay open. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const detach of this.#detach.splice(0)) detach();
    this.#listeners.clear();
    this.#known.clear();
    this.#pending.clear();
  }

  // --- reading and folding ---------------------------------------------------------------------------

  // Folds and stores until the stored state reflects BullMQ; resolves to that state.
  async #settle(id: string, first: Read, announce = true): Promise<StoredJob | undefined> {
    let read: Read | undefined = first;
    for (let round = 0; round < MAX_CAS_ROUNDS && read !== undefined; round++) {
      const folded = this.#fold(id, read);
      if (folded === undefined) {
        this.#learn(id, read.version, read.job, read.progressSeen, announce);
        return read.job;
      }
      const lost = read.view.state === 'missing';
      if (await this.#write(id, read, folded.job, folded.progressSeen, lost, '')) return folded.job;
      read = await this.#read(id);
    }
    if (read === undefined) return undefined;
    throw new StoreUnavailableError(`job ${id} is changing too fast to read; try again`);
  }

  #fold(id: string, read: Read): Folded | undefined {
    const known = this.#known.get(id);
    let view = read.view;
    if (view.state === 'missing' && known !== undefined) {
      if (known.ending !== undefined) view = known.ending;
      else if (known.removed) {
        const removed = foldRemoval(read.job, this.#clock.wallNow(), this.#retentionMs);
        return removed === undefined ? undefined : { job: removed, progressSeen: read.progressSeen };
      }
    }
    return foldBullmqState(read.job, read.progressSeen, view, {
      nowMs: this.#clock.wallNow(),
      retentionMs: this.#retentionMs,
      lostAfterMs: this.#lostAfterMs,
    });
  }

  async #read(id: string): Promise<Read | undefined> {
    return (await this.#readMany([id]))[0];
  }

  async #readMany(ids: readonly string[]): Promise<(Read | undefined)[]> {
    const args: string[] = [this.#jobPrefix, this.#bullPrefix];
    // The states the read may answer "unchanged" about, captured now: an event may replace them meanwhile.
    const cached = ids.map((id) => this.#known.get(id));
    for (const [n, id] of ids.entries()) {
      const known = cached[n];
      args.push(id, known?.job === undefined ? '' : String(known.version));
    }
    const reply = (await this.#guard.run((redis) => READ_JOBS.run(redis, this.#stateKeys, args))) as string[];
    return ids.map((id, n) => {
      const at = n * READ_WIDTH;
      const version = reply[at]!;
      if (version === '') {
        this.#known.delete(id);
        return undefined;
      }
      const json = reply[at + 1]!;
      const job = json === '' ? cached[n]!.job! : parseJob(json);
      return {
        version: Number(version),
        job,
        progressSeen: reply[at + 2]!,
        view: {
          state: reply[at + 3] as BullmqState,
          attemptsStarted: Number(reply[at + 4] || 0),
          attemptsMade: Number(reply[at + 5] || 0),
          progress: optional(reply[at + 6]),
          returnValue: optional(reply[at + 7]),
          failedReason: optional(reply[at + 8]),
          processedOn: optionalNumber(reply[at + 9]),
          finishedOn: optionalNumber(reply[at + 10]),
          opts: optional(reply[at + 11]),
        },
      };
    });
  }

  /** Stores `next` if the job is still at `read.version`; false when another writer got there first. */
  async #write(
    id: string,
    read: Read,
    next: StoredJob,
    progressSeen: string,
    notify: boolean,
    withdraw: string,
  ): Promise<boolean> {
    const expiresAt = next.expiresAtMs;
    const reply = (await this.#guard.run((redis) =>
      WRITE_JOB.run(
        redis,
        [
          this.#jobKey(id),
          `${this.#prefix}jobs:expiry`,
          this.#bullPrefix + id,
          this.#key('events'),
          this.#key('meta'),
          this.#key('completed'),
          this.#key('failed'),
        ],
        [
          read.version,
          next.snapshot.version,
          next.snapshot.status,
          JSON.stringify(next),
          progressSeen,
          expiresAt === undefined ? '' : expiresAt,
          expiresAt === undefined ? '' : this.#ttl(expiresAt),
          id,
          notify ? '1' : '',
          withdraw,
          this.#origin,
        ],
      ),
    )) as [number];
    if (reply[0] !== 1) return false;
    this.#learn(id, next.snapshot.version, next, progressSeen, true);
    return true;
  }

  // Remembers the newest state seen and announces it when it is news to this process.
  #learn(id: string, version: number, job: StoredJob, progressSeen: string, announce: boolean): void {
    const known = this.#known.get(id);
    if (known !== undefined && known.version > version) return;
    const news = known === undefined || version > known.version;
    this.#remember(id, version, job, progressSeen);
    if (news && announce && known !== undefined) this.#listeners.emit({ id, version, job });
  }

  #remember(id: string, version: number, job: StoredJob, progressSeen: string): void {
    const known = this.#known.get(id);
    // Delete and set again: a Map iterates in insertion order, so the first key is the least recent.
    this.#known.delete(id);
    this.#known.set(id, {
      version,
      job,
      progressSeen,
      ending: known?.ending,
      removed: known?.removed ?? false,
    });
    if (this.#known.size > this.#trackLimit) this.#known.delete(this.#known.keys().next().value!);
  }

  // --- events ----------------------------------------------------------------------------------------

  #onEvent(name: (typeof JOB_EVENTS)[number], args: Record<string, unknown>): void {
    const id = args['jobId'];
    if (this.#closed || typeof id !== 'string') return;
    const known = this.#known.get(id);
    if (known === undefined) return;
    switch (name) {
      case 'pollkit:change':
        if (args['origin'] === this.#origin) return;
        if (args['deleted'] === '1') {
          this.#known.delete(id);
          this.#listeners.emit({ id, version: Number(args['version']), deleted: true });
          return;
        }
        if (Number(args['version']) <= known.version) return;
        break;
      case 'completed':
        // With removeOnComplete, the event may be all that is left of the result.
        known.ending = {
          state: 'completed',
          attemptsStarted: 1,
          attemptsMade: 1,
          returnValue: json(args['returnvalue']),
        };
        break;
      case 'failed':
        known.ending = {
          state: 'failed',
          attemptsStarted: 1,
          attemptsMade: 1,
          failedReason: typeof args['failedReason'] === 'string' ? args['failedReason'] : undefined,
        };
        break;
      case 'removed':
        known.removed = true;
        break;
      default:
        break;
    }
    this.#pending.add(id);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // Events of one stream read arrive in one synchronous burst: fold each job once for all of them.
      queueMicrotask(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushScheduled = false;
    for (const id of this.#pending) {
      if (this.#refreshing.has(id)) continue;
      this.#pending.delete(id);
      void this.#refresh(id);
    }
  }

  async #refresh(id: string): Promise<void> {
    this.#refreshing.add(id);
    try {
      const read = await this.#read(id);
      if (read === undefined) {
        const known = this.#known.get(id);
        if (known !== undefined) this.#listeners.emit({ id, version: known.version, deleted: true });
        return;
      }
      await this.#settle(id, read);
    } catch {
      // Redis is out of reach: waiters answer at their timeout with the last known state, and the
      // stream read resumes from where it stopped once Redis is back, so the change is not lost.
    } finally {
      this.#refreshing.delete(id);
      if (this.#pending.has(id) && !this.#closed) this.#flush();
    }
  }

  // --- BullMQ side -----------------------------------------------------------------------------------

  #add(job: StoredJob): Promise<unknown> {
    const type = job.snapshot.type;
    return this.#queue.add(type, job.input, { ...this.#jobOptions[type], jobId: job.snapshot.id });
  }

  // Best effort: a job that became active meanwhile fails at its next start instead (WRITE_JOB marked it).
  async #remove(id: string): Promise<void> {
    try {
      await this.#queue.remove(id);
    } catch {
      // Locked by a worker, or Redis went away; the deferred failure still stops the job.
    }
  }

  #deleteRaw(redis: Redis, id: string, version: number, notify: string): Promise<unknown> {
    return DELETE_JOB.run(
      redis,
      [
        this.#jobKey(id),
        `${this.#prefix}jobs:all`,
        `${this.#prefix}jobs:expiry`,
        this.#key('events'),
        this.#key('meta'),
      ],
      [version, id, notify, this.#origin],
    );
  }

  // --- keys ------------------------------------------------------------------------------------------

  #key(type: string): string {
    return String(this.#queue.keys[type as keyof Queue['keys']]);
  }

  #jobKey(id: string): string {
    return `${this.#jobPrefix}${id}`;
  }

  #ownerKey(owner: string): string {
    return `${this.#prefix}jobs:owner:${owner}`;
  }

  #idempotencyKey(owner: string | undefined, key: string): string {
    return `${this.#prefix}jobs:idem:${JSON.stringify([owner ?? null, key])}`;
  }

  // Relative, from this store's clock, so a test clock far from real time cannot expire a job at once.
  #ttl(expiresAtMs: number): number {
    return Math.ceil(Math.max(0, expiresAtMs - this.#clock.wallNow()) + this.#ttlGraceMs);
  }
}

function isUnfinished(state: BullmqState): boolean {
  return state !== 'completed' && state !== 'failed' && state !== 'missing';
}

function optional(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function optionalNumber(value: string | undefined): number | undefined {
  return value === undefined || value === '' ? undefined : Number(value);
}

function json(value: unknown): string {
  return JSON.stringify(value ?? null);
}

const parseJob = (json: string): StoredJob => parseStoredJob(json, 'The BullMQ job store');
const { encode: encodeCursor, decode: decodeCursor } = pageTokens('b');
