import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { RedisChangeFeed, RedisJobStore, RedisTopicStore, StoreUnavailableError } from '../../src/redis/index.js';
import { IllegalTransitionError } from '../../src/core/errors.js';
import { newJob, progressJob, startJob, succeedJob } from '../../src/server/jobs/job-state.js';
import type { JobChange } from '../../src/server/jobs/stores/job-store.js';
import { MemoryJobStore } from '../../src/server/jobs/stores/memory-job-store.js';
import { MemoryTopicStore } from '../../src/server/topics/stores/memory-topic-store.js';
import { TopicRegistry } from '../../src/server/topics/topic-registry.js';
import type { TopicChange } from '../../src/server/topics/stores/topic-store.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';
import { describeJobStore, describeTopicStore } from './store-conformance.js';

let server: RedisServer;
let prefixes = 0;
const nextPrefix = (): string => `t${++prefixes}:`;

beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await server.stop();
});

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describeJobStore('memory', async () => ({ store: new MemoryJobStore(), dispose: async () => undefined }));
describeTopicStore('memory', async () => ({ store: new MemoryTopicStore(), dispose: async () => undefined }));

describeJobStore('redis', async () => {
  const redis = server.client();
  const store = new RedisJobStore({ redis, keyPrefix: nextPrefix() });
  await store.feed.ready(); // so its first re-check cannot interleave with the test's own changes
  return { store, dispose: async () => (await store.close(), redis.disconnect()) };
});
describeTopicStore('redis', async () => {
  const redis = server.client();
  const store = new RedisTopicStore({ redis, keyPrefix: nextPrefix() });
  await store.feed.ready();
  return { store, dispose: async () => (await store.close(), redis.disconnect()) };
});

describe('Redis stores across processes', () => {
  // Two stores on two clients stand for two server processes sharing one Redis.
  async function pair<S extends { close(): Promise<void>; feed: RedisChangeFeed }>(
    make: (redis: Redis, keyPrefix: string) => S,
  ): Promise<{ a: S; b: S; dispose: () => Promise<void> }> {
    const keyPrefix = nextPrefix();
    const clients = [server.client(), server.client()];
    const a = make(clients[0]!, keyPrefix);
    const b = make(clients[1]!, keyPrefix);
    expect(await a.feed.ready()).toBe(true);
    expect(await b.feed.ready()).toBe(true);
    return {
      a,
      b,
      dispose: async () => {
        await a.close();
        await b.close();
        for (const client of clients) client.disconnect();
      },
    };
  }

  it('announces a job change made through one store to the listeners of the other, once', async () => {
    const { a, b, dispose } = await pair((redis, keyPrefix) => new RedisJobStore({ redis, keyPrefix }));
    try {
      const seenA: JobChange[] = [];
      const seenB: JobChange[] = [];
      a.onChange((change) => seenA.push(change));
      b.onChange((change) => seenB.push(change));
      const job = newJob({ id: 'j1', type: 't', input: 1, runner: 'external', nowMs: 0 });
      await a.insert(job);
      await b.update('j1', (current) => startJob(current, 1));
      await until(() => seenA.length === 2 && seenB.length === 2);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(seenA.map((change) => change.version)).toEqual([1, 2]);
      expect(seenB.map((change) => change.version)).toEqual([1, 2]);
      expect(seenA[1]?.job?.snapshot.status).toBe('running');
      expect(seenB[0]?.job).toEqual(job);
    } finally {
      await dispose();
    }
  });

  it('acts on the newest state even when its memory of a job is stale', async () => {
    const keyPrefix = nextPrefix();
    const clients = [server.client(), server.client()];
    // A's feed is closed at once, so A hears nothing of B's writes and keeps remembering version 1.
    const deafFeed = new RedisChangeFeed({ redis: clients[0]!, keyPrefix });
    await deafFeed.close();
    const a = new RedisJobStore({ redis: clients[0]!, keyPrefix, feed: deafFeed });
    const b = new RedisJobStore({ redis: clients[1]!, keyPrefix });
    try {
      await a.insert(newJob({ id: 'j', type: 't', input: 1, runner: 'external', nowMs: 0 }));
      await b.update('j', (current) => startJob(current, 1));
      // A's remembered state says queued: starting it again must fail on the fresh state, not succeed on the stale one.
      await expect(a.update('j', (current) => startJob(current, 2))).rejects.toSatisfy(IllegalTransitionError.is);
      // A transition its stale memory refuses (succeeding a queued job) is retried on the fresh state.
      await a.insert(newJob({ id: 'k', type: 't', input: 1, runner: 'external', nowMs: 0 }));
      await b.update('k', (current) => startJob(current, 1));
      await b.update('k', (current) => progressJob(current, { percent: 50 }, 2));
      const done = await a.update('k', (current) => succeedJob(current, 'ok', 3, { retentionMs: 1000 }));
      expect(done?.snapshot).toMatchObject({ status: 'succeeded', version: 4, progress: { percent: 50 } });
      // A no-op on a stale state is confirmed on a fresh read too.
      await b.update('j', (current) => progressJob(current, { percent: 10 }, 4));
      expect((await a.update('j', (current) => current))?.snapshot.version).toBe(3);
    } finally {
      await a.close();
      await b.close();
      for (const client of clients) client.disconnect();
    }
  });

  it('announces a large job by version only, and listeners can re-read it', async () => {
    const keyPrefix = nextPrefix();
    const clients = [server.client(), server.client()];
    const a = new RedisJobStore({ redis: clients[0]!, keyPrefix, inlineLimit: 64 });
    const b = new RedisJobStore({ redis: clients[1]!, keyPrefix });
    try {
      await b.feed.ready();
      const seen: JobChange[] = [];
      b.onChange((change) => seen.push(change));
      await a.insert(newJob({ id: 'big', type: 't', input: 'x'.repeat(1000), runner: 'external', nowMs: 0 }));
      await until(() => seen.length === 1);
      expect(seen[0]).toEqual({ id: 'big', version: 1 });
      expect((await b.get('big'))?.input).toBe('x'.repeat(1000));
    } finally {
      await a.close();
      await b.close();
      for (const client of clients) client.disconnect();
    }
  });

  it('announces appends and resets made through one topic store to the other', async () => {
    const { a, b, dispose } = await pair((redis, keyPrefix) => new RedisTopicStore({ redis, keyPrefix }));
    try {
      const seen: TopicChange[] = [];
      b.onChange((change) => seen.push(change));
      await a.append('orders', { key: null, value: 1, timestampMs: 0 }, {});
      await a.append('orders', { key: null, value: 2, timestampMs: 0 }, {});
      const reset = await a.reset('orders');
      await until(() => seen.length === 3);
      expect(seen.map((change) => change.position.highWatermark)).toEqual([1, 2, 0]);
      expect(seen[2]?.position).toEqual(reset);
    } finally {
      await dispose();
    }
  });

  it('announces a deletion to the other process, whose registry drops the topic and ends its reads', async () => {
    const { a, b, dispose } = await pair((redis, keyPrefix) => new RedisTopicStore({ redis, keyPrefix }));
    const onA = new TopicRegistry({ store: a });
    const onB = new TopicRegistry({ store: b });
    try {
      await onA.topic('doomed').append('x');
      const topicOnB = onB.topic('doomed');
      const held = topicOnB.read(1, { waitMs: 20_000 }).catch((error: unknown) => error);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await onA.delete('doomed')).toBe(true);
      expect(await held).toMatchObject({ code: 'topic-not-found' });
      expect(onB.get('doomed')).toBeUndefined();
      expect((await onB.topic('doomed').position()).highWatermark).toBe(0);
    } finally {
      await onA.close();
      await onB.close();
      await dispose();
    }
  });

  it('serves identical concurrent reads with one round trip, and never joins one older than a change', async () => {
    const redis = server.client();
    const admin = server.client();
    const store = new RedisTopicStore({ redis, keyPrefix: nextPrefix() });
    const scripts = async (): Promise<number> => {
      const line = (await admin.info('commandstats')).split('\n').find((l) => l.startsWith('cmdstat_evalsha:'));
      return Number(/calls=(\d+)/.exec(line ?? '')?.[1] ?? 0);
    };
    try {
      await store.feed.ready(); // its first re-check would otherwise count as a read below
      await store.append('t', { key: null, value: 0, timestampMs: 0 }, {});
      let before = await scripts();
      const first = await Promise.all(Array.from({ length: 50 }, () => store.read('t', 0, 10, {})));
      expect((await scripts()) - before).toBe(1);
      expect(first.every((result) => result.records.length === 1)).toBe(true);

      // A read in flight when an append lands is not shared with reads started after it.
      const early = store.read('t', 0, 10, {});
      await store.append('t', { key: null, value: 1, timestampMs: 0 }, {});
      before = await scripts();
      const late = await Promise.all(Array.from({ length: 50 }, () => store.read('t', 0, 10, {})));
      expect((await scripts()) - before).toBe(1);
      expect(late.every((result) => result.records.length === 2)).toBe(true);
      expect((await early).records.length).toBeGreaterThanOrEqual(1);
    } finally {
      await store.close();
      redis.disconnect();
      admin.disconnect();
    }
  });

  it('shares one subscriber connection between a job store and a topic store', async () => {
    const redis = server.client();
    const keyPrefix = nextPrefix();
    const feed = new RedisChangeFeed({ redis, keyPrefix });
    const jobs = new RedisJobStore({ redis, feed, keyPrefix });
    const topics = new RedisTopicStore({ redis, feed, keyPrefix });
    try {
      await feed.ready();
      const [, count] = (await redis.pubsub('NUMSUB', feed.channel)) as [string, number];
      expect(count).toBe(1);
      expect(() => new RedisJobStore({ redis, feed, keyPrefix: 'other:' })).toThrow(/keyPrefix/);
    } finally {
      await jobs.close();
      await topics.close();
      await feed.close();
      redis.disconnect();
    }
  });

  it('validates its options', () => {
    expect(() => new RedisJobStore({ redis: {} as Redis })).toThrow(/ioredis client/);
    const redis = server.client({ lazyConnect: true });
    expect(() => new RedisJobStore({ redis, commandTimeoutMs: 0 })).toThrow(/commandTimeoutMs/);
    expect(() => new RedisTopicStore({ redis, trackLimit: 1.5 })).toThrow(/trackLimit/);
    expect(() => new RedisTopicStore({ redis, keyPrefix: '' })).toThrow(/keyPrefix/);
    redis.disconnect();
  });
});

describe('RedisJobStore safety TTLs', () => {
  it('gives a held job a TTL of its lease plus ttlGraceMs, pushed on by renewals, and none once nobody holds it', async () => {
    const keyPrefix = nextPrefix();
    const redis = server.client();
    const store = new RedisJobStore({ redis, keyPrefix, ttlGraceMs: 60_000 });
    try {
      const now = Date.now();
      await store.insert(newJob({ id: 'held', type: 't', input: null, runner: 'handler', nowMs: now }));
      expect(await redis.pttl(`${keyPrefix}job:held`)).toBe(-1); // queued for workers: nobody's yet
      await store.update('held', (current) => startJob(current, now, { holder: 'h', expiresAtMs: now + 10_000 }));
      const first = await redis.pttl(`${keyPrefix}job:held`);
      expect(first).toBeGreaterThan(65_000);
      expect(first).toBeLessThanOrEqual(70_000);
      await store.renewLeases('h', ['held'], now + 40_000);
      expect(await redis.pttl(`${keyPrefix}job:held`)).toBeGreaterThan(95_000);
      await store.update('held', (current) => succeedJob(current, 1, now, { retentionMs: 5000 }));
      const finished = await redis.pttl(`${keyPrefix}job:held`);
      expect(finished).toBeGreaterThan(60_000);
      expect(finished).toBeLessThanOrEqual(65_000);
      expect(await redis.zcard(`${keyPrefix}jobs:leases`)).toBe(0);
    } finally {
      await store.close();
      redis.disconnect();
    }
  });
});

describe('Redis stores during an outage', () => {
  it('fail writes fast with a retryable error, answer reads from the last known state, and recover', async () => {
    const own = await startRedis({ persistent: true });
    const redis = own.client({ maxRetriesPerRequest: 1, retryStrategy: () => 100 });
    const jobs = new RedisJobStore({ redis, commandTimeoutMs: 500 });
    const topics = new RedisTopicStore({ redis, feed: jobs.feed, commandTimeoutMs: 500 });
    try {
      await jobs.feed.ready();
      await jobs.insert(newJob({ id: 'j', type: 't', input: 1, runner: 'external', nowMs: 0 }));
      await topics.append('t', { key: null, value: 'kept', timestampMs: 0 }, {});
      await own.kill();
      await until(() => redis.status !== 'ready');

      const started = Date.now();
      const write = await jobs.update('j', (current) => startJob(current, 1)).catch((error: unknown) => error);
      expect(StoreUnavailableError.is(write)).toBe(true);
      expect((write as StoreUnavailableError).retryable).toBe(true);
      expect((write as StoreUnavailableError).code).toBe('overloaded');
      const append = await topics.append('t', { key: null, value: 'x', timestampMs: 0 }, {}).catch((e: unknown) => e);
      expect(StoreUnavailableError.is(append)).toBe(true);
      expect(Date.now() - started).toBeLessThan(1500);

      expect((await jobs.get('j'))?.snapshot.version).toBe(1);
      expect(await topics.position('t', {})).toMatchObject({ highWatermark: 1 });
      expect((await topics.read('t', 1, 10, {})).records).toEqual([]);
      await expect(topics.read('t', 0, 10, {})).rejects.toSatisfy(StoreUnavailableError.is);
      await expect(jobs.get('unknown')).rejects.toSatisfy(StoreUnavailableError.is);

      await own.restart();
      await until(() => redis.status === 'ready' && jobs.feed.subscribed, 10_000);
      expect((await jobs.update('j', (current) => startJob(current, 1)))?.snapshot.version).toBe(2);
      expect((await topics.read('t', 0, 10, {})).records.map((r) => r.record.value)).toEqual(['kept']);
    } finally {
      await topics.close();
      await jobs.close();
      await own.stop();
    }
  });

  it('re-announces what moved while its subscription was down', async () => {
    const keyPrefix = nextPrefix();
    const writerClient = server.client();
    const readerClient = server.client();
    const writer = new RedisJobStore({ redis: writerClient, keyPrefix });
    const reader = new RedisJobStore({ redis: readerClient, keyPrefix });
    try {
      await reader.feed.ready();
      await writer.insert(newJob({ id: 'j', type: 't', input: 1, runner: 'external', nowMs: 0 }));
      expect((await reader.get('j'))?.snapshot.version).toBe(1);
      const seen: JobChange[] = [];
      reader.onChange((change) => seen.push(change));
      const before = reader.feed.subscriptions;
      // Drop every subscriber connection server-side; the feed reconnects with backoff and resubscribes.
      await writerClient.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      await writer.update('j', (current) => startJob(current, 1));
      await until(() => reader.feed.subscriptions > before && seen.some((change) => change.version === 2), 10_000);
      expect(seen.find((change) => change.version === 2)?.id).toBe('j');
    } finally {
      await writer.close();
      await reader.close();
      writerClient.disconnect();
      readerClient.disconnect();
    }
  });
});
