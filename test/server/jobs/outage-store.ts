/**
 * A MemoryJobStore that can be taken down: while `down`, every call rejects as the Redis store does
 * during an outage (a retryable `overloaded` error), so registry tests can run outages in memory.
 *
 * @module
 */
import { OverloadedError } from '../../../src/core/errors.js';
import type {
  InsertResult,
  JobListPage,
  JobTransition,
  StoredJob,
  SweepResult,
} from '../../../src/server/jobs/stores/job-store.js';
import { MemoryJobStore } from '../../../src/server/jobs/stores/memory-job-store.js';

export class OutageStore extends MemoryJobStore {
  down = false;
  /** Calls refused while down, by method. */
  readonly refused: Record<string, number> = {};

  #check(method: string): void {
    if (!this.down) return;
    this.refused[method] = (this.refused[method] ?? 0) + 1;
    throw new OverloadedError('The store is unavailable (test outage)');
  }

  override async insert(job: StoredJob, ...rest: unknown[]): Promise<InsertResult> {
    this.#check('insert');
    return (super.insert as (...args: unknown[]) => Promise<InsertResult>)(job, ...rest);
  }

  override async get(id: string): Promise<StoredJob | undefined> {
    this.#check('get');
    return super.get(id);
  }

  override async update(id: string, transition: JobTransition): Promise<StoredJob | undefined> {
    this.#check('update');
    return super.update(id, transition);
  }

  override async list(...args: Parameters<MemoryJobStore['list']>): Promise<JobListPage> {
    this.#check('list');
    return super.list(...args);
  }

  override async sweep(nowMs: number, limit: number): Promise<SweepResult> {
    this.#check('sweep');
    return super.sweep(nowMs, limit);
  }
}
