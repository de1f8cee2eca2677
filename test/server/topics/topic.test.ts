import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import {
  InvalidArgumentError,
  OffsetGoneError,
  OffsetOutOfRangeError,
  OverloadedError,
} from '../../../src/core/errors.js';
import type { TopicFetchResult, TopicRecord } from '../../../src/core/protocol.js';
import { JobRegistry } from '../../../src/server/jobs/job-registry.js';
import { DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';
import { MemoryTopicStore } from '../../../src/server/topics/stores/memory-topic-store.js';
import { isTopicName, TopicRegistry, type TopicRegistryOptions } from '../../../src/server/topics/topic-registry.js';

function setup(options: TopicRegistryOptions = {}) {
  const clock = new ManualClock();
  let epochs = 0;
  const store = new MemoryTopicStore({ generateEpoch: () => `e${++epochs}` });
  const purgatory = new DelayedOperationPurgatory({ clock });
  const topics = new TopicRegistry({ clock, store, purgatory, ...options });
  const flush = (): Promise<void> => clock.advanceAsync(0);
  return { clock, store, purgatory, topics, flush };
}

const values = (result: TopicFetchResult) => result.records.map((r) => r.value);

/** Counts the store's reads from now on. */
function countReads(store: MemoryTopicStore): { readonly count: number } {
  const read = store.read.bind(store);
  const counter = { count: 0 };
  store.read = (...args) => {
    counter.count++;
    return read(...args);
  };
  return counter;
}

describe('Topic: appends and reads at every boundary', () => {
  it('reads an empty log at offset 0 as an empty batch', async () => {
    const { topics } = setup();
    const result = await topics.topic('t').read(0);
    expect(result).toEqual({
      topic: 't',
      epoch: 'e1',
      records: [],
      nextOffset: 0,
      highWatermark: 0,
      earliestOffset: 0,
    });
  });

  it('appends with gap-free offsets and reads exactly from an offset, honouring limit', async () => {
    const { topics, clock } = setup();
    const topic = topics.topic<string>('t');
    expect(await topic.append('a')).toBe(0);
    clock.advance(5);
    expect(await topic.append('b', { key: 'k' })).toBe(1);
    expect(await topic.append('c')).toBe(2);
    const all = await topic.read(0);
    expect(all.records[1]).toEqual({ offset: 1, timestamp: '2026-01-01T00:00:00.005Z', key: 'k', value: 'b' });
    expect(values(all)).toEqual(['a', 'b', 'c']);
    expect(all.nextOffset).toBe(3);
    const middle = await topic.read(1, { limit: 1 });
    expect(values(middle)).toEqual(['b']);
    expect(middle.nextOffset).toBe(2);
    const atEnd = await topic.read(3);
    expect(atEnd.records).toEqual([]);
    expect(atEnd.nextOffset).toBe(3);
  });

  it('rejects an offset beyond the high watermark with OffsetOutOfRangeError', async () => {
    const { topics } = setup();
    const topic = topics.topic('t');
    await topic.append(1);
    const error = await topic.read(2).catch((e: unknown) => e);
    expect(OffsetOutOfRangeError.is(error)).toBe(true);
    expect(error).toMatchObject({ topic: 't', offset: 2, highWatermark: 1 });
  });

  it('rejects a trimmed offset with OffsetGoneError carrying earliestOffset and epoch', async () => {
    const { topics } = setup({ retention: { maxRecords: 3 } });
    const topic = topics.topic('t');
    for (let i = 0; i < 5; i++) await topic.append(i);
    expect(await topic.position()).toEqual({ epoch: 'e1', earliestOffset: 2, highWatermark: 5 });
    const error = await topic.read(1).catch((e: unknown) => e);
    expect(OffsetGoneError.is(error)).toBe(true);
    expect(error).toMatchObject({ earliestOffset: 2, epoch: 'e1', offset: 1 });
    expect(values(await topic.read(2))).toEqual([2, 3, 4]);
  });

  it('trims by age', async () => {
    const { topics, clock } = setup({ retention: { maxAgeMs: 1000 } });
    const topic = topics.topic('t');
    await topic.append('old');
    clock.advance(600);
    await topic.append('new');
    clock.advance(400);
    expect(await topic.position()).toMatchObject({ earliestOffset: 0, highWatermark: 2 }); // exactly 1000 ms old: kept
    clock.advance(1);
    expect(await topic.position()).toMatchObject({ earliestOffset: 1, highWatermark: 2 });
    await expect(topic.read(0)).rejects.toSatisfy(OffsetGoneError.is);
    expect(values(await topic.read(1))).toEqual(['new']);
  });

  it('starts a new epoch at offset 0 on reset; the old epoch is gone', async () => {
    const { topics } = setup();
    const topic = topics.topic('t');
    await topic.append('a');
    await topic.append('b');
    await topic.reset();
    expect(await topic.position()).toEqual({ epoch: 'e2', earliestOffset: 0, highWatermark: 0 });
    const stale = await topic.read(0, { epoch: 'e1' }).catch((e: unknown) => e);
    expect(stale).toMatchObject({ code: 'offset-gone', epoch: 'e2', earliestOffset: 0 });
    expect(await topic.append('c')).toBe(0);
    expect(values(await topic.read(0, { epoch: 'e2' }))).toEqual(['c']);
  });

  it('validates read arguments', async () => {
    const { topics } = setup({ maxLimit: 10 });
    const topic = topics.topic('t');
    for (const options of [{ limit: 0 }, { limit: 11 }, { minRecords: -1 }, { waitMs: -1 }, { waitMs: Infinity }]) {
      await expect(topic.read(0, options)).rejects.toSatisfy(InvalidArgumentError.is);
    }
    await expect(topic.read(-1)).rejects.toSatisfy(InvalidArgumentError.is);
    await expect(topic.read(1.5)).rejects.toSatisfy(InvalidArgumentError.is);
  });
});

describe('Topic: held reads', () => {
  it('answers a held read as soon as a record arrives', async () => {
    const { topics, purgatory, flush } = setup();
    const topic = topics.topic('t');
    const pending = topic.read(0, { waitMs: 30_000 });
    await flush();
    expect(purgatory.watched()).toBe(1);
    await topic.append('x');
    expect(values(await pending)).toEqual(['x']);
    expect(purgatory.watched()).toBe(0);
  });

  it('starts a reader at the head from the shared hint, and still checks its epoch', async () => {
    const { topics, store, flush } = setup();
    const topic = topics.topic('t');
    await topic.append('a');
    const first = topic.read(1, { waitMs: 30_000 });
    await flush();
    const read = store.read.bind(store);
    let reads = 0;
    store.read = (...args) => {
      reads++;
      return read(...args);
    };
    const second = topic.read(1, { waitMs: 30_000 });
    expect(reads).toBe(0);
    await expect(topic.read(1, { waitMs: 30_000, epoch: 'stale' })).rejects.toSatisfy(OffsetGoneError.is);
    await topic.append('b');
    expect((await Promise.all([first, second])).map(values)).toEqual([['b'], ['b']]);
    // The stale-epoch read only: the append's change carried its record, so both woken readers are
    // answered from the hint, with one answer object between them.
    expect(reads).toBe(1);
    expect(await first).toBe(await second);
  });

  it('shares one store read among readers woken together when the change carries no records', async () => {
    const { topics, store, flush } = setup();
    // A store that announces appends without their records (as a shared store may).
    const onChange = store.onChange.bind(store);
    store.onChange = (listener) => onChange(({ topic, position }) => listener({ topic, position }));
    const bare = new TopicRegistry({ clock: new ManualClock(), store });
    const topic = bare.topic('t');
    await topic.append('a');
    const readers = [topic.read(1, { waitMs: 30_000 }), topic.read(1, { waitMs: 30_000 })];
    await flush();
    const reads = countReads(store);
    await topic.append('b');
    const [one, two] = await Promise.all(readers);
    expect([values(one!), values(two!)]).toEqual([['b'], ['b']]);
    expect(reads.count).toBe(1);
    expect(one).toBe(two);
    await bare.close();
    await topics.close();
  });

  it('readers arriving together at a topic nobody watched share one store read', async () => {
    const { topics, store, flush } = setup();
    const topic = topics.topic('t');
    await topic.append('a');
    const reads = countReads(store);
    const behind = Array.from({ length: 1000 }, () => topic.read(0, { waitMs: 30_000 }));
    const atHead = Array.from({ length: 1000 }, () => topic.read(1, { waitMs: 30_000 }));
    await flush();
    expect(reads.count).toBe(2);
    const answers = await Promise.all(behind);
    expect(new Set(answers).size).toBe(1);
    expect(values(answers[0]!)).toEqual(['a']);
    await topic.append('b');
    expect((await Promise.all(atHead)).every((answer) => values(answer)[0] === 'b')).toBe(true);
    expect(reads.count).toBe(2);
  });

  it('answers woken readers at different offsets and limits from the latest records, each its own slice', async () => {
    const { topics, store, flush } = setup();
    const topic = topics.topic('t');
    await topic.append('a');
    const atOne = topic.read(1, { waitMs: 30_000, minRecords: 2 });
    const limited = topic.read(1, { waitMs: 30_000, minRecords: 1, limit: 1 });
    await flush();
    const reads = countReads(store);
    await topic.append('b');
    expect(values(await limited)).toEqual(['b']);
    const atTwo = topic.read(2, { waitMs: 30_000 });
    await topic.append('c');
    expect(values(await atOne)).toEqual(['b', 'c']);
    expect(values(await atTwo)).toEqual(['c']);
    expect(reads.count).toBe(0);
  });

  it('keeps jobs and topics apart on a shared purgatory', async () => {
    const clock = new ManualClock();
    const purgatory = new DelayedOperationPurgatory({ clock });
    const topics = new TopicRegistry({ clock, purgatory, store: new MemoryTopicStore() });
    const jobs = new JobRegistry({ clock, purgatory, generateId: () => 'x' });
    const job = await jobs.create('t', null);
    let answered = false;
    void topics
      .topic('x')
      .read(0, { waitMs: 30_000 })
      .then(() => (answered = true));
    await clock.advanceAsync(0);
    await jobs.start(job.id);
    await clock.advanceAsync(0);
    expect(answered).toBe(false);
    expect(purgatory.watched()).toBe(1);
    await topics.close();
    await jobs.close();
  });

  it('holds until minRecords exist', async () => {
    const { topics, flush } = setup();
    const topic = topics.topic('t');
    let result: TopicFetchResult | undefined;
    void topic.read(0, { waitMs: 30_000, minRecords: 3 }).then((r) => (result = r));
    await topic.append(1);
    await topic.append(2);
    await flush();
    expect(result).toBeUndefined();
    await topic.append(3);
    await flush();
    expect(result && values(result)).toEqual([1, 2, 3]);
  });

  it('answers at timeout with an empty batch', async () => {
    const { topics, clock, flush } = setup();
    const topic = topics.topic('t');
    await topic.append('seen');
    let result: TopicFetchResult | undefined;
    void topic.read(1, { waitMs: 2000 }).then((r) => (result = r));
    await clock.advanceAsync(1999);
    expect(result).toBeUndefined();
    await clock.advanceAsync(1);
    await flush();
    expect(result).toMatchObject({ records: [], nextOffset: 1, highWatermark: 1 });
  });

  it('rejects a held read with OffsetGoneError when the log is reset under it', async () => {
    const { topics, flush } = setup();
    const topic = topics.topic('t');
    await topic.append('a');
    const pending = topic.read(1, { waitMs: 30_000 });
    await flush();
    await topic.reset();
    await expect(pending).rejects.toMatchObject({ code: 'offset-gone', epoch: 'e2' });
  });

  it('rejects with the signal reason on abort', async () => {
    const { topics, purgatory, flush } = setup();
    const controller = new AbortController();
    const pending = topics.topic('t').read(0, { waitMs: 30_000, signal: controller.signal });
    await flush();
    controller.abort(new Error('bye'));
    await expect(pending).rejects.toThrow('bye');
    expect(purgatory.watched()).toBe(0);
  });

  it('wakes 10,000 held readers with one append', async () => {
    const { topics, purgatory, flush } = setup();
    const topic = topics.topic('t');
    const readers = Array.from({ length: 10_000 }, () => topic.read(0, { waitMs: 30_000 }));
    await flush();
    expect(purgatory.watched()).toBe(10_000);
    await topic.append('go');
    const results = await Promise.all(readers);
    expect(results.every((r) => r.records.length === 1)).toBe(true);
    expect(purgatory.watched()).toBe(0);
  });

  it('answers every held read when the registry closes, then refuses appends', async () => {
    const { topics, purgatory, flush } = setup();
    const topic = topics.topic('t');
    const pending = [topic.read(0, { waitMs: 30_000 }), topics.topic('u').read(0, { waitMs: 30_000 })];
    await flush();
    await topics.close();
    expect((await Promise.all(pending)).map((r) => r.records.length)).toEqual([0, 0]);
    expect(purgatory.watched()).toBe(0);
    await expect(topic.append(1)).rejects.toMatchObject({ code: 'shutting-down' });
  });
});

describe('Topic: subscribe', () => {
  async function take<T>(iterator: AsyncIterator<T>, n: number): Promise<T[]> {
    const out: T[] = [];
    while (out.length < n) {
      const next = await iterator.next();
      if (next.done === true) break;
      out.push(next.value);
    }
    return out;
  }

  it('streams existing and new records in order', async () => {
    const { topics, flush } = setup();
    const topic = topics.topic<number>('t');
    await topic.append(0);
    await topic.append(1);
    const iterator = topic.subscribe(0);
    expect((await take(iterator, 2)).map((r) => r.value)).toEqual([0, 1]);
    const later = take(iterator, 2);
    await flush();
    await topic.append(2);
    await topic.append(3);
    expect((await later).map((r) => r.offset)).toEqual([2, 3]);
    await iterator.return?.();
  });

  it('holds at most bufferSize records for a slow consumer, and throws OffsetGoneError once it falls behind retention', async () => {
    const { topics, store } = setup({ retention: { maxRecords: 10 } });
    const topic = topics.topic<number>('t');
    for (let i = 0; i < 10; i++) await topic.append(i);
    const reads: number[] = [];
    const read = store.read.bind(store);
    store.read = async (name, offset, limit, retention) => {
      const result = await read(name, offset, limit, retention);
      reads.push(result.records.length);
      return result;
    };
    const iterator = topic.subscribe(0, { bufferSize: 4 });
    expect((await take(iterator, 1)).map((r) => r.value)).toEqual([0]);
    expect(reads).toEqual([4]); // one bounded batch, not the whole backlog
    // The producer never waits for the consumer: 20 more appends trim the log past its position.
    for (let i = 10; i < 30; i++) await topic.append(i);
    // The batch already fetched is still delivered…
    expect((await take(iterator, 3)).map((r) => r.value)).toEqual([1, 2, 3]);
    // …then the next fetch finds offset 4 trimmed.
    const error = await iterator.next().catch((e: unknown) => e);
    expect(OffsetGoneError.is(error)).toBe(true);
    expect(error).toMatchObject({ offset: 4, earliestOffset: 20 });
  });

  it('rejects with OffsetGoneError when the log is reset, and ends when the registry closes', async () => {
    const { topics, flush } = setup();
    const topic = topics.topic<number>('t');
    await topic.append(1);
    const first = topic.subscribe(0);
    await take(first, 1);
    const pending = first.next();
    await flush();
    await topic.reset();
    await expect(pending).rejects.toSatisfy(OffsetGoneError.is);

    const second = topic.subscribe(0);
    const next = second.next();
    await flush();
    await topics.close();
    expect(await next).toEqual({ done: true, value: undefined });
  });

  it('rejects with the signal reason on abort', async () => {
    const { topics, flush } = setup();
    const controller = new AbortController();
    const iterator = topics.topic('t').subscribe(0, { signal: controller.signal });
    const pending = iterator.next();
    await flush();
    controller.abort(new Error('closed tab'));
    await expect(pending).rejects.toThrow('closed tab');
  });

  it('validates its arguments', () => {
    const { topics } = setup();
    expect(() => topics.topic('t').subscribe(-1)).toThrow(InvalidArgumentError);
    expect(() => topics.topic('t').subscribe(0, { bufferSize: 0 })).toThrow(InvalidArgumentError);
  });
});

describe('TopicRegistry', () => {
  it('creates topics on first use and validates names', () => {
    const { topics } = setup({ maxTopics: 2 });
    expect(topics.get('a')).toBeUndefined();
    const a = topics.topic('a');
    expect(topics.topic('a')).toBe(a);
    expect(topics.get('a')).toBe(a);
    for (const bad of ['', 'a/b', 'a b', 'x'.repeat(201), 'ümlaut']) {
      expect(() => topics.topic(bad)).toThrow(expect.objectContaining({ code: 'invalid-argument', argument: 'name' }));
    }
    topics.topic('b');
    expect(() => topics.topic('c')).toThrow(OverloadedError);
    expect(topics.names()).toEqual(['a', 'b']);
    expect(isTopicName('orders.eu-1_x')).toBe(true);
  });

  it('validates its options', () => {
    expect(() => new TopicRegistry({ maxLimit: 0 })).toThrow(InvalidArgumentError);
    expect(() => new TopicRegistry({ defaultLimit: 20, maxLimit: 10 })).toThrow(InvalidArgumentError);
    expect(() => new TopicRegistry({ retention: { maxRecords: 0 } })).toThrow(InvalidArgumentError);
    expect(() => new TopicRegistry({ retention: { maxAgeMs: -5 } })).toThrow(InvalidArgumentError);
  });
});

describe('Topic properties', () => {
  it('keeps offsets strictly increasing and gap-free within each epoch, whatever the retention', async () => {
    const action = fc.oneof(
      fc.record({ kind: fc.constant('append' as const), count: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ kind: fc.constant('reset' as const) }),
      fc.record({
        kind: fc.constant('read' as const),
        back: fc.integer({ min: 0, max: 8 }),
        limit: fc.integer({ min: 1, max: 6 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(action, { maxLength: 30 }),
        fc.integer({ min: 1, max: 6 }),
        async (actions, maxRecords) => {
          const { topics } = setup({ retention: { maxRecords } });
          const topic = topics.topic<number>('t');
          const appended = new Map<string, number[]>();
          for (const step of actions) {
            if (step.kind === 'append') {
              for (let i = 0; i < step.count; i++) {
                const { epoch } = await topic.position();
                const offset = await topic.append(i);
                const list = appended.get(epoch) ?? [];
                expect(offset).toBe(list.length === 0 ? 0 : list.at(-1)! + 1);
                list.push(offset);
                appended.set(epoch, list);
              }
            } else if (step.kind === 'reset') {
              await topic.reset();
            } else {
              const position = await topic.position();
              const from = Math.max(0, position.highWatermark - step.back);
              const result = await topic.read(from, { limit: step.limit }).catch((error: unknown) => error);
              if (from < position.earliestOffset) {
                expect(OffsetGoneError.is(result)).toBe(true);
                continue;
              }
              const records = (result as TopicFetchResult<number>).records as TopicRecord<number>[];
              expect(records.map((r) => r.offset)).toEqual(records.map((_, i) => from + i));
              expect(records.length).toBe(Math.min(step.limit, position.highWatermark - from));
            }
            const position = await topic.position();
            expect(position.highWatermark - position.earliestOffset).toBeLessThanOrEqual(maxRecords);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
