import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IllegalTransitionError, InvalidArgumentError } from '../../src/core/errors.js';
import { cancelJob, newJob, startJob } from '../../src/server/jobs/job-state.js';
import { problem } from '../../src/core/protocol.js';
import type { JobChange, StoredJob } from '../../src/server/jobs/stores/job-store.js';
import { MemoryJobStore } from '../../src/server/jobs/stores/memory-job-store.js';
import { MemoryTopicStore } from '../../src/server/topics/stores/memory-topic-store.js';
import { MinHeap } from '../../src/server/jobs/stores/min-heap.js';
import type { TopicChange } from '../../src/server/topics/stores/topic-store.js';

const job = (id: string, extra: Partial<Parameters<typeof newJob>[0]> = {}): StoredJob =>
  newJob({ id, type: 't', input: null, runner: 'external', nowMs: 0, ...extra });

const finished = (stored: StoredJob, nowMs: number, retentionMs: number): StoredJob =>
  cancelJob(stored, problem('canceled'), nowMs, { retentionMs });

describe('MinHeap', () => {
  it('pops in key order (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -1000, max: 1000 })), (keys) => {
        const heap = new MinHeap<number>();
        for (const key of keys) heap.push(key, key);
        const out: number[] = [];
        while (heap.size > 0) {
          expect(heap.peekKey()).toBe(heap.peek());
          out.push(heap.pop()!);
        }
        expect(out).toEqual([...keys].sort((a, b) => a - b));
        expect(heap.pop()).toBeUndefined();
      }),
    );
  });
});

describe('MemoryJobStore', () => {
  it('inserts, refuses a duplicate id, and returns the existing job for a reused idempotency key', async () => {
    const store = new MemoryJobStore();
    expect(await store.insert(job('a', { idempotencyKey: 'k', owner: 'o' }))).toMatchObject({ inserted: true });
    await expect(store.insert(job('a'))).rejects.toSatisfy(InvalidArgumentError.is);
    const again = await store.insert(job('b', { idempotencyKey: 'k', owner: 'o' }));
    expect(again).toMatchObject({ inserted: false, job: { snapshot: { id: 'a' } } });
    expect(await store.insert(job('c', { idempotencyKey: 'k', owner: 'other' }))).toMatchObject({ inserted: true });
    expect((await store.findByIdempotencyKey('o', 'k'))?.snapshot.id).toBe('a');
    expect(await store.findByIdempotencyKey(undefined, 'k')).toBeUndefined();
  });

  it('applies transitions atomically, announces them, and changes nothing when one throws', async () => {
    const store = new MemoryJobStore();
    const changes: JobChange[] = [];
    const off = store.onChange((change) => changes.push(change));
    await store.insert(job('a'));
    const started = await store.update('a', (current) => startJob(current, 5));
    expect(started?.snapshot).toMatchObject({ status: 'running', version: 2 });
    await expect(store.update('a', (current) => startJob(current, 6))).rejects.toSatisfy(IllegalTransitionError.is);
    await expect(store.update('a', (current) => ({ ...current }))).rejects.toSatisfy(InvalidArgumentError.is);
    expect(await store.update('a', (current) => current)).toBe(started);
    expect(await store.update('missing', (current) => current)).toBeUndefined();
    expect((await store.get('a'))?.snapshot.version).toBe(2);
    expect(changes.map((c) => [c.id, c.version, c.job !== undefined])).toEqual([
      ['a', 1, true],
      ['a', 2, true],
    ]);
    off();
    await store.update('a', (current) => finished(current, 7, 1000));
    expect(changes).toHaveLength(2);
  });

  it('deletes only when the condition allows, and announces deletions', async () => {
    const store = new MemoryJobStore();
    const changes: JobChange[] = [];
    store.onChange((change) => changes.push(change));
    await store.insert(job('a'));
    expect(await store.delete('a', () => false)).toBe(false);
    await expect(
      store.delete('a', () => {
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    expect(await store.delete('a')).toBe(true);
    expect(await store.delete('a')).toBe(false);
    expect(changes.at(-1)).toEqual({ id: 'a', version: 1, deleted: true });
  });

  it('lists newest first across compactions of its index', async () => {
    const store = new MemoryJobStore();
    for (let i = 0; i < 3000; i++) await store.insert(job(`j${i}`, { owner: i % 3 === 0 ? 'x' : 'y' }));
    // Delete most of them so the index compacts (at least 1024 dead and more dead than live).
    for (let i = 0; i < 2900; i++) await store.delete(`j${i}`);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.list({ limit: 7, ...(cursor === undefined ? {} : { cursor }) });
      seen.push(...page.jobs.map((j) => j.snapshot.id));
      cursor = page.cursor;
    } while (cursor !== undefined);
    expect(seen).toEqual(Array.from({ length: 100 }, (_, i) => `j${2999 - i}`));
    const owned = await store.list({ owner: 'x', limit: 1000 });
    expect(owned.jobs.every((j) => j.owner === 'x')).toBe(true);
    expect(owned.jobs).toHaveLength(33);
  });

  it('sweeps expired jobs in expiry order, in bounded batches, skipping stale entries', async () => {
    const store = new MemoryJobStore();
    for (const [id, at] of [
      ['a', 300],
      ['b', 100],
      ['c', 200],
      ['d', 400],
    ] as const) {
      await store.insert(job(id));
      await store.update(id, (current) => finished(current, at, 0));
    }
    await store.delete('b'); // its heap entry is now stale
    expect(await store.sweep(50, 10)).toEqual({ removed: [], nextExpiryMs: 200 });
    expect(await store.sweep(1000, 1)).toEqual({ removed: ['c'], nextExpiryMs: 300 });
    expect(await store.sweep(1000, 10)).toEqual({ removed: ['a', 'd'] });
    expect(store.size).toBe(0);
  });
});

describe('MemoryTopicStore', () => {
  it('keeps offsets and reads right across head compaction', async () => {
    const store = new MemoryTopicStore({ generateEpoch: () => 'e' });
    const changes: TopicChange[] = [];
    store.onChange((change) => changes.push(change));
    for (let i = 0; i < 5000; i++)
      await store.append('t', { key: null, value: i, timestampMs: i }, { maxRecords: 100 });
    expect(await store.position('t', {})).toEqual({ epoch: 'e', earliestOffset: 4900, highWatermark: 5000 });
    const read = await store.read('t', 4950, 3, {});
    expect(read.records.map((r) => r.record.value)).toEqual([4950, 4951, 4952]);
    expect(read.records[0]?.record).toEqual({
      offset: 4950,
      timestamp: '1970-01-01T00:00:04.950Z',
      key: null,
      value: 4950,
    });
    expect((await store.read('t', 10, 3, {})).records).toEqual([]);
    expect(changes).toHaveLength(5000);
    expect(changes.at(-1)?.position.highWatermark).toBe(5000);
  });

  it('creates a topic with a fresh epoch on first use and a new epoch on reset', async () => {
    let n = 0;
    const store = new MemoryTopicStore({ generateEpoch: () => `e${++n}` });
    expect(await store.position('a', {})).toEqual({ epoch: 'e1', earliestOffset: 0, highWatermark: 0 });
    expect(await store.position('b', {})).toMatchObject({ epoch: 'e2' });
    await store.append('a', { key: 'k', value: 1, timestampMs: 0 }, {});
    expect(await store.reset('a')).toEqual({ epoch: 'e3', earliestOffset: 0, highWatermark: 0 });
  });

  it('makes random epochs by default', async () => {
    const store = new MemoryTopicStore();
    const first = (await store.position('a', {})).epoch;
    expect(first).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect((await store.reset('a')).epoch).not.toBe(first);
  });
});
