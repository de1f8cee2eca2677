/**
 * A {@link JobStore} in Redis, so several server processes share jobs: a worker finishing a job through
 * one instance wakes the long polls held on every other. Jobs are hashes (with a TTL past their
 * retention as a safety net), ordered by a global sequence in sorted-set indexes; changes are
 * compare-and-set on the version inside a Lua script, so two workers cannot both succeed one job.
 *
 * The store also remembers, for a bounded number of recently used jobs, the newest state it has seen.
 * That memory serves two purposes: after a (re)subscribe it tells the store which jobs to re-check so
 * waiters wake even if a notice was lost, and while Redis is unreachable `get` answers from it, so a
 * held request answers at its timeout with the last known state instead of an error.
 *
 * @module
 */
import type { Redis } from 'ioredis';
import type { Clock } from '../core/clock.js';
import { InvalidArgumentError } from '../core/errors.js';
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
} from './connection.js';
import type { FeedNotice, RedisChangeFeed } from './change-feed.js';
import { StoreSubscription } from './resync.js';
import { pageTokens, parseStoredJob, validateTransition } from './stored-jobs.js';
import {
  DELETE_JOB,
  EXPIRED_LEASES,
  FIND_IDEMPOTENT,
  INSERT_JOB,
  JOB_VERSIONS,
  LIST_JOBS,
  RENEW_LEASES,
  SWEEP_JOBS,
  UPDATE_JOB,
} from './scripts.js';

/** Options for {@link RedisJobStore}. */
export interface RedisJobStoreOptions {
  /** The ioredis client for commands; the store never closes it. Required. */
  readonly redis: Redis;
  /**
   * The process's subscription, shared with a {@link RedisTopicStore}. Default: a feed of the store's
   * own (one more connection), closed with the store.
   */
  readonly feed?: RedisChangeFeed;
  /** Prefix of every key; stores of one deployment must agree on it. Default `"pollkit:"`. */
  readonly keyPrefix?: string;
  /** Time for command deadlines. Default `systemClock`. */
  readonly clock?: Clock;
  /** How long a command may take before it fails with {@link StoreUnavailableError}. Default `2000`. */
  readonly commandTimeoutMs?: number;
  /**
   * How long Redis keeps a job past the moment some live process should have acted on it, when none
   * did (all down): past a finished job's `expiresAtMs`, and past the lapse of an unfinished job's
   * lease. In milliseconds. Default `3_600_000` (one hour).
   */
  readonly ttlGraceMs?: number;
  /** How many recently used jobs the store remembers for re-checks and outage reads. Default `10_000`. */
  readonly trackLimit?: number;
  /**
   * The largest job, in JSON characters, that a change notice carries whole; bigger ones announce only
   * their version and other processes re-read them. Default `16_384`.
   */
  readonly inlineLimit?: number;
  /** How many jobs one `list` call examines at most, however few match. Default `5000`. */
  readonly listScanLimit?: number;
}

interface Known {
  version: number;
  job: StoredJob | undefined;
}

// Concurrent writers retry a lost compare-and-set; each round some writer wins, so this is never reached
// except under a pathological storm, and then the caller gets a retryable error instead of a livelock.
const MAX_CAS_ROUNDS = 64;

/**
 * Jobs in Redis, shared by every process that uses the same Redis and key prefix.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { JobRegistry } from 'pollkit/server';
 * import { RedisJobStore } from 'pollkit/redis';
 *
 * const store = new RedisJobStore({ redis: new Redis(process.env.REDIS_URL!) });
 * const registry = new JobRegistry({ store });
 * ```
 */
export class RedisJobStore implements JobStore {
  readonly #clock: Clock;
  readonly #guard: CommandGuard;
  readonly #subscription: StoreSubscription<JobChange, Known>;
  readonly #prefix: string;
  readonly #jobPrefix: string;
  readonly #ttlGraceMs: number;
  readonly #inlineLimit: number;
  readonly #listScanLimit: number;
  readonly #origin = randomToken();

  constructor(options: RedisJobStoreOptions) {
    const connection = storeConnection('RedisJobStore', options);
    this.#clock = connection.clock;
    this.#guard = connection.guard;
    this.#prefix = connection.keyPrefix;
    this.#jobPrefix = `${this.#prefix}job:`;
    this.#ttlGraceMs = positiveMs(options.ttlGraceMs, 3_600_000, 'ttlGraceMs');
    this.#inlineLimit = positiveInteger(options.inlineLimit, 16_384, 'inlineLimit');
    this.#listScanLimit = positiveInteger(options.listScanLimit, 5000, 'listScanLimit');
    this.#subscription = new StoreSubscription(connection, options, {
      notice: (notice) => this.#onNotice(notice),
      resync: () => this.#resync(),
    });
  }

  /** The change feed this store listens on (its own unless one was passed). */
  get feed(): RedisChangeFeed {
    return this.#subscription.feed;
  }

  async insert(job: StoredJob, options: InsertOptions = {}): Promise<InsertResult> {
    const id = job.snapshot.id;
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
          this.#leasesKey,
        ],
        [
          id,
          json,
          job.snapshot.version,
          job.snapshot.status,
          job.owner === undefined ? '' : this.#ownerKey(job.owner),
          job.idempotencyKey === undefined ? '' : this.#idempotencyKey(job.owner, job.idempotencyKey),
          expiresAt === undefined ? '' : expiresAt,
          this.#ttlOf(job),
          this.feed.channel,
          this.#notice(id, job.snapshot.version, json),
          this.#jobPrefix,
          leaseOf(job),
          job.lease?.holder ?? '',
          options.maxPerOwner ?? '',
        ],
      ),
    )) as [number, (string | number)?];
    if (reply[0] === -1) throw new InvalidArgumentError(`a job with id ${id} already exists`, 'id');
    if (reply[0] === -2) throw tooManyJobs(Number(reply[1]));
    if (reply[0] === 0) return { inserted: false, job: this.#remember(parseJob(String(reply[1]))) };
    this.#remember(job);
    this.#subscription.emit({ id, version: job.snapshot.version, job });
    return { inserted: true, job };
  }

  async get(id: string): Promise<StoredJob | undefined> {
    try {
      return await this.#read(id);
    } catch (error) {
      // While Redis is out of reach, a read answers with the last state this process saw, if any.
      const known = this.#subscription.known.get(id)?.job;
      if (known !== undefined && StoreUnavailableError.is(error)) return known;
      throw error;
    }
  }

  async findByIdempotencyKey(owner: string | undefined, key: string): Promise<StoredJob | undefined> {
    const json = (await this.#guard.run((redis) =>
      FIND_IDEMPOTENT.run(redis, [this.#idempotencyKey(owner, key)], [this.#jobPrefix]),
    )) as string | null;
    return json === null ? undefined : this.#remember(parseJob(json));
  }

  async update(id: string, transition: JobTransition): Promise<StoredJob | undefined> {
    // Optimistic fast path: run the transition on the state this process last saw and let the
    // compare-and-set tell whether it was current — one round trip instead of read-then-write. Only a
    // write is trusted this way; a refusal or a no-op on a possibly stale state is confirmed on a fresh read.
    let current = this.#subscription.known.get(id)?.job;
    let fresh = current === undefined;
    if (current === undefined) {
      current = await this.#read(id);
      if (current === undefined) return undefined;
    }
    for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
      let next: StoredJob;
      try {
        next = transition(current);
      } catch (error) {
        if (fresh) throw error;
        next = current;
      }
      if (next === current) {
        if (fresh) return this.#remember(current);
        const reread = await this.#read(id);
        if (reread === undefined) return undefined;
        current = reread;
        fresh = true;
        continue;
      }
      validateTransition(id, current, next);
      const nextJson = JSON.stringify(next);
      const expiresAt = next.expiresAtMs;
      const expected = current.snapshot.version;
      const expectedLease = leaseOf(current);
      const reply = (await this.#guard.run((redis) =>
        UPDATE_JOB.run(
          redis,
          [this.#jobKey(id), `${this.#prefix}jobs:expiry`, this.#leasesKey],
          [
            expected,
            next.snapshot.version,
            next.snapshot.status,
            nextJson,
            expiresAt === undefined ? '' : expiresAt,
            this.#ttlOf(next),
            id,
            this.feed.channel,
            this.#notice(id, next.snapshot.version, nextJson),
            expectedLease,
            leaseOf(next),
            next.lease?.holder ?? '',
          ],
        ),
      )) as [number, string?, string?];
      if (reply[0] === -1) {
        this.#subscription.known.delete(id);
        return undefined;
      }
      if (reply[0] === 1) {
        this.#remember(next);
        this.#subscription.emit({ id, version: next.snapshot.version, job: next });
        return next;
      }
      // Another writer (or a renewal) got there first, or the remembered state was stale: run the
      // transition again on theirs.
      current = this.#remember(withLease(parseJob(reply[1]!), reply[2]));
      fresh = true;
    }
    throw new StoreUnavailableError(`job ${id} is changing too fast to update; try again`);
  }

  async delete(id: string, condition?: (job: StoredJob) => boolean): Promise<boolean> {
    const json = await this.#guard.run((redis) => redis.hget(this.#jobKey(id), 'j'));
    if (json === null) return false;
    let current = parseJob(json);
    for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
      if (condition !== undefined && !condition(current)) return false;
      const version = current.snapshot.version;
      const reply = (await this.#guard.run((redis) =>
        DELETE_JOB.run(
          redis,
          [this.#jobKey(id), `${this.#prefix}jobs:all`, `${this.#prefix}jobs:expiry`, this.#leasesKey],
          [version, id, this.feed.channel, this.#notice(id, version, undefined, true)],
        ),
      )) as [number, string?];
      if (reply[0] === -1) return false;
      if (reply[0] === 1) {
        this.#subscription.known.delete(id);
        this.#subscription.emit({ id, version, deleted: true });
        return true;
      }
      current = parseJob(reply[1]!);
    }
    throw new StoreUnavailableError(`job ${id} is changing too fast to delete; try again`);
  }

  async list(query: JobListQuery): Promise<JobListPage> {
    const before = query.cursor === undefined ? '' : decodeCursor(query.cursor);
    const index = query.owner === undefined ? `${this.#prefix}jobs:all` : this.#ownerKey(query.owner);
    const [jsons, cursor] = (await this.#guard.run((redis) =>
      LIST_JOBS.run(
        redis,
        [index],
        [before, query.limit, query.status ?? '', this.#jobPrefix, Math.max(this.#listScanLimit, query.limit)],
      ),
    )) as [string[], string | null];
    const jobs = jsons.map(parseJob);
    return cursor === null ? { jobs } : { jobs, cursor: encodeCursor(cursor) };
  }

  async sweep(nowMs: number, limit: number): Promise<SweepResult> {
    const [pairs, next] = (await this.#guard.run((redis) =>
      SWEEP_JOBS.run(
        redis,
        [`${this.#prefix}jobs:expiry`, `${this.#prefix}jobs:all`],
        [Math.floor(nowMs), limit, this.#jobPrefix, this.feed.channel, this.#origin],
      ),
    )) as [string[], string | null];
    const removed: string[] = [];
    for (let index = 0; index < pairs.length; index += 2) {
      const id = pairs[index]!;
      removed.push(id);
      this.#subscription.known.delete(id);
      this.#subscription.emit({ id, version: Number(pairs[index + 1]), deleted: true });
    }
    return next === null ? { removed } : { removed, nextExpiryMs: Number(next) };
  }

  async renewLeases(holder: string, ids: readonly string[], expiresAtMs: number): Promise<readonly string[]> {
    const until = Math.floor(expiresAtMs);
    const ttl = this.#ttlFrom(until);
    const lost: string[] = [];
    for (let start = 0; start < ids.length; start += RENEW_BATCH) {
      const batch = ids.slice(start, start + RENEW_BATCH);
      const missed = (await this.#guard.run((redis) =>
        RENEW_LEASES.run(redis, [this.#leasesKey], [holder, until, ttl, this.#jobPrefix, ...batch]),
      )) as string[];
      lost.push(...missed);
      const kept = new Set(batch);
      for (const id of missed) kept.delete(id);
      // The remembered state feeds the optimistic path of update(): keep its lease current too.
      for (const id of kept) {
        const known = this.#subscription.known.get(id);
        if (known?.job?.lease?.holder === holder) known.job = withLease(known.job, String(until));
      }
    }
    return lost;
  }

  async expiredLeases(nowMs: number, limit: number): Promise<LeaseSweep> {
    const [pairs, next] = (await this.#guard.run((redis) =>
      EXPIRED_LEASES.run(redis, [this.#leasesKey], [Math.floor(nowMs), limit, this.#jobPrefix]),
    )) as [string[], string | null];
    const jobs: StoredJob[] = [];
    for (let index = 0; index < pairs.length; index += 2) {
      jobs.push(this.#remember(withLease(parseJob(pairs[index]!), pairs[index + 1])));
    }
    return next === null ? { jobs } : { jobs, nextExpiryMs: Number(next) };
  }

  onChange(listener: (change: JobChange) => void): () => void {
    return this.#subscription.onChange(listener);
  }

  /** Stops listening (and closes the feed if the store made it); the caller's client stays open. */
  async close(): Promise<void> {
    await this.#subscription.close();
  }

  async #read(id: string): Promise<StoredJob | undefined> {
    const [json, lease] = await this.#guard.run((redis) => redis.hmget(this.#jobKey(id), 'j', 'l'));
    if (json === null || json === undefined) {
      this.#subscription.known.delete(id);
      return undefined;
    }
    return this.#remember(withLease(parseJob(json), lease));
  }

  // --- notices ---------------------------------------------------------------------------------------

  #notice(id: string, version: number, json: string | undefined, deleted = false): string {
    const header = JSON.stringify(
      deleted ? { o: this.#origin, k: 'j', id, v: version, d: 1 } : { o: this.#origin, k: 'j', id, v: version },
    );
    return json !== undefined && json.length <= this.#inlineLimit ? `${header}\n${json}` : `${header}\n`;
  }

  #onNotice({ header, body }: FeedNotice): void {
    if (header['k'] !== 'j' || header['o'] === this.#origin) return;
    const id = header['id'];
    const version = header['v'];
    if (typeof id !== 'string' || typeof version !== 'number') return;
    const known = this.#subscription.known.get(id);
    if (header['d'] === 1) {
      this.#subscription.known.delete(id);
      this.#subscription.emit({ id, version, deleted: true });
      return;
    }
    // Notices arrive in commit order, but this process announces its own writes before their echo
    // would arrive; an older notice from another writer must not look like news.
    if (known !== undefined && known.version >= version) return;
    let job: StoredJob | undefined;
    if (body.length > 0) {
      try {
        job = parseJob(body);
      } catch {
        job = undefined;
      }
    }
    if (known !== undefined) {
      known.version = version;
      known.job = job;
    }
    this.#subscription.emit(job === undefined ? { id, version } : { id, version, job });
  }

  // Notices published while the subscription was down are gone; re-read the versions of every job this
  // process cares about and announce whatever moved, so waiters re-check.
  async #resync(): Promise<void> {
    const ids = [...this.#subscription.known.keys()];
    for (let start = 0; start < ids.length && !this.#subscription.closed; start += 500) {
      const batch = ids.slice(start, start + 500);
      let versions: (string | null)[];
      try {
        versions = (await this.#guard.run((redis) =>
          JOB_VERSIONS.run(
            redis,
            batch.map((id) => this.#jobKey(id)),
            [],
          ),
        )) as (string | null)[];
      } catch {
        this.#subscription.retryResync();
        return;
      }
      batch.forEach((id, index) => {
        const known = this.#subscription.known.get(id);
        if (known === undefined) return;
        const version = versions[index];
        if (version === null || version === undefined) {
          this.#subscription.known.delete(id);
          this.#subscription.emit({ id, version: known.version, deleted: true });
        } else if (Number(version) > known.version) {
          known.version = Number(version);
          known.job = undefined;
          this.#subscription.emit({ id, version: known.version });
        }
      });
    }
  }

  // --- local memory ----------------------------------------------------------------------------------

  #remember(job: StoredJob): StoredJob {
    const { id, version } = job.snapshot;
    this.#subscription.remember(id, { version, job }, (known) => known.version > version);
    return job;
  }

  /**
   * The job's safety TTL: Redis drops it `ttlGraceMs` after a live process should have acted on it —
   * removed a finished job at `expiresAtMs`, or failed one whose lease lapsed — so that nothing stays
   * forever when every process is gone. A job nobody holds (queued for external workers) keeps none.
   */
  #ttlOf(job: StoredJob): number | '' {
    if (job.expiresAtMs !== undefined) return this.#ttlFrom(job.expiresAtMs);
    if (job.lease !== undefined) return this.#ttlFrom(job.lease.expiresAtMs);
    return '';
  }

  // Relative, from this store's clock, so a test clock far from real time cannot expire a job at once.
  #ttlFrom(atMs: number): number {
    return Math.ceil(Math.max(0, atMs - this.#clock.wallNow()) + this.#ttlGraceMs);
  }

  get #leasesKey(): string {
    return `${this.#prefix}jobs:leases`;
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
}

// Ids per renewal script, so one renewal of many jobs never holds Redis for long.
const RENEW_BATCH = 500;

/** The lease expiry as the hash keeps it: whole milliseconds, or '' for none. */
function leaseOf(job: StoredJob): string {
  return job.lease === undefined ? '' : String(Math.floor(job.lease.expiresAtMs));
}

/** The job with its lease expiry as the hash's `l` field has it (renewals move only that field). */
function withLease(job: StoredJob, lease: string | null | undefined): StoredJob {
  if (job.lease === undefined || lease === null || lease === undefined || lease === '') return job;
  const expiresAtMs = Number(lease);
  if (expiresAtMs === job.lease.expiresAtMs) return job;
  return Object.freeze({ ...job, lease: Object.freeze({ holder: job.lease.holder, expiresAtMs }) });
}

const parseJob = (json: string): StoredJob => parseStoredJob(json, 'The Redis store');
const { encode: encodeCursor, decode: decodeCursor } = pageTokens('r');
