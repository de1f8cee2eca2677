/**
 * The behaviour every JobStore and TopicStore must share, written once and run against the in-memory
 * stores and the Redis stores alike (test/redis/stores.test.ts), so the Redis stores cannot drift from
 * the default.
 *
 * @module
 */
import { describe, expect, it } from 'vitest';
import { IllegalTransitionError, InvalidArgumentError } from '../../src/core/errors.js';
import {
  failJob,
  newJob,
  progressJob,
  startJob,
  succeedJob,
  workerLostProblem,
} from '../../src/server/jobs/job-state.js';
import { problem } from '../../src/core/protocol.js';
import type { JobChange, JobStore, StoredJob } from '../../src/server/jobs/stores/job-store.js';
import type { TopicChange, TopicStore } from '../../src/server/topics/stores/topic-store.js';

/** A store under test and how to dispose of it. */
export interface StoreFixture<Store> {
  readonly store: Store;
  readonly dispose: () => Promise<void>;
}

const T0 = Date.UTC(2026, 0, 1);

function base(id: string): Parameters<typeof newJob>[0] {
  return { id, type: 'test.echo', input: { id, n: [1, 2, 3] }, runner: 'external', nowMs: T0 };
}

function job(id: string, extra: { owner?: string; idempotencyKey?: string; nowMs?: number } = {}): StoredJob {
  return newJob({ ...base(id), ...extra });
}

function finished(stored: StoredJob, expiresInMs: number): StoredJob {
  return succeedJob(startJob(stored, T0 + 1), { ok: true }, T0 + 2, { retentionMs: expiresInMs });
}

async function withStore<Store>(
  factory: () => Promise<StoreFixture<Store>>,
  body: (store: Store) => Promise<void>,
): Promise<void> {
  const { store, dispose } = await factory();
  try {
    await body(store);
  } finally {
    await dispose();
  }
}

/**
 * What a job store leaves to its backend. BullMQ keeps its own leases (a worker's lock, the stalled-job
 * check), so the BullMQ store renews and reclaims nothing, and a job BullMQ failed never gives its
 * idempotency key up.
 */
export interface JobStoreTraits {
  /** Keeps pollkit leases (`renewLeases`, `expiredLeases`). Default true. */
  readonly leases?: boolean;
  /** Lets a job that failed with a retryable problem give its idempotency key up. Default true. */
  readonly releasesRetryableKeys?: boolean;
}

/** Runs the JobStore contract against stores made by `factory`. */
export function describeJobStore(
  name: string,
  factory: () => Promise<StoreFixture<JobStore>>,
  traits: JobStoreTraits = {},
): void {
  const run = (body: (store: JobStore) => Promise<void>) => () => withStore(factory, body);
  const keepsLeases = traits.leases !== false;
  const releasesKeys = traits.releasesRetryableKeys !== false;

  describe(`JobStore contract: ${name}`, () => {
    it(
      'inserts, gets and announces a job',
      run(async (store) => {
        const changes: JobChange[] = [];
        store.onChange((change) => changes.push(change));
        const stored = job('a');
        expect(await store.insert(stored)).toEqual({ inserted: true, job: stored });
        expect(await store.get('a')).toEqual(stored);
        expect(await store.get('missing')).toBeUndefined();
        expect(changes).toEqual([{ id: 'a', version: 1, job: stored }]);
      }),
    );

    it(
      'refuses a second job with the same id',
      run(async (store) => {
        await store.insert(job('a'));
        await expect(store.insert(job('a'))).rejects.toSatisfy(InvalidArgumentError.is);
      }),
    );

    it(
      'returns the existing job for a reused idempotency key, per owner',
      run(async (store) => {
        const first = job('a', { owner: 'alice', idempotencyKey: 'k' });
        await store.insert(first);
        const again = await store.insert(job('b', { owner: 'alice', idempotencyKey: 'k' }));
        expect(again).toEqual({ inserted: false, job: first });
        expect(await store.get('b')).toBeUndefined();
        expect((await store.insert(job('c', { owner: 'bob', idempotencyKey: 'k' }))).inserted).toBe(true);
        expect((await store.insert(job('d', { idempotencyKey: 'k' }))).inserted).toBe(true);
        expect((await store.findByIdempotencyKey('alice', 'k'))?.snapshot.id).toBe('a');
        expect((await store.findByIdempotencyKey('bob', 'k'))?.snapshot.id).toBe('c');
        expect((await store.findByIdempotencyKey(undefined, 'k'))?.snapshot.id).toBe('d');
        expect(await store.findByIdempotencyKey('carol', 'k')).toBeUndefined();
      }),
    );

    it(
      'applies a transition, raises the version and announces it',
      run(async (store) => {
        await store.insert(job('a'));
        const changes: JobChange[] = [];
        store.onChange((change) => changes.push(change));
        const running = await store.update('a', (current) => startJob(current, T0 + 5));
        expect(running?.snapshot).toMatchObject({ status: 'running', version: 2 });
        expect((await store.get('a'))?.snapshot.version).toBe(2);
        expect(changes).toEqual([{ id: 'a', version: 2, job: running }]);
        expect(await store.update('missing', (current) => current)).toBeUndefined();
      }),
    );

    it(
      'writes nothing for a no-op or a refused transition',
      run(async (store) => {
        const stored = job('a');
        await store.insert(stored);
        const changes: JobChange[] = [];
        store.onChange((change) => changes.push(change));
        expect(await store.update('a', (current) => current)).toEqual(stored);
        await expect(
          store.update('a', () => {
            throw new IllegalTransitionError('no');
          }),
        ).rejects.toSatisfy(IllegalTransitionError.is);
        await expect(store.update('a', (current) => ({ ...current }))).rejects.toSatisfy(InvalidArgumentError.is);
        expect(await store.get('a')).toEqual(stored);
        expect(changes).toEqual([]);
      }),
    );

    it(
      'applies concurrent transitions one at a time, losing none',
      run(async (store) => {
        await store.insert(job('a'));
        await store.update('a', (current) => startJob(current, T0));
        await Promise.all(
          Array.from({ length: 25 }, (_, n) =>
            store.update('a', (current) => progressJob(current, { percent: n }, T0)),
          ),
        );
        expect((await store.get('a'))?.snapshot.version).toBe(27);
      }),
    );

    it(
      'lets exactly one of two racing writers finish a job',
      run(async (store) => {
        await store.insert(job('a'));
        await store.update('a', (current) => startJob(current, T0));
        const outcomes = await Promise.allSettled(
          ['w1', 'w2', 'w3'].map((worker) =>
            store.update('a', (current) => succeedJob(current, worker, T0 + 1, { retentionMs: 60_000 })),
          ),
        );
        const winners = outcomes.filter((outcome) => outcome.status === 'fulfilled');
        expect(winners).toHaveLength(1);
        for (const outcome of outcomes) {
          if (outcome.status === 'rejected') expect(IllegalTransitionError.is(outcome.reason)).toBe(true);
        }
        const final = await store.get('a');
        expect(final?.snapshot.result).toBe((winners[0] as PromiseFulfilledResult<StoredJob>).value.snapshot.result);
      }),
    );

    it(
      'deletes under a condition and frees the idempotency key',
      run(async (store) => {
        await store.insert(job('a', { owner: 'o', idempotencyKey: 'k' }));
        const changes: JobChange[] = [];
        store.onChange((change) => changes.push(change));
        expect(await store.delete('missing')).toBe(false);
        expect(await store.delete('a', () => false)).toBe(false);
        await expect(
          store.delete('a', () => {
            throw new IllegalTransitionError('running');
          }),
        ).rejects.toSatisfy(IllegalTransitionError.is);
        expect(await store.get('a')).toBeDefined();
        expect(await store.delete('a', (current) => current.snapshot.id === 'a')).toBe(true);
        expect(await store.get('a')).toBeUndefined();
        expect(await store.findByIdempotencyKey('o', 'k')).toBeUndefined();
        expect(changes).toEqual([{ id: 'a', version: 1, deleted: true }]);
        expect((await store.insert(job('b', { owner: 'o', idempotencyKey: 'k' }))).inserted).toBe(true);
        expect((await store.list({ owner: 'o', limit: 10 })).jobs.map((j) => j.snapshot.id)).toEqual(['b']);
      }),
    );

    it(
      'lists newest first, by owner and status, in pages',
      run(async (store) => {
        for (const [n, owner] of ['x', 'y', 'x', 'y', 'x'].entries()) await store.insert(job(`j${n}`, { owner }));
        await store.update('j2', (current) => startJob(current, T0));
        const ids = (page: { jobs: readonly StoredJob[] }) => page.jobs.map((j) => j.snapshot.id);
        expect(ids(await store.list({ limit: 10 }))).toEqual(['j4', 'j3', 'j2', 'j1', 'j0']);
        expect(ids(await store.list({ owner: 'x', limit: 10 }))).toEqual(['j4', 'j2', 'j0']);
        expect(ids(await store.list({ status: 'running', limit: 10 }))).toEqual(['j2']);
        const first = await store.list({ limit: 2 });
        expect(ids(first)).toEqual(['j4', 'j3']);
        expect(first.cursor).toBeTypeOf('string');
        const second = await store.list({ limit: 2, cursor: first.cursor! });
        expect(ids(second)).toEqual(['j2', 'j1']);
        const third = await store.list({ limit: 2, cursor: second.cursor! });
        expect(ids(third)).toEqual(['j0']);
        expect(third.cursor).toBeUndefined();
        await expect(store.list({ limit: 2, cursor: 'not a cursor!' })).rejects.toSatisfy(InvalidArgumentError.is);
      }),
    );

    it(
      "gives an owner page cursors that reveal nothing of other owners' jobs",
      run(async (store) => {
        // Alice's cursors are the same whether or not Bob made 50 jobs in between.
        const cursors = async (prefix: string, others: number): Promise<string[]> => {
          for (let n = 0; n < 3; n++) {
            await store.insert(job(`${prefix}-a${n}`, { owner: `alice-${prefix}` }));
            for (let m = 0; m < others; m++)
              await store.insert(job(`${prefix}-b${n}-${m}`, { owner: `bob-${prefix}` }));
          }
          const first = await store.list({ owner: `alice-${prefix}`, limit: 1 });
          const second = await store.list({ owner: `alice-${prefix}`, limit: 1, cursor: first.cursor! });
          expect(second.jobs.map((j) => j.snapshot.id)).toEqual([`${prefix}-a1`]);
          return [first.cursor!, second.cursor!];
        };
        const busy = await cursors('busy', 50);
        const quiet = await cursors('quiet', 0);
        expect(busy).toEqual(quiet);
      }),
    );

    it(
      'sweeps expired jobs only, up to the limit, and reports the next expiry',
      run(async (store) => {
        for (const [n, retention] of [100, 200, 300, 400].entries()) {
          await store.insert(job(`j${n}`));
          await store.update(`j${n}`, (current) => finished(current, retention));
        }
        await store.insert(job('live'));
        const changes: JobChange[] = [];
        store.onChange((change) => changes.push(change));
        const first = await store.sweep(T0 + 2 + 300, 2);
        expect([...first.removed].sort()).toEqual(['j0', 'j1']);
        expect(first.nextExpiryMs).toBe(T0 + 2 + 300);
        const second = await store.sweep(T0 + 2 + 300, 10);
        expect(second.removed).toEqual(['j2']);
        expect(second.nextExpiryMs).toBe(T0 + 2 + 400);
        expect(await store.get('j2')).toBeUndefined();
        expect(await store.get('j3')).toBeDefined();
        expect(changes.map((change) => [change.id, change.deleted])).toEqual([
          ...first.removed.map((id) => [id, true]),
          ['j2', true],
        ]);
        const last = await store.sweep(T0 + 10_000, 10);
        expect(last).toEqual({ removed: ['j3'] });
      }),
    );

    if (keepsLeases) {
      it(
        'renews leases without a version or a notice, and reports the ones it no longer holds',
        run(async (store) => {
          const lease = (holder: string, expiresAtMs: number) => ({ holder, expiresAtMs });
          await store.insert(newJob({ ...base('q'), lease: lease('me', T0 + 1000) }));
          await store.insert(job('r'));
          await store.update('r', (current) => startJob(current, T0, lease('me', T0 + 1000)));
          await store.insert(job('theirs'));
          await store.update('theirs', (current) => startJob(current, T0, lease('them', T0 + 1000)));
          await store.insert(job('done'));
          await store.update('done', (current) => startJob(current, T0, lease('me', T0 + 1000)));
          await store.update('done', (current) => succeedJob(current, null, T0 + 2, { retentionMs: 60_000 }));
          const changes: JobChange[] = [];
          store.onChange((change) => changes.push(change));
          const lost = await store.renewLeases('me', ['q', 'r', 'theirs', 'done', 'missing'], T0 + 5000);
          expect([...lost].sort()).toEqual(['done', 'missing', 'theirs']);
          expect(changes).toEqual([]);
          expect(await store.get('q')).toMatchObject({ snapshot: { version: 1 }, lease: lease('me', T0 + 5000) });
          expect(await store.get('r')).toMatchObject({ snapshot: { version: 2 }, lease: lease('me', T0 + 5000) });
          expect((await store.get('done'))?.lease).toBeUndefined();
          expect((await store.get('r'))?.attempts).toBe(1);
        }),
      );

      it(
        'finds lapsed leases without scanning, and hands them out with their current expiry',
        run(async (store) => {
          for (const [n, at] of [1000, 2000, 3000].entries()) {
            await store.insert(job(`l${n}`));
            await store.update(`l${n}`, (current) => startJob(current, T0, { holder: 'h', expiresAtMs: T0 + at }));
          }
          expect(await store.expiredLeases(T0 + 500, 10)).toEqual({ jobs: [], nextExpiryMs: T0 + 1000 });
          const first = await store.expiredLeases(T0 + 2000, 10);
          expect(first.jobs.map((j) => j.snapshot.id).sort()).toEqual(['l0', 'l1']);
          expect(first.nextExpiryMs).toBe(T0 + 3000);
          // A renewal moves a job out of the lapsed set; a finish drops it for good.
          await store.renewLeases('h', ['l0'], T0 + 9000);
          await store.update('l1', (current) => succeedJob(current, null, T0 + 2, { retentionMs: 60_000 }));
          const second = await store.expiredLeases(T0 + 3000, 10);
          expect(second.jobs.map((j) => [j.snapshot.id, j.lease?.expiresAtMs])).toEqual([['l2', T0 + 3000]]);
          expect(second.nextExpiryMs).toBe(T0 + 9000);
          expect((await store.expiredLeases(T0 + 3000, 0)).jobs).toEqual([]);
        }),
      );

      it(
        'makes a transition that read a lease before a renewal run again on the renewed job',
        run(async (store) => {
          await store.insert(job('j'));
          await store.update('j', (current) => startJob(current, T0, { holder: 'h', expiresAtMs: T0 + 1000 }));
          const seen: (number | undefined)[] = [];
          let renewed = false;
          const result = await store.update('j', (current) => {
            seen.push(current.lease?.expiresAtMs);
            if (!renewed) {
              renewed = true;
              // A renewal lands between this read and the write (stores call transitions synchronously).
              void store.renewLeases('h', ['j'], T0 + 7000);
            }
            return current.lease !== undefined && current.lease.expiresAtMs <= T0 + 1000
              ? progressJob(current, { percent: 1 }, T0)
              : current;
          });
          // Either the renewal was seen before the write (no change), or the write was refused and rerun.
          expect(seen.at(-1)).toBe(T0 + 7000);
          expect(result?.snapshot.version).toBe(2);
        }),
      );
    } else {
      it(
        'leaves leases to its backend: renews nothing and reports no lapsed lease',
        run(async (store) => {
          await store.insert(job('r'));
          await store.update('r', (current) => startJob(current, T0, { holder: 'me', expiresAtMs: T0 + 1000 }));
          expect(await store.renewLeases('me', ['r'], T0 + 5000)).toEqual([]);
          expect((await store.expiredLeases(T0 + 10_000, 10)).jobs).toEqual([]);
        }),
      );
    }

    it(
      "refuses a job past the owner's cap, atomically with the insert",
      run(async (store) => {
        for (let n = 0; n < 3; n++) await store.insert(job(`c${n}`, { owner: 'capped' }), { maxPerOwner: 3 });
        await expect(store.insert(job('c3', { owner: 'capped' }), { maxPerOwner: 3 })).rejects.toMatchObject({
          code: 'too-many-jobs',
        });
        await store.insert(job('other', { owner: 'someone' }), { maxPerOwner: 3 });
        await store.insert(job('c3', { owner: 'capped' })); // no cap given
        await store.update('c0', (current) => finished(current, 10));
        await store.sweep(T0 + 100, 10);
        expect((await store.insert(job('c4', { owner: 'capped' }), { maxPerOwner: 4 })).inserted).toBe(true);
      }),
    );

    if (releasesKeys) {
      it(
        'gives an idempotency key up when its job failed with a retryable problem',
        run(async (store) => {
          const first = job('first', { owner: 'o', idempotencyKey: 'k' });
          await store.insert(first);
          await store.update('first', (current) =>
            failJob(startJob(current, T0), workerLostProblem(), T0 + 1, { retentionMs: 60_000 }),
          );
          const again = await store.insert(job('second', { owner: 'o', idempotencyKey: 'k' }));
          expect(again).toMatchObject({ inserted: true, job: { snapshot: { id: 'second' } } });
          expect((await store.findByIdempotencyKey('o', 'k'))?.snapshot.id).toBe('second');
          expect((await store.get('first'))?.snapshot.status).toBe('failed');
          // Removing the old job leaves the key with the new one.
          expect(await store.delete('first')).toBe(true);
          expect((await store.findByIdempotencyKey('o', 'k'))?.snapshot.id).toBe('second');
          // A job that failed for good keeps its key.
          await store.update('second', (current) =>
            failJob(current, problem('job-failed', 'no'), T0 + 2, { retentionMs: 60_000 }),
          );
          expect(await store.insert(job('third', { owner: 'o', idempotencyKey: 'k' }))).toMatchObject({
            inserted: false,
            job: { snapshot: { id: 'second' } },
          });
        }),
      );
    } else {
      it(
        'keeps the idempotency key of a failed job, whatever the problem (its backend decides retries)',
        run(async (store) => {
          await store.insert(job('first', { owner: 'o', idempotencyKey: 'k' }));
          await store.update('first', (current) =>
            failJob(startJob(current, T0), workerLostProblem(), T0 + 1, { retentionMs: 60_000 }),
          );
          expect(await store.insert(job('second', { owner: 'o', idempotencyKey: 'k' }))).toMatchObject({
            inserted: false,
            job: { snapshot: { id: 'first' } },
          });
        }),
      );
    }
  });
}

/** Runs the TopicStore contract against stores made by `factory`. */
export function describeTopicStore(name: string, factory: () => Promise<StoreFixture<TopicStore>>): void {
  const run = (body: (store: TopicStore) => Promise<void>) => () => withStore(factory, body);
  const entry = (value: unknown, timestampMs = T0, key: string | null = null) => ({ key, value, timestampMs });

  describe(`TopicStore contract: ${name}`, () => {
    it(
      'starts a topic empty, with an epoch, on first use',
      run(async (store) => {
        const position = await store.position('t', {});
        expect(position).toMatchObject({ earliestOffset: 0, highWatermark: 0 });
        expect(position.epoch).toMatch(/.+/);
        expect((await store.position('t', {})).epoch).toBe(position.epoch);
        expect((await store.position('other', {})).epoch).not.toBe(position.epoch);
      }),
    );

    it(
      'deletes a topic, announcing it; naming it again starts an empty log in a new epoch',
      run(async (store) => {
        await store.append('gone', entry('a'), {});
        await store.append('gone', entry('b'), {});
        const before = await store.position('gone', {});
        const changes: TopicChange[] = [];
        store.onChange((change) => changes.push(change));
        expect(await store.delete('gone')).toBe(true);
        expect(changes).toEqual([
          {
            topic: 'gone',
            position: { epoch: expect.any(String), earliestOffset: 0, highWatermark: 0 },
            deleted: true,
          },
        ]);
        expect(await store.delete('never-made')).toBe(false);
        const after = await store.position('gone', {});
        expect(after).toMatchObject({ earliestOffset: 0, highWatermark: 0 });
        expect(after.epoch).not.toBe(before.epoch);
        expect((await store.read('gone', 0, 10, {})).records).toEqual([]);
      }),
    );

    it(
      'appends gap-free offsets and reads them back in order',
      run(async (store) => {
        const changes: TopicChange[] = [];
        store.onChange((change) => changes.push(change));
        const values = [{ a: 1 }, 'two', null, 3.5, [true]];
        for (const [n, value] of values.entries()) {
          const { offset, position } = await store.append('t', entry(value, T0 + n, n === 1 ? 'k1' : null), {});
          expect(offset).toBe(n);
          expect(position.highWatermark).toBe(n + 1);
        }
        const all = await store.read('t', 0, 100, {});
        expect(all.records).toEqual(
          values.map((value, n) => ({
            record: { offset: n, timestamp: new Date(T0 + n).toISOString(), key: n === 1 ? 'k1' : null, value },
            timestampMs: T0 + n,
          })),
        );
        expect(all.position).toMatchObject({ earliestOffset: 0, highWatermark: 5 });
        expect((await store.read('t', 2, 2, {})).records.map((r) => r.record.offset)).toEqual([2, 3]);
        expect((await store.read('t', 5, 10, {})).records).toEqual([]);
        expect((await store.read('t', 50, 10, {})).records).toEqual([]);
        expect(changes.map((change) => [change.topic, change.position.highWatermark])).toEqual([
          ['t', 1],
          ['t', 2],
          ['t', 3],
          ['t', 4],
          ['t', 5],
        ]);
      }),
    );

    it(
      'keeps an empty-string key apart from no key',
      run(async (store) => {
        await store.append('t', entry(1, T0, ''), {});
        await store.append('t', entry(2, T0, null), {});
        expect((await store.read('t', 0, 10, {})).records.map((r) => r.record.key)).toEqual(['', null]);
      }),
    );

    it(
      'gives concurrent appends distinct consecutive offsets',
      run(async (store) => {
        const offsets = await Promise.all(
          Array.from({ length: 40 }, (_, n) => store.append('t', entry(n), {}).then((r) => r.offset)),
        );
        expect([...offsets].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, n) => n));
        const records = (await store.read('t', 0, 100, {})).records;
        expect(records.map((r) => r.record.offset)).toEqual(Array.from({ length: 40 }, (_, n) => n));
      }),
    );

    it(
      'drops the oldest records beyond maxRecords',
      run(async (store) => {
        for (let n = 0; n < 5; n++) await store.append('t', entry(n), { maxRecords: 3 });
        const position = await store.position('t', { maxRecords: 3 });
        expect(position).toMatchObject({ earliestOffset: 2, highWatermark: 5 });
        const below = await store.read('t', 0, 10, { maxRecords: 3 });
        expect(below.records).toEqual([]);
        expect(below.position.earliestOffset).toBe(2);
        expect((await store.read('t', 2, 10, { maxRecords: 3 })).records.map((r) => r.record.value)).toEqual([2, 3, 4]);
      }),
    );

    it(
      'drops records older than minTimestampMs, even without an append',
      run(async (store) => {
        for (const n of [0, 1, 2, 3]) await store.append('t', entry(n, T0 + n * 100), {});
        expect(await store.position('t', { minTimestampMs: T0 + 150 })).toMatchObject({
          earliestOffset: 2,
          highWatermark: 4,
        });
        const result = await store.read('t', 2, 10, { minTimestampMs: T0 + 10_000 });
        expect(result.records).toEqual([]);
        expect(result.position).toMatchObject({ earliestOffset: 4, highWatermark: 4 });
        const { offset } = await store.append('t', entry('late', T0 + 20_000), { minTimestampMs: T0 + 10_000 });
        expect(offset).toBe(4);
        expect((await store.read('t', 4, 10, {})).records.map((r) => r.record.value)).toEqual(['late']);
      }),
    );

    it(
      'resets to a new epoch at offset 0 and announces it',
      run(async (store) => {
        await store.append('t', entry('old'), {});
        const before = await store.position('t', {});
        const changes: TopicChange[] = [];
        store.onChange((change) => changes.push(change));
        const after = await store.reset('t');
        expect(after).toMatchObject({ earliestOffset: 0, highWatermark: 0 });
        expect(after.epoch).not.toBe(before.epoch);
        expect(changes).toEqual([{ topic: 't', position: after }]);
        expect((await store.append('t', entry('new'), {})).offset).toBe(0);
        expect((await store.read('t', 0, 10, {})).records.map((r) => r.record.value)).toEqual(['new']);
      }),
    );
  });
}
