/**
 * Leases, in memory: two registries on one store stand for two processes sharing Redis (the Redis
 * suite repeats the essentials with real processes and SIGKILL). A registry "dies" when its view of
 * the store stops answering and stops hearing changes.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { OverloadedError } from '../../../src/core/errors.js';
import { JobRegistry, type JobRegistryOptions } from '../../../src/server/jobs/job-registry.js';
import type {
  InsertOptions,
  JobChange,
  JobListQuery,
  JobStore,
  JobTransition,
  StoredJob,
} from '../../../src/server/jobs/stores/job-store.js';
import { MemoryJobStore } from '../../../src/server/jobs/stores/memory-job-store.js';
import { DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';

/** One process's view of a shared store; `dead` makes it hang up on every call and hear nothing. */
class View implements JobStore {
  dead = false;
  /** Renewals only fail (the process lives but cannot reach the store). */
  partitioned = false;
  readonly #shared: MemoryJobStore;
  constructor(shared: MemoryJobStore) {
    this.#shared = shared;
  }
  #check(): void {
    if (this.dead) throw new OverloadedError('this process is gone');
  }
  async insert(job: StoredJob, options?: InsertOptions) {
    this.#check();
    return this.#shared.insert(job, options);
  }
  async get(id: string) {
    this.#check();
    return this.#shared.get(id);
  }
  async findByIdempotencyKey(owner: string | undefined, key: string) {
    this.#check();
    return this.#shared.findByIdempotencyKey(owner, key);
  }
  async update(id: string, transition: JobTransition) {
    this.#check();
    return this.#shared.update(id, transition);
  }
  async delete(id: string, condition?: (job: StoredJob) => boolean) {
    this.#check();
    return this.#shared.delete(id, condition);
  }
  async list(query: JobListQuery) {
    this.#check();
    return this.#shared.list(query);
  }
  async sweep(nowMs: number, limit: number) {
    this.#check();
    return this.#shared.sweep(nowMs, limit);
  }
  async renewLeases(holder: string, ids: readonly string[], expiresAtMs: number) {
    this.#check();
    if (this.partitioned) throw new OverloadedError('partitioned from the store');
    return this.#shared.renewLeases(holder, ids, expiresAtMs);
  }
  async expiredLeases(nowMs: number, limit: number) {
    this.#check();
    return this.#shared.expiredLeases(nowMs, limit);
  }
  onChange(listener: (change: JobChange) => void) {
    return this.#shared.onChange((change) => {
      if (!this.dead) listener(change);
    });
  }
  async close() {}
}

function cluster(options: JobRegistryOptions = {}) {
  const clock = new ManualClock();
  const shared = new MemoryJobStore();
  let n = 0;
  const node = () => {
    const view = new View(shared);
    const registry = new JobRegistry({
      clock,
      store: view,
      purgatory: new DelayedOperationPurgatory({ clock }),
      generateId: () => `job-${++n}`,
      onError: () => undefined,
      ...options,
    });
    return { view, registry };
  };
  return { clock, shared, node };
}

const forever = () => new Promise<never>(() => {});

describe('leases', () => {
  it('fails the job of a dead process with a retryable worker-lost, waking waiters elsewhere', async () => {
    const { clock, node } = cluster();
    const a = node();
    const b = node();
    let aborted: AbortSignal | undefined;
    a.registry.define('render', ({ signal }) => {
      aborted = signal;
      return forever();
    });
    const job = await a.registry.submit('render', null, { idempotencyKey: 'k1' });
    await clock.advanceAsync(0);
    const running = await b.registry.get(job.id);
    expect(running).toMatchObject({ status: 'running' });
    const waiter = b.registry.wait(job.id, { sinceVersion: running!.version, timeoutMs: 600_000 });

    // Alive, it renews: a minute later the job still runs.
    await clock.advanceAsync(60_000);
    expect((await b.registry.get(job.id))?.status).toBe('running');

    a.view.dead = true;
    const killedAt = clock.now();
    await clock.advanceAsync(30_000 + 1000);
    const failed = await waiter;
    expect(failed).toMatchObject({
      status: 'failed',
      error: { code: 'worker-lost', status: 503, retryable: true },
    });
    expect(Date.parse(failed!.finishedAt!) - Date.parse('2026-01-01T00:00:00.000Z')).toBeLessThanOrEqual(
      killedAt + 30_000 + 1000,
    );
    // The same idempotency key now makes a new job instead of replaying the lost one.
    b.registry.define('render', () => 'rendered');
    const again = await b.registry.submit('render', null, { idempotencyKey: 'k1' });
    expect(again.id).not.toBe(job.id);
    await clock.advanceAsync(0);
    expect(await b.registry.get(again.id)).toMatchObject({ status: 'succeeded', result: 'rendered' });
    expect((await b.registry.get(job.id))?.status).toBe('failed');
    // And a repeat of that request replays the new job.
    expect((await b.registry.submit('render', null, { idempotencyKey: 'k1' })).id).toBe(again.id);
    expect(aborted?.aborted ?? false).toBe(false); // the dead process heard nothing; nothing ran there
  });

  it('runs the job again elsewhere when its type allows more attempts', async () => {
    const { clock, node } = cluster({ leaseMs: 3000 });
    const a = node();
    const b = node();
    a.registry.define('encode', () => forever(), { attempts: 2 });
    let runsOnB = 0;
    b.registry.define('encode', ({ input }) => `encoded ${String(input)} on b after ${++runsOnB} run`, {
      attempts: 2,
    });
    const job = await a.registry.submit('encode', 'clip');
    await clock.advanceAsync(0);
    const waiter = b.registry.wait(job.id, { sinceVersion: 2, timeoutMs: 600_000 });
    a.view.dead = true;
    await clock.advanceAsync(5000);
    const seen = await waiter;
    expect(seen?.status === 'queued' || seen?.status === 'succeeded').toBe(true);
    await clock.advanceAsync(0);
    expect(await b.registry.get(job.id)).toMatchObject({
      status: 'succeeded',
      result: 'encoded clip on b after 1 run',
    });
    expect((await b.view.get(job.id))?.attempts).toBe(2);
  });

  it('gives up after the last attempt', async () => {
    const { clock, node } = cluster({ leaseMs: 3000 });
    const a = node();
    const b = node();
    const c = node();
    for (const { registry } of [a, b, c]) registry.define('flaky', () => forever(), { attempts: 2 });
    const job = await a.registry.submit('flaky', null);
    await clock.advanceAsync(0);
    a.view.dead = true;
    await clock.advanceAsync(5000);
    const second = await c.registry.get(job.id);
    expect(second?.status).toBe('running');
    // Whichever of b and c took it dies too.
    b.view.dead = true;
    c.view.dead = true;
    const d = node();
    d.registry.define('flaky', () => 'never runs again', { attempts: 2 });
    await clock.advanceAsync(5000);
    expect(await d.registry.get(job.id)).toMatchObject({ status: 'failed', error: { code: 'worker-lost' } });
  });

  it('never fails its own jobs after an outage longer than the lease: it renews them', async () => {
    const { clock, node } = cluster({ leaseMs: 3000 });
    const a = node();
    a.registry.define('long', () => forever());
    const job = await a.registry.submit('long', null);
    await clock.advanceAsync(0);
    a.view.partitioned = true;
    await clock.advanceAsync(10_000);
    a.view.partitioned = false;
    await clock.advanceAsync(10_000);
    expect((await a.registry.get(job.id))?.status).toBe('running');
  });

  it('holds jobs that external workers start through a registry, and fails them when it dies', async () => {
    const { clock, node } = cluster({ leaseMs: 3000 });
    const worker = node();
    const api = node();
    const job = await api.registry.create('transcode', { url: 'x' });
    await worker.registry.start(job.id);
    await clock.advanceAsync(10_000);
    expect((await api.registry.get(job.id))?.status).toBe('running');
    await worker.registry.progress(job.id, { percent: 50 });
    worker.view.dead = true;
    await clock.advanceAsync(5000);
    expect(await api.registry.get(job.id)).toMatchObject({ status: 'failed', error: { code: 'worker-lost' } });
  });

  it('takes over the queued jobs of a dead process', async () => {
    const { clock, node } = cluster({ leaseMs: 3000, concurrency: 1 });
    const a = node();
    const b = node();
    a.registry.define('step', () => forever());
    b.registry.define('step', ({ input }) => input);
    await a.registry.submit('step', 'first');
    const queued = await a.registry.submit('step', 'second');
    await clock.advanceAsync(0);
    expect((await b.registry.get(queued.id))?.status).toBe('queued');
    a.view.dead = true;
    await clock.advanceAsync(5000);
    expect(await b.registry.get(queued.id)).toMatchObject({ status: 'succeeded', result: 'second' });
  });
});

describe('a stalled holder', () => {
  it('cannot overwrite the outcome of the registry that took its job over', async () => {
    const { clock, node } = cluster({ leaseMs: 3000 });
    const a = node();
    const b = node();
    let finishOnA!: (value: string) => void;
    let finishOnB!: (value: string) => void;
    a.registry.define('work', () => new Promise<string>((resolve) => (finishOnA = resolve)), { attempts: 2 });
    b.registry.define('work', () => new Promise<string>((resolve) => (finishOnB = resolve)), { attempts: 2 });
    const job = await a.registry.submit('work', null);
    await clock.advanceAsync(0);
    // A lives and hears changes, but cannot renew (cut off from the store for writes of that kind).
    a.view.partitioned = true;
    await clock.advanceAsync(5000);
    const taken = await b.view.get(job.id);
    expect(taken?.snapshot.status).toBe('running');
    expect(taken?.attempts).toBe(2);
    // A's handler finishes late: its write is refused; the job is B's.
    finishOnA('from a');
    await clock.advanceAsync(0);
    expect((await b.registry.get(job.id))?.status).toBe('running');
    finishOnB('from b');
    await clock.advanceAsync(0);
    expect(await b.registry.get(job.id)).toMatchObject({ status: 'succeeded', result: 'from b' });
  });
});
