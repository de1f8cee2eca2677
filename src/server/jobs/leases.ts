/**
 * Leases: how every job reaches a final state when the process holding it dies. A registry holds the
 * jobs it queued or started under a lease ({@link JobLease}) that {@link LeaseKeeper} renews every
 * third of `leaseMs`; a lease that lapses means its holder is gone (killed, partitioned, stalled), and
 * whichever live registry's {@link LeaseSweeper} notices first fails the job with a retryable
 * `worker-lost` problem, or takes it over to run again while its attempts allow. Renewals are not
 * changes (no version, no notice), so a running job costs its waiters nothing while it is renewed.
 *
 * @module
 */
import { Backoff, backoff } from '../../core/backoff.js';
import type { Clock, TimerHandle } from '../../core/clock.js';
import type { BackgroundErrorHandler } from './background-errors.js';
import { ExpiryTimer, type ExpiryRunResult } from './expiry-timer.js';
import type { JobLease, JobStore, StoredJob } from './stores/job-store.js';

/** What {@link LeaseKeeper} needs. */
export interface LeaseKeeperHost {
  readonly store: JobStore;
  readonly clock: Clock;
  /** This registry's identity in leases. */
  readonly holder: string;
  readonly leaseMs: number;
  readonly onError: BackgroundErrorHandler;
  /** A job this process held is no longer its own (finished elsewhere, taken over, gone). */
  lost(id: string): void;
}

// A renewal the store refused is tried again soon, well inside the lease, rather than a third of it later.
const RENEW_RETRY = backoff({ strategy: 'full', initial: 250, factor: 2, max: 2000 });

/** Renews the leases of the jobs this process holds, in one store call per round. */
export class LeaseKeeper {
  readonly #host: LeaseKeeperHost;
  readonly #held = new Set<string>();
  readonly #retry: Backoff;
  #timer: TimerHandle | undefined;
  #lease: JobLease | undefined;
  #renewing: Promise<void> | undefined;
  #closed = false;

  constructor(host: LeaseKeeperHost) {
    this.#host = host;
    this.#retry = new Backoff(RENEW_RETRY, () => host.clock.random());
  }

  /** This registry's identity in leases. */
  get holder(): string {
    return this.#host.holder;
  }

  /** A lease for a job this process takes now (frozen: jobs taken in the same millisecond share it). */
  lease(): JobLease {
    const expiresAtMs = Math.floor(this.#host.clock.wallNow()) + this.#host.leaseMs;
    if (this.#lease?.expiresAtMs !== expiresAtMs) {
      this.#lease = Object.freeze({ holder: this.#host.holder, expiresAtMs });
    }
    return this.#lease;
  }

  /** How many jobs this process holds. */
  get size(): number {
    return this.#held.size;
  }

  /** Whether this process holds (renews) the job. */
  holds(id: string): boolean {
    return this.#held.has(id);
  }

  /** Starts renewing the job's lease. */
  hold(id: string): void {
    if (this.#closed) return;
    this.#held.add(id);
    if (this.#timer === undefined && this.#renewing === undefined) this.#arm(this.#host.leaseMs / 3);
  }

  /** Stops renewing it (it finished, or was lost). */
  release(id: string): void {
    this.#held.delete(id);
    if (this.#held.size === 0 && this.#timer !== undefined) {
      this.#host.clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Renews every held lease now (a lapse of one of its own was seen: the process stalled). */
  renewNow(): Promise<void> {
    if (this.#timer !== undefined) this.#host.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#renew();
  }

  /** Stops renewing; leases then lapse, and other processes take over. */
  close(): void {
    this.#closed = true;
    this.#held.clear();
    if (this.#timer !== undefined) this.#host.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(delay: number): void {
    this.#timer = this.#host.clock.setTimeout(
      () => {
        this.#timer = undefined;
        void this.#renew();
      },
      delay,
      { unref: true },
    );
  }

  #renew(): Promise<void> {
    this.#renewing ??= this.#round().finally(() => {
      this.#renewing = undefined;
    });
    return this.#renewing;
  }

  async #round(): Promise<void> {
    const host = this.#host;
    if (this.#closed || this.#held.size === 0) return;
    const ids = [...this.#held];
    let next = host.leaseMs / 3;
    try {
      const lost = await host.store.renewLeases(host.holder, ids, Math.floor(host.clock.wallNow()) + host.leaseMs);
      this.#retry.reset();
      for (const id of lost) {
        if (!this.#held.delete(id)) continue;
        host.lost(id);
      }
    } catch (error) {
      host.onError(error, { operation: 'lease', attempt: this.#retry.attempt + 1 });
      next = Math.min(next, this.#retry.next());
    }
    if (!this.#closed && this.#held.size > 0 && this.#timer === undefined) this.#arm(next);
  }
}

/** What {@link LeaseSweeper} needs. */
export interface LeaseSweeperHost {
  readonly store: JobStore;
  readonly clock: Clock;
  readonly keeper: LeaseKeeper;
  readonly onError: BackgroundErrorHandler;
  /** Fails, or takes over, a job whose lease lapsed at `nowMs`; must re-check the lapse atomically. */
  reclaim(job: StoredJob, nowMs: number): Promise<void>;
}

const SWEEP_LIMIT = 500;
// How soon a check that the store refused is tried again (never sooner than the sweep interval).
const RETRY_MS = 1000;

/**
 * Finds lapsed leases at the earliest expiry it knows of — learned from change notices and from the
 * store after each check — and hands each lapsed job to `reclaim`. A lapse of one of this process's
 * own leases means it stalled past its renewals, not that it died: it renews them instead.
 */
export class LeaseSweeper {
  readonly #host: LeaseSweeperHost;
  readonly #timer: ExpiryTimer;

  constructor(host: LeaseSweeperHost, minIntervalMs: number) {
    this.#host = host;
    this.#timer = new ExpiryTimer(host.clock, minIntervalMs, () => this.#check());
  }

  /** Checks at `atMs` (or the earliest time already planned). */
  schedule(atMs: number): void {
    this.#timer.schedule(atMs);
  }

  /** Stops checking. */
  close(): void {
    this.#timer.close();
  }

  async #check(): Promise<ExpiryRunResult> {
    const host = this.#host;
    const nowMs = host.clock.wallNow();
    let jobs: readonly StoredJob[];
    let nextExpiryMs: number | undefined;
    try {
      ({ jobs, nextExpiryMs } = await host.store.expiredLeases(nowMs, SWEEP_LIMIT));
    } catch (error) {
      host.onError(error, { operation: 'lease' });
      return nowMs + RETRY_MS;
    }
    let ownStalled = false;
    let failed = false;
    await Promise.all(
      jobs.map(async (job) => {
        if (job.lease?.holder === host.keeper.holder && host.keeper.holds(job.snapshot.id)) {
          ownStalled = true;
          return;
        }
        try {
          await host.reclaim(job, nowMs);
        } catch (error) {
          failed = true;
          host.onError(error, { operation: 'lease', jobId: job.snapshot.id });
        }
      }),
    );
    if (ownStalled) await host.keeper.renewNow();
    if (jobs.length >= SWEEP_LIMIT) return 'again';
    // Jobs that could not be reclaimed are still lapsed: look again soon, not at the next expiry.
    if (failed) return nowMs + RETRY_MS;
    return nextExpiryMs;
  }
}
