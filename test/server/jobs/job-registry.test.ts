import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import {
  IllegalTransitionError,
  InvalidArgumentError,
  OverloadedError,
  PollkitError,
} from '../../../src/core/errors.js';
import type { JobSnapshot } from '../../../src/core/protocol.js';
import { JobRegistry, type JobRegistryOptions } from '../../../src/server/jobs/job-registry.js';
import type { JobContext } from '../../../src/server/jobs/job-runner.js';
import { DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';
import type { JobChange } from '../../../src/server/jobs/stores/job-store.js';
import { MemoryJobStore } from '../../../src/server/jobs/stores/memory-job-store.js';

function setup(options: JobRegistryOptions = {}) {
  const clock = new ManualClock();
  let n = 0;
  const store = new MemoryJobStore();
  const purgatory = new DelayedOperationPurgatory({ clock });
  const registry = new JobRegistry({
    clock,
    store,
    purgatory,
    generateId: () => `job-${++n}`,
    ...options,
  });
  const flush = (): Promise<void> => clock.advanceAsync(0);
  return { clock, store, purgatory, registry, flush };
}

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function expectInvariants(job: JobSnapshot): void {
  expect(job.done).toBe(['succeeded', 'failed', 'canceled'].includes(job.status));
  if (job.status === 'succeeded') expect(job.error).toBeNull();
  if (job.status === 'failed' || job.status === 'canceled') {
    expect(job.error).not.toBeNull();
    expect(job.result).toBeNull();
  }
  if (!job.done) {
    expect(job.result).toBeNull();
    expect(job.error).toBeNull();
    expect(job.finishedAt).toBeNull();
    expect(job.expiresAt).toBeNull();
  } else {
    expect(job.finishedAt).not.toBeNull();
  }
  if (job.status === 'canceled') expect(job.error?.code).toBe('canceled');
}

describe('JobRegistry: external workers and the state machine', () => {
  it('walks queued → running → succeeded, raising the version by one per change', async () => {
    const { registry, clock } = setup({ retentionMs: 60_000 });
    const created = await registry.create('render', { frames: 3 });
    expect(created).toMatchObject({ id: 'job-1', type: 'render', status: 'queued', done: false, version: 1 });
    expect(created.createdAt).toBe('2026-01-01T00:00:00.000Z');
    expectInvariants(created);
    clock.advance(10);
    const started = await registry.start(created.id);
    expect(started).toMatchObject({ status: 'running', version: 2, startedAt: '2026-01-01T00:00:00.010Z' });
    const progressed = await registry.progress(created.id, { percent: 50, message: 'half' });
    expect(progressed).toMatchObject({ status: 'running', version: 3, progress: { percent: 50, message: 'half' } });
    clock.advance(1000);
    const done = await registry.succeed(created.id, { url: '/out' });
    expect(done).toMatchObject({
      status: 'succeeded',
      done: true,
      version: 4,
      result: { url: '/out' },
      error: null,
      finishedAt: '2026-01-01T00:00:01.010Z',
      expiresAt: '2026-01-01T00:01:01.010Z',
    });
    expectInvariants(done);
  });

  it('fails from queued and from running with a serializable problem', async () => {
    const { registry } = setup();
    const a = await registry.create('t', 1);
    const failedQueued = await registry.fail(a.id, new Error('no worker'));
    expect(failedQueued).toMatchObject({
      status: 'failed',
      version: 2,
      error: { code: 'job-failed', detail: 'no worker' },
    });
    expect(failedQueued.error).not.toHaveProperty('stack');
    expect(JSON.parse(JSON.stringify(failedQueued))).toEqual(failedQueued);
    const b = await registry.create('t', 1);
    await registry.start(b.id);
    const failedRunning = await registry.fail(b.id, { code: 'video-too-long', message: 'too long' });
    expect(failedRunning.error).toMatchObject({ code: 'video-too-long', status: 500, detail: 'too long' });
    expectInvariants(failedRunning);
  });

  it('rejects every illegal transition with IllegalTransitionError and changes nothing', async () => {
    const { registry } = setup();
    const queued = await registry.create('t', null);
    await expect(registry.succeed(queued.id, 1)).rejects.toSatisfy(IllegalTransitionError.is);
    await expect(registry.progress(queued.id, { percent: 1 })).rejects.toSatisfy(IllegalTransitionError.is);
    expect((await registry.get(queued.id))?.version).toBe(1);

    const running = await registry.create('t', null);
    await registry.start(running.id);
    await expect(registry.start(running.id)).rejects.toSatisfy(IllegalTransitionError.is);

    const canceled = await registry.create('t', null);
    await registry.start(canceled.id);
    await registry.cancel(canceled.id);
    for (const attempt of [
      () => registry.succeed(canceled.id, 1),
      () => registry.fail(canceled.id, new Error('x')),
      () => registry.progress(canceled.id, { percent: 2 }),
      () => registry.start(canceled.id),
    ]) {
      await expect(attempt()).rejects.toSatisfy(IllegalTransitionError.is);
    }
    expect(await registry.get(canceled.id)).toMatchObject({ status: 'canceled', version: 3 });

    const succeeded = await registry.create('t', null);
    await registry.start(succeeded.id);
    await registry.succeed(succeeded.id, 'r');
    await expect(registry.fail(succeeded.id, new Error('late'))).rejects.toSatisfy(IllegalTransitionError.is);
    await expect(registry.succeed(succeeded.id, 'again')).rejects.toSatisfy(IllegalTransitionError.is);
    expect(await registry.get(succeeded.id)).toMatchObject({ status: 'succeeded', version: 3, result: 'r' });
  });

  it('lets exactly one of two racing workers succeed a job', async () => {
    const { registry } = setup();
    const job = await registry.create('t', null);
    await registry.start(job.id);
    const results = await Promise.allSettled([registry.succeed(job.id, 'a'), registry.succeed(job.id, 'b')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected' && IllegalTransitionError.is(r.reason))).toHaveLength(1);
    expect((await registry.get(job.id))?.version).toBe(3);
  });

  it('answers unknown ids with job-not-found or undefined', async () => {
    const { registry } = setup();
    await expect(registry.start('nope')).rejects.toMatchObject({ code: 'job-not-found' });
    expect(await registry.get('nope')).toBeUndefined();
    expect(await registry.cancel('nope')).toBeUndefined();
    expect(await registry.forget('nope')).toBe(false);
    expect(await registry.wait('nope', { timeoutMs: 10 })).toBeUndefined();
  });

  it('validates progress reports and type names', async () => {
    const { registry } = setup();
    const job = await registry.create('t', null);
    await registry.start(job.id);
    await expect(registry.progress(job.id, { percent: 101 })).rejects.toSatisfy(InvalidArgumentError.is);
    await expect(registry.create('bad type!', null)).rejects.toSatisfy(InvalidArgumentError.is);
    expect(() => registry.define('x', () => 1).define('x', () => 2)).toThrow(InvalidArgumentError);
  });

  it('validates its options at construction', () => {
    expect(() => new JobRegistry({ concurrency: 0 })).toThrow(InvalidArgumentError);
    expect(() => new JobRegistry({ maxQueued: -1 })).toThrow(InvalidArgumentError);
    expect(() => new JobRegistry({ retentionMs: Number.NaN })).toThrow(InvalidArgumentError);
    expect(() => new JobRegistry({ progressIntervalMs: Infinity })).toThrow(InvalidArgumentError);
    expect(() => new JobRegistry({ defaultTimeoutMs: 0 })).toThrow(InvalidArgumentError);
    expect(() => new JobRegistry().define('t', () => 1, { timeoutMs: -1 })).toThrow(InvalidArgumentError);
    expect(() => new JobRegistry({ onError: 'log' as unknown as () => void })).toThrow(InvalidArgumentError);
  });
});

describe('JobRegistry: types accepted for workers elsewhere', () => {
  it('stores a submit of an accepted type as queued for external workers, validating its input', async () => {
    const { registry, store, flush } = setup();
    registry.accept('render', {
      validate: (input) => {
        if (typeof input !== 'number') throw new TypeError('frames must be a number');
        return input * 2;
      },
    });
    const job = await registry.submit('render', 21, { owner: 'alice' });
    await flush();
    expect(job).toMatchObject({ type: 'render', status: 'queued', version: 1 });
    expect(await store.get(job.id)).toMatchObject({ runner: 'external', input: 42, owner: 'alice' });
    expect(registry.stats()).toMatchObject({ running: 0, queued: 0 });
    await expect(registry.submit('render', 'x')).rejects.toMatchObject({ code: 'invalid-input' });
    await registry.start(job.id);
    expect((await registry.succeed(job.id, 'ok')).status).toBe('succeeded');
  });

  it('keeps defined and accepted types apart and still refuses unknown ones', async () => {
    const { registry } = setup();
    registry.define('echo', ({ input }) => input).accept('render');
    expect(() => registry.accept('echo')).toThrow(InvalidArgumentError);
    expect(() => registry.accept('render')).toThrow(InvalidArgumentError);
    expect(() => registry.define('render', () => 1)).toThrow(InvalidArgumentError);
    expect(() => registry.accept('no spaces')).toThrow(InvalidArgumentError);
    expect(() => registry.accept('x', { validate: 1 as never })).toThrow(InvalidArgumentError);
    await expect(registry.submit('other', 1)).rejects.toMatchObject({ code: 'unknown-job-type' });
  });
});

describe('JobRegistry: handlers', () => {
  it('returns the queued handle at once and runs the handler with its context', async () => {
    const { registry, flush } = setup();
    const seen: JobContext<number>[] = [];
    registry.define<number, number>(
      'double',
      (context) => {
        seen.push(context);
        return context.input * 2;
      },
      {
        validate: (input) => {
          if (typeof input !== 'number') throw new TypeError('need a number');
          return input;
        },
      },
    );
    const handle = await registry.submit('double', 21);
    expect(handle).toMatchObject({ status: 'queued', version: 1 });
    await flush();
    expect(seen[0]).toMatchObject({ id: handle.id, type: 'double', input: 21 });
    expect(seen[0]?.signal.aborted).toBe(false);
    expect(await registry.get(handle.id)).toMatchObject({ status: 'succeeded', result: 42, version: 3 });
  });

  it('rejects unknown types and invalid input before storing anything', async () => {
    const { registry, store } = setup();
    registry.define('strict', () => 1, {
      validate: () => {
        throw new Error('field "x" is required');
      },
    });
    await expect(registry.submit('nope', {})).rejects.toMatchObject({ code: 'unknown-job-type' });
    await expect(registry.submit('strict', {})).rejects.toMatchObject({
      code: 'invalid-input',
      message: 'field "x" is required',
    });
    expect(store.size).toBe(0);
  });

  it('ends a synchronous throw, a rejection and a thrown non-error in failed', async () => {
    const { registry, flush } = setup();
    registry.define('sync', () => {
      throw new Error('sync boom');
    });
    registry.define('async', async () => {
      throw Object.assign(new Error('quota'), { code: 'quota-exceeded' });
    });
    registry.define('weird', () => {
      throw 'a string';
    });
    const a = await registry.submit('sync', null);
    const b = await registry.submit('async', null);
    const c = await registry.submit('weird', null);
    await flush();
    expect(await registry.get(a.id)).toMatchObject({
      status: 'failed',
      error: { code: 'job-failed', detail: 'sync boom' },
    });
    expect(await registry.get(b.id)).toMatchObject({ status: 'failed', error: { code: 'quota-exceeded' } });
    expect(await registry.get(c.id)).toMatchObject({
      status: 'failed',
      error: { code: 'job-failed', detail: 'a string' },
    });
    expect((await registry.get(a.id))?.error).not.toHaveProperty('stack');
  });

  it('includes stack traces only when configured', async () => {
    const { registry, flush } = setup({ exposeStackTraces: true });
    registry.define('boom', () => {
      throw new Error('boom');
    });
    const job = await registry.submit('boom', null);
    await flush();
    expect((await registry.get(job.id))?.error?.['stack']).toMatch(/boom/);
  });

  it('fails a handler that never settles with job-timeout, aborts its signal and frees its slot', async () => {
    const { registry, clock, flush } = setup({ concurrency: 1, defaultTimeoutMs: 5000, retentionMs: Infinity });
    let signal: AbortSignal | undefined;
    registry.define('hang', (context) => {
      signal = context.signal;
      return new Promise(() => {});
    });
    registry.define('quick', () => 'ok', { timeoutMs: 100 });
    const hung = await registry.submit('hang', null);
    const next = await registry.submit('quick', null);
    await flush();
    expect(registry.stats()).toMatchObject({ running: 1, queued: 1 });
    await clock.advanceAsync(4999);
    expect((await registry.get(hung.id))?.status).toBe('running');
    await clock.advanceAsync(1);
    expect(await registry.get(hung.id)).toMatchObject({
      status: 'failed',
      error: { code: 'job-timeout', status: 504 },
    });
    expect(signal?.aborted).toBe(true);
    expect(await registry.get(next.id)).toMatchObject({ status: 'succeeded', result: 'ok' });
    // Idle again: once the check for lapsed leases the start planned has run, no timer is left.
    await clock.advanceAsync(30_000);
    expect(clock.pendingTimers).toBe(0);
  });

  it('cancels a queued job before it runs and a running job by aborting its signal', async () => {
    const { registry, flush } = setup({ concurrency: 1 });
    const gate = deferred<string>();
    let runs = 0;
    let signal: AbortSignal | undefined;
    registry.define('slow', (context) => {
      runs++;
      signal = context.signal;
      return gate.promise;
    });
    const running = await registry.submit('slow', null);
    const queued = await registry.submit('slow', null);
    await flush();
    const canceledQueued = await registry.cancel(queued.id);
    expect(canceledQueued).toMatchObject({ status: 'canceled', version: 2, error: { code: 'canceled' } });
    const canceledRunning = await registry.cancel(running.id);
    expect(canceledRunning).toMatchObject({ status: 'canceled', version: 3 });
    expect(signal?.aborted).toBe(true);
    gate.resolve('too late');
    await flush();
    expect(runs).toBe(1);
    expect(await registry.get(running.id)).toMatchObject({ status: 'canceled', result: null, version: 3 });
    expect(await registry.cancel(running.id)).toMatchObject({ status: 'canceled', version: 3 });
    expect(registry.stats()).toMatchObject({ running: 0, queued: 0 });
  });

  it('gives a handler that first reads its signal after a cancel an already aborted signal', async () => {
    const { registry, flush } = setup();
    const gate = deferred();
    let context: JobContext | undefined;
    registry.define('lazy', async (received) => {
      context = received;
      await gate.promise;
    });
    const job = await registry.submit('lazy', null);
    await flush();
    await registry.cancel(job.id);
    expect(context?.signal.aborted).toBe(true);
    expect(context?.signal.reason).toMatchObject({ code: 'aborted' });
    gate.resolve();
  });

  it('emits typed events in order', async () => {
    const { registry, flush } = setup();
    const events: string[] = [];
    for (const name of ['submitted', 'started', 'progress', 'settled'] as const) {
      registry.on(name, (job: JobSnapshot) => events.push(`${name}:${job.version}`));
    }
    registry.on('forgotten', (id, reason) => events.push(`forgotten:${id}:${reason}`));
    registry.define('p', ({ reportProgress }) => {
      reportProgress({ percent: 10 });
      return 1;
    });
    const job = await registry.submit('p', null);
    await flush();
    await registry.forget(job.id);
    expect(events).toEqual(['submitted:1', 'started:2', 'progress:3', 'settled:4', 'forgotten:job-1:forgotten']);
  });
});

describe('JobRegistry: progress coalescing', () => {
  it('stores a storm of 100k reports as one leading and one trailing change, the last value winning', async () => {
    const { registry, clock, flush } = setup({ progressIntervalMs: 100 });
    const gate = deferred();
    const progressEvents: JobSnapshot[] = [];
    registry.on('progress', (job) => progressEvents.push(job));
    registry.define('storm', async ({ reportProgress }) => {
      for (let i = 1; i <= 100_000; i++) reportProgress({ percent: (i / 100_000) * 100, data: { i } });
      await gate.promise;
      return 'done';
    });
    const job = await registry.submit('storm', null);
    await flush();
    const waiter = registry.wait(job.id, { sinceVersion: 3, timeoutMs: 10_000 });
    expect((await registry.get(job.id))?.version).toBe(3); // started (2) + leading report (3)
    expect((await registry.get(job.id))?.progress).toEqual({ percent: 0.001, data: { i: 1 } });
    await clock.advanceAsync(99);
    expect((await registry.get(job.id))?.version).toBe(3);
    await clock.advanceAsync(1);
    const woken = await waiter;
    expect(woken).toMatchObject({ version: 4, progress: { percent: 100, data: { i: 100_000 } } });
    expect(progressEvents.map((e) => e.version)).toEqual([3, 4]);
    gate.resolve();
    await flush();
    expect(await registry.get(job.id)).toMatchObject({ status: 'succeeded', version: 5 });
  });

  it('folds a report still pending at the end into the terminal version', async () => {
    const { registry, flush } = setup({ progressIntervalMs: 1000 });
    registry.define('two', ({ reportProgress }) => {
      reportProgress({ percent: 1 });
      reportProgress({ percent: 99, message: 'last' });
      return 'r';
    });
    const job = await registry.submit('two', null);
    await flush();
    expect(await registry.get(job.id)).toMatchObject({
      status: 'succeeded',
      version: 4,
      progress: { percent: 99, message: 'last' },
    });
  });

  it('ignores reports after the job finished', async () => {
    const { registry, flush } = setup();
    let report: JobContext['reportProgress'] | undefined;
    registry.define('leaky', (context) => {
      report = context.reportProgress;
      return 1;
    });
    const job = await registry.submit('leaky', null);
    await flush();
    report?.({ percent: 50 });
    await flush();
    expect((await registry.get(job.id))?.version).toBe(3);
  });
});

describe('JobRegistry: wait', () => {
  it('answers at once without sinceVersion or when the version already differs', async () => {
    const { registry } = setup();
    const job = await registry.create('t', null);
    expect(await registry.wait(job.id, { timeoutMs: 1000 })).toMatchObject({ version: 1 });
    expect(await registry.wait(job.id, { sinceVersion: 0, timeoutMs: 1000 })).toMatchObject({ version: 1 });
    expect(await registry.wait(job.id, { sinceVersion: 1, timeoutMs: 0 })).toMatchObject({ version: 1 });
  });

  it('resolves as soon as the version moves', async () => {
    const { registry, purgatory } = setup();
    const job = await registry.create('t', null);
    const waiting = registry.wait(job.id, { sinceVersion: 1, timeoutMs: 30_000 });
    await Promise.resolve();
    await registry.start(job.id);
    expect(await waiting).toMatchObject({ status: 'running', version: 2 });
    expect(purgatory.watched()).toBe(0);
  });

  it('resolves with the unchanged snapshot at timeout, using no timer of its own', async () => {
    const { registry, clock, flush } = setup();
    const job = await registry.create('t', null);
    const results: (JobSnapshot | undefined)[] = [];
    for (let i = 0; i < 100; i++) {
      void registry.wait(job.id, { sinceVersion: 1, timeoutMs: 5000 }).then((r) => results.push(r));
    }
    await flush();
    expect(clock.pendingTimers).toBeLessThanOrEqual(1); // the timing wheel's single driving timer
    await clock.advanceAsync(4999);
    expect(results).toHaveLength(0);
    await clock.advanceAsync(1);
    expect(results).toHaveLength(100);
    expect(results.every((r) => r?.version === 1)).toBe(true);
  });

  it('rejects with the signal reason on abort and leaves nothing behind', async () => {
    const { registry, purgatory, flush } = setup();
    const job = await registry.create('t', null);
    const controller = new AbortController();
    const waiting = registry.wait(job.id, { sinceVersion: 1, timeoutMs: 30_000, signal: controller.signal });
    await flush();
    expect(purgatory.watched()).toBe(1);
    const reason = new Error('client went away');
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    expect(purgatory.watched()).toBe(0);
    expect(registry.stats().waiting).toBe(0);
  });

  it('resolves with the canceled snapshot when the job is canceled', async () => {
    const { registry, flush } = setup();
    const job = await registry.create('t', null);
    const waiting = registry.wait(job.id, { sinceVersion: 1, timeoutMs: 30_000 });
    await flush();
    await registry.cancel(job.id);
    expect(await waiting).toMatchObject({ status: 'canceled', version: 2 });
  });

  it('resolves with undefined when the job is forgotten or belongs to someone else', async () => {
    const { registry, flush } = setup();
    const job = await registry.create('t', null, { owner: 'alice' });
    expect(await registry.wait(job.id, { owner: 'bob', timeoutMs: 10 })).toBeUndefined();
    await registry.cancel(job.id);
    const waiting = registry.wait(job.id, { owner: 'alice', sinceVersion: 2, timeoutMs: 30_000 });
    await flush();
    await registry.forget(job.id, { owner: 'alice' });
    expect(await waiting).toBeUndefined();
  });

  it('settles every waiter with the current state when the registry closes', async () => {
    const { registry, flush, purgatory } = setup();
    const job = await registry.create('t', null);
    const waiters = Array.from({ length: 10 }, () => registry.wait(job.id, { sinceVersion: 1, timeoutMs: 30_000 }));
    await flush();
    await registry.close();
    const results = await Promise.all(waiters);
    expect(results.every((r) => r?.version === 1 && r.status === 'queued')).toBe(true);
    expect(purgatory.watched()).toBe(0);
    expect(await registry.wait(job.id, { sinceVersion: 1, timeoutMs: 30_000 })).toMatchObject({ version: 1 });
  });

  it('releases 10,000 waiters on one job with one change', async () => {
    const { registry, purgatory, flush } = setup();
    const job = await registry.create('t', null);
    const waiters = Array.from({ length: 10_000 }, () => registry.wait(job.id, { sinceVersion: 1, timeoutMs: 30_000 }));
    await flush();
    expect(purgatory.watched()).toBe(10_000);
    await registry.start(job.id);
    const results = await Promise.all(waiters);
    expect(results.every((r) => r?.version === 2)).toBe(true);
    expect(purgatory.watched()).toBe(0);
    expect(registry.stats().waiting).toBe(0);
  });

  it('re-reads the store after a bare change notification and keeps holding if nothing moved', async () => {
    // What a cross-process store (Redis pub/sub) may send: "this key changed", without the new state.
    class BareStore extends MemoryJobStore {
      readonly #listeners = new Set<(change: JobChange) => void>();
      override onChange(listener: (change: JobChange) => void): () => void {
        this.#listeners.add(listener);
        const off = super.onChange(({ id, version, deleted }) =>
          listener(deleted === true ? { id, version, deleted } : { id, version }),
        );
        return () => {
          this.#listeners.delete(listener);
          off();
        };
      }
      poke(id: string, version: number): void {
        for (const listener of this.#listeners) listener({ id, version });
      }
    }
    const store = new BareStore();
    const { registry, purgatory, flush } = setup({ store });
    const job = await registry.create('t', null);
    const waiting = registry.wait(job.id, { sinceVersion: 1, timeoutMs: 30_000 });
    await flush();
    store.poke(job.id, 1);
    await flush();
    expect(purgatory.watched()).toBe(1);
    await registry.start(job.id);
    expect(await waiting).toMatchObject({ status: 'running', version: 2 });
    expect(purgatory.watched()).toBe(0);
  });

  it('holds a wait on the in-memory store at once, and reads through a replaced get when there is one', async () => {
    const { registry, store, purgatory } = setup();
    const job = await registry.create('t', null);
    const first = registry.wait(job.id, { sinceVersion: 1, timeoutMs: 30_000 });
    // No store read to wait for: the wait is in the purgatory before the call returns.
    expect(purgatory.watched()).toBe(1);
    const get = store.get.bind(store);
    let reads = 0;
    store.get = (id) => {
      reads++;
      return get(id);
    };
    const other = await registry.create('t', null);
    const second = registry.wait(other.id, { sinceVersion: 1, timeoutMs: 30_000 });
    expect(purgatory.watched()).toBe(1);
    await Promise.resolve();
    expect(reads).toBe(1);
    await registry.start(job.id);
    await registry.start(other.id);
    expect(await first).toMatchObject({ status: 'running', version: 2 });
    expect(await second).toMatchObject({ status: 'running', version: 2 });
  });

  it('makes waiters that arrive together share one store read', async () => {
    const { registry, store, flush } = setup();
    const job = await registry.create('t', null);
    const get = store.get.bind(store);
    let reads = 0;
    store.get = (id) => {
      reads++;
      return get(id);
    };
    const waiters = Array.from({ length: 100 }, () => registry.wait(job.id, { sinceVersion: 1, timeoutMs: 30_000 }));
    await flush();
    expect(reads).toBe(1);
    await registry.start(job.id);
    expect((await Promise.all(waiters)).every((w) => w?.version === 2)).toBe(true);
  });

  it('lets a later waiter start from the hint of earlier ones without reading the store', async () => {
    const { registry, store, flush } = setup();
    const job = await registry.create('t', null, { owner: 'alice' });
    const first = registry.wait(job.id, { sinceVersion: 1, timeoutMs: 30_000 });
    await flush();
    const get = store.get.bind(store);
    let reads = 0;
    store.get = (id) => {
      reads++;
      return get(id);
    };
    const second = registry.wait(job.id, { sinceVersion: 1, timeoutMs: 30_000, owner: 'alice' });
    expect(await registry.wait(job.id, { sinceVersion: 1, timeoutMs: 30_000, owner: 'bob' })).toBeUndefined();
    expect(reads).toBe(0);
    await registry.start(job.id);
    expect(await Promise.all([first, second])).toMatchObject([{ version: 2 }, { version: 2 }]);
    // A caller that is behind gets the hinted state at once.
    const third = registry.wait(job.id, { sinceVersion: 1, timeoutMs: 30_000 });
    expect(await third).toMatchObject({ version: 2 });
  });

  it('validates its arguments', async () => {
    const { registry } = setup();
    await expect(registry.wait('x', { timeoutMs: -1 })).rejects.toSatisfy(InvalidArgumentError.is);
    await expect(registry.wait('x', { timeoutMs: 10, sinceVersion: 1.5 })).rejects.toSatisfy(InvalidArgumentError.is);
  });
});

describe('JobRegistry: changes()', () => {
  it('yields each newer state and ends after the terminal one', async () => {
    const { registry, flush } = setup();
    const job = await registry.create('t', null);
    const seen: string[] = [];
    const consumer = (async () => {
      for await (const state of registry.changes(job.id)) seen.push(`${state.version}:${state.status}`);
    })();
    await flush();
    await registry.start(job.id);
    await flush();
    await registry.progress(job.id, { percent: 50 });
    await flush();
    await registry.succeed(job.id, 1);
    await consumer;
    expect(seen).toEqual(['1:queued', '2:running', '3:running', '4:succeeded']);
  });

  it('ends at once for a finished job whose version the caller has, and for an unknown job', async () => {
    const { registry } = setup();
    const job = await registry.create('t', null);
    await registry.cancel(job.id);
    const seen: JobSnapshot[] = [];
    for await (const state of registry.changes(job.id, { sinceVersion: 2 })) seen.push(state);
    for await (const state of registry.changes('nope')) seen.push(state);
    expect(seen).toEqual([]);
  });
});

describe('JobRegistry: limits', () => {
  it('runs at most `concurrency` handlers, queues up to `maxQueued`, then rejects with OverloadedError', async () => {
    const { registry, flush } = setup({ concurrency: 2, maxQueued: 3, retryAfterSeconds: 2 });
    const gates: ReturnType<typeof deferred<number>>[] = [];
    const order: number[] = [];
    registry.define<number, number>('gated', ({ input }) => {
      order.push(input);
      const gate = deferred<number>();
      gates.push(gate);
      return gate.promise;
    });
    const jobs = [];
    for (let i = 0; i < 5; i++) jobs.push(await registry.submit('gated', i));
    await flush();
    expect(registry.stats()).toMatchObject({ running: 2, queued: 3 });
    const rejection = await registry.submit('gated', 99).catch((error: unknown) => error);
    expect(OverloadedError.is(rejection)).toBe(true);
    expect(rejection).toMatchObject({ retryable: true, retryAfterMs: 2000 });
    gates[0]?.resolve(0);
    await flush();
    expect(registry.stats()).toMatchObject({ running: 2, queued: 2 });
    for (let i = 1; i < 5; i++) {
      gates[i]?.resolve(i);
      await flush();
    }
    await registry.onIdle();
    expect(order).toEqual([0, 1, 2, 3, 4]);
    for (const job of jobs) expect((await registry.get(job.id))?.status).toBe('succeeded');
  });

  it('does not count external jobs against the queue', async () => {
    const { registry } = setup({ concurrency: 1, maxQueued: 0 });
    for (let i = 0; i < 5; i++) await registry.create('ext', i);
    expect(registry.stats().queued).toBe(0);
  });

  it('rejects submits after close with shutting-down and fails in-process work', async () => {
    const { registry, flush } = setup({ concurrency: 1 });
    let signal: AbortSignal | undefined;
    registry.define('hang', (context) => {
      signal = context.signal;
      return new Promise(() => {});
    });
    const running = await registry.submit('hang', null);
    const queued = await registry.submit('hang', null);
    const external = await registry.create('ext', null);
    await flush();
    await registry.close();
    expect(signal?.aborted).toBe(true);
    expect(await registry.get(running.id)).toMatchObject({ status: 'failed', error: { code: 'shutting-down' } });
    expect(await registry.get(queued.id)).toMatchObject({ status: 'failed', error: { code: 'shutting-down' } });
    expect(await registry.get(external.id)).toMatchObject({ status: 'queued' });
    await expect(registry.submit('hang', null)).rejects.toMatchObject({ code: 'shutting-down', retryable: true });
  });
});

describe('JobRegistry: idempotency', () => {
  it('returns the same job for the same key and input, in any key order', async () => {
    const { registry, store } = setup();
    registry.define('echo', ({ input }) => input);
    const a = await registry.submit('echo', { x: 1, y: [1, 2] }, { idempotencyKey: 'k' });
    const b = await registry.submit('echo', { y: [1, 2], x: 1 }, { idempotencyKey: 'k' });
    expect(b.id).toBe(a.id);
    expect(store.size).toBe(1);
  });

  it('rejects the same key with a different input or type with idempotency-key-reused', async () => {
    const { registry } = setup();
    registry.define('echo', ({ input }) => input);
    registry.define('other', ({ input }) => input);
    await registry.submit('echo', { x: 1 }, { idempotencyKey: 'k' });
    await expect(registry.submit('echo', { x: 2 }, { idempotencyKey: 'k' })).rejects.toMatchObject({
      code: 'idempotency-key-reused',
    });
    await expect(registry.submit('other', { x: 1 }, { idempotencyKey: 'k' })).rejects.toMatchObject({
      code: 'idempotency-key-reused',
    });
  });

  it('scopes keys per owner and makes concurrent duplicates one job', async () => {
    const { registry, store } = setup();
    registry.define('echo', ({ input }) => input);
    const [a, b, c] = await Promise.all([
      registry.submit('echo', 1, { idempotencyKey: 'k', owner: 'alice' }),
      registry.submit('echo', 1, { idempotencyKey: 'k', owner: 'alice' }),
      registry.submit('echo', 1, { idempotencyKey: 'k', owner: 'bob' }),
    ]);
    expect(a.id).toBe(b.id);
    expect(c.id).not.toBe(a.id);
    expect(store.size).toBe(2);
  });

  it('releases a key when its job is forgotten', async () => {
    const { registry, flush } = setup();
    registry.define('echo', ({ input }) => input);
    const a = await registry.submit('echo', 1, { idempotencyKey: 'k' });
    await flush();
    await registry.forget(a.id);
    const b = await registry.submit('echo', 2, { idempotencyKey: 'k' });
    expect(b.id).not.toBe(a.id);
  });
});

describe('JobRegistry: retention, forget and list', () => {
  it('removes finished jobs after retentionMs with one timer, not a scan', async () => {
    const { registry, clock, store, flush } = setup({ retentionMs: 10_000, sweepIntervalMs: 1000 });
    const expired: string[] = [];
    registry.on('forgotten', (id, reason) => expired.push(`${id}:${reason}`));
    const a = await registry.create('t', null);
    await registry.cancel(a.id);
    clock.advance(3000);
    const b = await registry.create('t', null);
    await registry.cancel(b.id);
    const c = await registry.create('t', null); // never finishes: never expires
    expect((await registry.get(a.id))?.expiresAt).toBe('2026-01-01T00:00:10.000Z');
    await clock.advanceAsync(6999);
    expect(expired).toEqual([]);
    await clock.advanceAsync(1);
    await flush();
    expect(expired).toEqual(['job-1:expired']);
    expect(await registry.get(a.id)).toBeUndefined();
    await clock.advanceAsync(3000);
    await flush();
    expect(expired).toEqual(['job-1:expired', 'job-2:expired']);
    expect(store.size).toBe(1);
    expect(await registry.get(c.id)).toMatchObject({ status: 'queued' });
    expect(clock.pendingTimers).toBe(0);
  });

  it('reports a failing sweep to onError and retries it at the next interval', async () => {
    const errors: unknown[] = [];
    const store = new MemoryJobStore();
    const sweep = store.sweep.bind(store);
    let failures = 1;
    store.sweep = (now, limit) => (failures-- > 0 ? Promise.reject(new Error('store down')) : sweep(now, limit));
    const { registry, clock, flush } = setup({
      store,
      retentionMs: 1000,
      sweepIntervalMs: 500,
      onError: (error) => errors.push(error),
    });
    const job = await registry.create('t', null);
    await registry.cancel(job.id);
    await clock.advanceAsync(1000);
    await flush();
    expect(errors).toMatchObject([{ message: 'store down' }]);
    expect(store.size).toBe(1);
    await clock.advanceAsync(500);
    await flush();
    expect(store.size).toBe(0);
  });

  it('hides an expired job even before the sweep runs', async () => {
    const { registry, clock } = setup({ retentionMs: 1000, sweepIntervalMs: 60_000 });
    const a = await registry.create('t', null);
    await registry.cancel(a.id);
    clock.advance(1000); // synchronous: the sweep's promise work has not run
    expect(await registry.get(a.id)).toBeUndefined();
    expect((await registry.list()).jobs).toEqual([]);
  });

  it('forgets finished jobs only', async () => {
    const { registry } = setup();
    const job = await registry.create('t', null, { owner: 'alice' });
    await expect(registry.forget(job.id)).rejects.toMatchObject({ code: 'job-not-finished' });
    await registry.start(job.id);
    await expect(registry.forget(job.id)).rejects.toSatisfy((e: unknown) => PollkitError.is(e));
    await registry.succeed(job.id, 1);
    expect(await registry.forget(job.id, { owner: 'bob' })).toBe(false);
    expect(await registry.forget(job.id, { owner: 'alice' })).toBe(true);
    expect(await registry.get(job.id)).toBeUndefined();
    expect(await registry.forget(job.id)).toBe(false);
  });

  it('lists newest first with opaque page tokens, by owner and status', async () => {
    const { registry, clock } = setup();
    for (let i = 0; i < 7; i++) {
      clock.advance(1);
      await registry.create('t', i, { owner: i % 2 === 0 ? 'alice' : 'bob' });
    }
    await registry.cancel('job-3');
    const ids = (page: { jobs: readonly JobSnapshot[] }) => page.jobs.map((j) => j.id);
    const first = await registry.list({ pageSize: 3 });
    expect(ids(first)).toEqual(['job-7', 'job-6', 'job-5']);
    expect(first.nextPageToken).toEqual(expect.any(String));
    const second = await registry.list({ pageSize: 3, pageToken: first.nextPageToken! });
    expect(ids(second)).toEqual(['job-4', 'job-3', 'job-2']);
    const third = await registry.list({ pageSize: 3, pageToken: second.nextPageToken! });
    expect(ids(third)).toEqual(['job-1']);
    expect(third.nextPageToken).toBeUndefined();
    expect(ids(await registry.list({ owner: 'alice' }))).toEqual(['job-7', 'job-5', 'job-3', 'job-1']);
    expect(ids(await registry.list({ owner: 'alice', status: 'canceled' }))).toEqual(['job-3']);
    expect(ids(await registry.list({ status: 'queued', pageSize: 2 }))).toEqual(['job-7', 'job-6']);
    await expect(registry.list({ pageToken: 'garbage!' })).rejects.toSatisfy(InvalidArgumentError.is);
    await expect(registry.list({ pageSize: 0 })).rejects.toSatisfy(InvalidArgumentError.is);
  });

  it("gives page tokens that reveal nothing of other owners' jobs", async () => {
    const tokens = async (others: number): Promise<(string | undefined)[]> => {
      const { registry } = setup();
      for (let n = 0; n < 3; n++) {
        await registry.create('t', n, { owner: 'alice' });
        for (let m = 0; m < others; m++) await registry.create('t', m, { owner: 'bob' });
      }
      const first = await registry.list({ owner: 'alice', pageSize: 1 });
      const second = await registry.list({ owner: 'alice', pageSize: 1, pageToken: first.nextPageToken! });
      return [first.nextPageToken, second.nextPageToken];
    };
    expect(await tokens(40)).toEqual(await tokens(0));
  });

  it('hides other owners’ jobs everywhere', async () => {
    const { registry } = setup();
    const job = await registry.create('t', null, { owner: 'alice' });
    expect(await registry.get(job.id, { owner: 'bob' })).toBeUndefined();
    expect(await registry.cancel(job.id, { owner: 'bob' })).toBeUndefined();
    expect((await registry.get(job.id))?.status).toBe('queued');
    expect((await registry.list({ owner: 'bob' })).jobs).toEqual([]);
  });

  it('gives the Retry-After hint', async () => {
    const fixed = setup({ retryAfterSeconds: 2.5 }).registry;
    const job = await fixed.create('t', null);
    expect(fixed.retryAfterSeconds(job)).toBe(3);
    const dynamic = setup({ retryAfterSeconds: (j) => (j.status === 'queued' ? 5 : 1) }).registry;
    expect(dynamic.retryAfterSeconds(job)).toBe(5);
  });
});
