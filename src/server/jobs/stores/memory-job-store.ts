/**
 * The default {@link JobStore}: jobs in a Map, kept for one process. Listing walks an insertion-ordered
 * index from the cursor backwards, and retention pops an expiry-ordered heap, so neither pays for the
 * jobs it does not return or remove.
 *
 * @module
 */
import { InvalidArgumentError } from '../../../core/errors.js';
import type {
  InsertOptions,
  InsertResult,
  JobChange,
  LeaseSweep,
  JobListPage,
  JobListQuery,
  JobStore,
  JobTransition,
  StoredJob,
  SweepResult,
} from './job-store.js';
import { MinHeap } from './min-heap.js';
import { providePeek } from './memory-peek.js';
import { ChangeListeners } from '../../change-listeners.js';
import { releasesKey, tooManyJobs } from './store-rules.js';

interface Entry {
  readonly seq: number;
  job: StoredJob;
}

/**
 * Jobs in insertion order, as parallel arrays so that an item costs no object of its own: the
 * position (the global sequence, or in an owner's index the owner's own), the id, and the job's
 * global sequence, which tells a live item from one of a removed job (the same as the position in
 * the global index, which keeps no copy of it).
 */
class Index {
  readonly seqs: number[] = [];
  readonly ids: string[] = [];
  readonly entries: number[] | undefined;

  constructor(global: boolean) {
    this.entries = global ? undefined : [];
  }

  get length(): number {
    return this.seqs.length;
  }

  push(seq: number, id: string, entry: number): void {
    this.seqs.push(seq);
    this.ids.push(id);
    this.entries?.push(entry);
  }

  entry(position: number): number {
    return this.entries === undefined ? this.seqs[position]! : this.entries[position]!;
  }

  /** A copy holding only the items `live` keeps. */
  filter(live: (id: string, entry: number) => boolean): Index {
    const kept = new Index(this.entries === undefined);
    for (let position = 0; position < this.seqs.length; position++) {
      const id = this.ids[position]!;
      const entry = this.entry(position);
      if (live(id, entry)) kept.push(this.seqs[position]!, id, entry);
    }
    return kept;
  }
}

// Indexes keep dead items until they outnumber live ones, so a delete is O(1) and compaction is amortized.
const COMPACT_MIN_DEAD = 1024;

/**
 * A {@link JobStore} in process memory: atomic by construction (JavaScript runs one transition at a
 * time), listeners called synchronously after each change.
 *
 * @example
 * ```ts
 * import { JobRegistry, MemoryJobStore } from 'pollkit/server';
 * const store = new MemoryJobStore();
 * const registry = new JobRegistry({ store });
 * store.onChange((change) => console.log('job', change.id, 'is now at version', change.version));
 * ```
 */
export class MemoryJobStore implements JobStore {
  readonly #jobs = new Map<string, Entry>();
  readonly #idempotency = new Map<string, string>();
  #order = new Index(true);
  #byOwner = new Map<string, Index>();
  // Each owner's index counts on its own, so an owner's page tokens reveal nothing of other owners'
  // jobs (a global sequence would tell every caller how many jobs everyone made).
  readonly #ownerSeq = new Map<string, number>();
  #dead = 0;
  /** Ids by the expiry they had when pushed; an entry whose job now expires otherwise is stale. */
  readonly #expiry = new MinHeap<string>();
  /** Unfinished jobs with a lease, by id: their current expiry. Few (running and queued ones), so scanned. */
  readonly #leases = new Map<string, number>();
  readonly #owned = new Map<string, number>();
  readonly #listeners = new ChangeListeners<JobChange>();
  #seq = 0;

  static {
    providePeek((store, id) => store.#jobs.get(id)?.job);
  }

  /** How many jobs the store holds. */
  get size(): number {
    return this.#jobs.size;
  }

  async insert(job: StoredJob, options: InsertOptions = {}): Promise<InsertResult> {
    const id = job.snapshot.id;
    if (job.idempotencyKey !== undefined) {
      const existingId = this.#idempotency.get(idempotencySlot(job.owner, job.idempotencyKey));
      const existing = existingId === undefined ? undefined : this.#jobs.get(existingId);
      if (existing !== undefined && !releasesKey(existing.job)) return { inserted: false, job: existing.job };
    }
    if (this.#jobs.has(id)) throw new InvalidArgumentError(`a job with id ${id} already exists`, 'id');
    const owned = job.owner === undefined ? 0 : (this.#owned.get(job.owner) ?? 0);
    if (options.maxPerOwner !== undefined && owned >= options.maxPerOwner) throw tooManyJobs(owned);
    if (job.owner !== undefined) this.#owned.set(job.owner, owned + 1);
    const seq = ++this.#seq;
    this.#jobs.set(id, { seq, job });
    this.#order.push(seq, id, seq);
    if (job.owner !== undefined) {
      let owned = this.#byOwner.get(job.owner);
      if (owned === undefined) this.#byOwner.set(job.owner, (owned = new Index(false)));
      const ownerSeq = (this.#ownerSeq.get(job.owner) ?? 0) + 1;
      this.#ownerSeq.set(job.owner, ownerSeq);
      owned.push(ownerSeq, id, seq);
    }
    if (job.idempotencyKey !== undefined) this.#idempotency.set(idempotencySlot(job.owner, job.idempotencyKey), id);
    if (job.expiresAtMs !== undefined) this.#expiry.push(job.expiresAtMs, id);
    this.#indexLease(id, job);
    this.#listeners.emit({ id, version: job.snapshot.version, job });
    return { inserted: true, job };
  }

  async get(id: string): Promise<StoredJob | undefined> {
    return this.#jobs.get(id)?.job;
  }

  async findByIdempotencyKey(owner: string | undefined, key: string): Promise<StoredJob | undefined> {
    const id = this.#idempotency.get(idempotencySlot(owner, key));
    return id === undefined ? undefined : this.#jobs.get(id)?.job;
  }

  async update(id: string, transition: JobTransition): Promise<StoredJob | undefined> {
    const entry = this.#jobs.get(id);
    if (entry === undefined) return undefined;
    let current = entry.job;
    let next = transition(current);
    // A transition that (against the rules) renewed or changed the job while it ran is run again.
    while (entry.job !== current && this.#jobs.get(id) === entry) {
      current = entry.job;
      next = transition(current);
    }
    if (next === current) return current;
    if (next.snapshot.id !== id) throw new InvalidArgumentError('a transition must not change the job id', 'id');
    if (!(next.snapshot.version > current.snapshot.version)) {
      throw new InvalidArgumentError(
        `a transition must raise the version (from ${current.snapshot.version}, got ${next.snapshot.version})`,
        'version',
      );
    }
    entry.job = next;
    if (next.expiresAtMs !== undefined && next.expiresAtMs !== current.expiresAtMs) {
      this.#expiry.push(next.expiresAtMs, id);
    }
    this.#indexLease(id, next);
    this.#listeners.emit({ id, version: next.snapshot.version, job: next });
    return next;
  }

  async delete(id: string, condition?: (job: StoredJob) => boolean): Promise<boolean> {
    const entry = this.#jobs.get(id);
    if (entry === undefined) return false;
    if (condition !== undefined && !condition(entry.job)) return false;
    this.#remove(id, entry);
    return true;
  }

  async list(query: JobListQuery): Promise<JobListPage> {
    const before = query.cursor === undefined ? Number.POSITIVE_INFINITY : decodeCursor(query.cursor);
    const index = query.owner === undefined ? this.#order : this.#byOwner.get(query.owner);
    if (index === undefined) return { jobs: [] };
    const jobs: StoredJob[] = [];
    let lastSeq = 0;
    // Binary search for the first item at or after the cursor; the page starts just below it.
    let low = 0;
    let high = index.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (index.seqs[middle]! < before) low = middle + 1;
      else high = middle;
    }
    for (let position = low - 1; position >= 0; position--) {
      const entry = this.#jobs.get(index.ids[position]!);
      if (entry === undefined || entry.seq !== index.entry(position)) continue;
      if (query.status !== undefined && entry.job.snapshot.status !== query.status) continue;
      if (jobs.length === query.limit) return { jobs, cursor: encodeCursor(lastSeq) };
      jobs.push(entry.job);
      lastSeq = index.seqs[position]!;
    }
    return { jobs };
  }

  async sweep(nowMs: number, limit: number): Promise<SweepResult> {
    const removed: string[] = [];
    while (removed.length < limit) {
      const at = this.#skipStaleExpiries();
      if (at === undefined || at > nowMs) break;
      const id = this.#expiry.pop()!;
      this.#remove(id, this.#jobs.get(id)!);
      removed.push(id);
    }
    const next = this.#skipStaleExpiries();
    return next === undefined ? { removed } : { removed, nextExpiryMs: next };
  }

  async renewLeases(holder: string, ids: readonly string[], expiresAtMs: number): Promise<readonly string[]> {
    const lost: string[] = [];
    for (const id of ids) {
      const entry = this.#jobs.get(id);
      const job = entry?.job;
      if (entry === undefined || job === undefined || job.snapshot.done || job.lease?.holder !== holder) {
        lost.push(id);
        continue;
      }
      // Not a change: same version, nobody told. The job object is replaced, never mutated.
      entry.job = Object.freeze({ ...job, lease: Object.freeze({ holder, expiresAtMs }) });
      this.#leases.set(id, expiresAtMs);
    }
    return lost;
  }

  async expiredLeases(nowMs: number, limit: number): Promise<LeaseSweep> {
    const jobs: StoredJob[] = [];
    let next: number | undefined;
    for (const [id, expiresAtMs] of this.#leases) {
      if (expiresAtMs <= nowMs && jobs.length < limit) jobs.push(this.#jobs.get(id)!.job);
      else if (expiresAtMs > nowMs && (next === undefined || expiresAtMs < next)) next = expiresAtMs;
    }
    return next === undefined ? { jobs } : { jobs, nextExpiryMs: next };
  }

  onChange(listener: (change: JobChange) => void): () => void {
    return this.#listeners.add(listener);
  }

  async close(): Promise<void> {
    this.#listeners.clear();
  }

  // Heap entries of forgotten or re-expired jobs are left in place and dropped here, when they surface.
  #skipStaleExpiries(): number | undefined {
    for (;;) {
      const id = this.#expiry.peek();
      if (id === undefined) return undefined;
      const at = this.#expiry.peekKey()!;
      if (this.#jobs.get(id)?.job.expiresAtMs === at) return at;
      this.#expiry.pop();
    }
  }

  #indexLease(id: string, job: StoredJob): void {
    if (job.lease !== undefined && !job.snapshot.done) this.#leases.set(id, job.lease.expiresAtMs);
    else this.#leases.delete(id);
  }

  #remove(id: string, entry: Entry): void {
    this.#jobs.delete(id);
    this.#leases.delete(id);
    const { job } = entry;
    if (job.owner !== undefined) {
      const owned = (this.#owned.get(job.owner) ?? 1) - 1;
      if (owned <= 0) this.#owned.delete(job.owner);
      else this.#owned.set(job.owner, owned);
    }
    if (job.idempotencyKey !== undefined) {
      // The key may have passed to a newer job (a retryable failure gives it up); only its holder frees it.
      const slot = idempotencySlot(job.owner, job.idempotencyKey);
      if (this.#idempotency.get(slot) === id) this.#idempotency.delete(slot);
    }
    this.#dead++;
    if (this.#dead >= COMPACT_MIN_DEAD && this.#dead > this.#jobs.size) this.#compact();
    this.#listeners.emit({ id, version: job.snapshot.version, deleted: true });
  }

  #compact(): void {
    const live = (id: string, entry: number): boolean => this.#jobs.get(id)?.seq === entry;
    this.#order = this.#order.filter(live);
    const byOwner = new Map<string, Index>();
    for (const [owner, items] of this.#byOwner) {
      const kept = items.filter(live);
      if (kept.length > 0) byOwner.set(owner, kept);
    }
    this.#byOwner = byOwner;
    this.#dead = 0;
  }
}

function idempotencySlot(owner: string | undefined, key: string): string {
  return JSON.stringify([owner ?? null, key]);
}

function encodeCursor(seq: number): string {
  return `m${seq.toString(36)}`;
}

function decodeCursor(cursor: string): number {
  if (!/^m[0-9a-z]{1,10}$/.test(cursor))
    throw new InvalidArgumentError('pageToken is not a valid page token', 'pageToken');
  return Number.parseInt(cursor.slice(1), 36);
}
