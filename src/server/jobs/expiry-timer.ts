/**
 * One timer for work keyed to expiry times the store hands back — the retention sweep, the check for
 * lapsed leases: armed for the earliest time known, never sooner than `minIntervalMs` after the last
 * run (so a flood of expiries costs one run per interval, not one per job), one run at a time, and a
 * run may ask for another on the next turn of the event loop when it left a backlog. Internal.
 *
 * @module
 */
import type { Clock, TimerHandle } from '../../core/clock.js';

/** What a run reports: the next time it is due, `'again'` for a backlog, or nothing. */
export type ExpiryRunResult = number | 'again' | undefined;

/** Runs `run` at the expiry times it is told about; see the module comment. */
export class ExpiryTimer {
  readonly #clock: Clock;
  readonly #minIntervalMs: number;
  readonly #run: () => Promise<ExpiryRunResult>;
  #timer: TimerHandle | undefined;
  #atMs: number | undefined;
  #lastRunAt = Number.NEGATIVE_INFINITY;
  #running = false;
  #queued = false;
  #closed = false;

  constructor(clock: Clock, minIntervalMs: number, run: () => Promise<ExpiryRunResult>) {
    this.#clock = clock;
    this.#minIntervalMs = minIntervalMs;
    this.#run = run;
  }

  /** Makes sure a run happens at `atMs` (wall-clock) or earlier, but not within the interval. */
  schedule(atMs: number): void {
    if (this.#closed) return;
    if (this.#atMs !== undefined && this.#atMs <= atMs) return;
    const delay = Math.max(atMs - this.#clock.wallNow(), this.#lastRunAt + this.#minIntervalMs - this.#clock.now(), 0);
    this.#arm(atMs, delay);
  }

  /** Stops for good; a run in progress finishes but schedules nothing. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(atMs: number, delay: number): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#atMs = atMs;
    this.#timer = this.#clock.setTimeout(() => void this.#fire(), delay, { unref: true });
  }

  async #fire(): Promise<void> {
    this.#timer = undefined;
    this.#atMs = undefined;
    if (this.#closed) return;
    if (this.#running) {
      // Slower than the interval: one run at a time, the next right after.
      this.#queued = true;
      return;
    }
    this.#running = true;
    this.#lastRunAt = this.#clock.now();
    let result: ExpiryRunResult;
    try {
      result = await this.#run();
    } finally {
      this.#running = false;
    }
    if (this.#closed) return;
    if (result === 'again') {
      // A backlog: the next batch on the next turn, whatever the interval says.
      this.#arm(this.#clock.wallNow(), 0);
      return;
    }
    if (this.#queued) {
      this.#queued = false;
      this.schedule(this.#clock.wallNow());
    }
    if (result !== undefined) this.schedule(result);
  }
}
