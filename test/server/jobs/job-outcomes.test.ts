/**
 * Every job reaches a final state, and no store outage crashes the process: outcomes the store refuses
 * are retried with backoff until it takes them, and background failures go to `onError`, whose default
 * only logs.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { JobRegistry, type JobRegistryOptions } from '../../../src/server/jobs/job-registry.js';
import type { BackgroundErrorContext } from '../../../src/server/jobs/background-errors.js';
import { DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';
import { OutageStore } from './outage-store.js';

function setup(options: JobRegistryOptions = {}) {
  const clock = new ManualClock();
  let n = 0;
  const store = new OutageStore();
  const purgatory = new DelayedOperationPurgatory({ clock });
  const registry = new JobRegistry({ clock, store, purgatory, generateId: () => `job-${++n}`, ...options });
  return { clock, store, registry };
}

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}

afterEach(() => {
  vi.restoreAllMocks();
});

/** Submits a job whose handler finishes (with `result`) only once the store has gone down. */
async function finishDuringOutage(
  { clock, store, registry }: ReturnType<typeof setup>,
  result: unknown = undefined,
): Promise<string> {
  const release = deferred<unknown>();
  registry.define('render', () => release.promise);
  const job = await registry.submit('render', null);
  await clock.advanceAsync(0);
  store.down = true;
  release.resolve(result);
  await clock.advanceAsync(0);
  return job.id;
}

describe('JobRegistry: outcomes survive a store outage', () => {
  it('keeps a result the store refused and stores it once the store is back, waking waiters', async () => {
    const errors: [unknown, BackgroundErrorContext][] = [];
    const { clock, store, registry } = setup({ onError: (error, context) => errors.push([error, context]) });
    const release = deferred<string>();
    registry.define('render', () => release.promise);
    const job = await registry.submit('render', null);
    await clock.advanceAsync(0);
    const running = await registry.get(job.id);
    expect(running?.status).toBe('running');
    const waiter = registry.wait(job.id, { sinceVersion: running!.version, timeoutMs: 600_000 });

    store.down = true;
    release.resolve('the result');
    await clock.advanceAsync(0);
    expect(errors[0]![1]).toEqual({ operation: 'finish', jobId: job.id, attempt: 1 });
    expect(errors[0]![0]).toMatchObject({ code: 'overloaded' });
    // Still retrying a minute later: the outcome is kept, not dropped.
    await clock.advanceAsync(60_000);
    expect(errors.length).toBeGreaterThan(5);
    expect(errors.every(([, context]) => context.operation === 'finish' && context.jobId === job.id)).toBe(true);

    store.down = false;
    await clock.advanceAsync(5000);
    expect(await waiter).toMatchObject({ status: 'succeeded', result: 'the result' });
    const failures = errors.length;
    await clock.advanceAsync(60_000);
    expect(errors).toHaveLength(failures);
    await registry.onIdle();
  });

  it('logs background failures by default (code and job id) and never throws', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const parts = setup();
    const id = await finishDuringOutage(parts);
    expect(logged).toHaveBeenCalledWith(expect.stringContaining(`finish of job ${id} failed (attempt 1) [overloaded]`));
    parts.store.down = false;
    await parts.clock.advanceAsync(5000);
    expect((await parts.registry.get(id))?.status).toBe('succeeded');
  });

  it('logs an onError that throws instead of passing the throw on', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const parts = setup({
      onError: () => {
        throw new Error('the hook itself failed');
      },
    });
    const id = await finishDuringOutage(parts);
    const lines = logged.mock.calls.map((call) => String(call[0])).join('\n');
    expect(lines).toContain(`finish of job ${id} failed`);
    expect(lines).toContain('the hook itself failed');
    parts.store.down = false;
    await parts.clock.advanceAsync(5000);
    expect((await parts.registry.get(id))?.status).toBe('succeeded');
  });

  it('fails a job whose result the store can never take, saying so', async () => {
    const errors: BackgroundErrorContext[] = [];
    const { clock, store, registry } = setup({ onError: (_error, context) => errors.push(context) });
    const update = store.update.bind(store);
    // A store that serializes (as Redis does) throws a TypeError for a BigInt, on every attempt.
    store.update = (id, transition) =>
      update(id, (current) => {
        const next = transition(current);
        if (typeof next.snapshot.result === 'bigint') throw new TypeError('Do not know how to serialize a BigInt');
        return next;
      });
    registry.define('big', () => 10n);
    const job = await registry.submit('big', null);
    await clock.advanceAsync(0);
    expect(await registry.get(job.id)).toMatchObject({
      status: 'failed',
      error: { code: 'job-failed', detail: expect.stringContaining('could not be stored') },
    });
    expect(errors).toEqual([{ operation: 'finish', jobId: job.id, attempt: 1 }]);
  });

  it('reports failed progress flushes and keeps running', async () => {
    const errors: BackgroundErrorContext[] = [];
    const { clock, store, registry } = setup({ onError: (_error, context) => errors.push(context) });
    const release = deferred();
    let report!: (percent: number) => void;
    registry.define('work', ({ reportProgress }) => {
      report = (percent) => reportProgress({ percent });
      return release.promise;
    });
    const job = await registry.submit('work', null);
    await clock.advanceAsync(0);
    store.down = true;
    report(10);
    await clock.advanceAsync(0);
    expect(errors).toEqual([{ operation: 'progress', jobId: job.id }]);
    store.down = false;
    await clock.advanceAsync(1000);
    report(20);
    await clock.advanceAsync(0);
    expect((await registry.get(job.id))?.progress).toEqual({ percent: 20 });
    release.resolve();
    await clock.advanceAsync(0);
    expect((await registry.get(job.id))?.status).toBe('succeeded');
  });

  it('gives a pending outcome one last attempt on close', async () => {
    const parts = setup({ onError: () => undefined });
    const id = await finishDuringOutage(parts);
    parts.store.down = false;
    // The backoff has not run out yet; close() does not wait for it.
    await parts.registry.close();
    expect(await parts.store.get(id)).toMatchObject({ snapshot: { status: 'succeeded' } });
  });
});

describe('JobRegistry: the retention sweep keeps pace', () => {
  it('holds at most 2 × rate × (retention + sweep interval) jobs at 3,000 finished jobs a second', async () => {
    const clock = new ManualClock();
    const store = new OutageStore();
    let n = 0;
    const registry = new JobRegistry({
      clock,
      store,
      retentionMs: 1000,
      sweepIntervalMs: 1000,
      generateId: () => `job-${++n}`,
    });
    const perTick = 60; // every 20 ms: 3,000 a second
    const bound = 2 * 3000 * (1 + 1);
    let largest = 0;
    for (let tick = 0; tick < 750; tick++) {
      await Promise.all(
        Array.from({ length: perTick }, async () => {
          const job = await registry.create('t', null);
          await registry.start(job.id);
          await registry.succeed(job.id, null);
        }),
      );
      await clock.advanceAsync(20);
      largest = Math.max(largest, store.size);
    }
    // 15 simulated seconds, 45,000 jobs: the old sweep (1,000 per interval) held ~32,000 here.
    expect(n).toBe(45_000);
    expect(largest).toBeLessThanOrEqual(bound);
    await clock.advanceAsync(3000);
    expect(store.size).toBe(0);
    await registry.close();
  });
});
