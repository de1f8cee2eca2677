import { Queue, QueueEvents, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullmqJobStore, type BullmqJobStoreOptions, forwardCancellations } from '../../src/bullmq/index.js';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { newJob } from '../../src/server/jobs/job-state.js';
import { describeJobStore } from '../redis/store-conformance.js';
import { type RedisServer, startRedis } from '../redis/helpers/redis-server.js';

let server: RedisServer;
let queues = 0;

beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await server.stop();
});

describeJobStore(
  'bullmq',
  async () => {
    const name = `conformance-${++queues}`;
    const connection = server.client({ maxRetriesPerRequest: null });
    const queue = new Queue(name, { connection });
    const events = new QueueEvents(name, { connection: server.client({ maxRetriesPerRequest: null }) });
    await events.waitUntilReady();
    const redis = server.client();
    const store = new BullmqJobStore({ queue, events, redis });
    return {
      store,
      dispose: async () => {
        await store.close();
        await events.close();
        await queue.close();
        redis.disconnect();
      },
    };
  },
  { leases: false, releasesRetryableKeys: false },
);

describe('BullmqJobStore and forwardCancellations options', () => {
  it('refuse what is not a queue, its QueueEvents or a client, with the option named', async () => {
    const connection = server.client({ maxRetriesPerRequest: null });
    const queue = new Queue('options-a', { connection });
    const other = new QueueEvents('options-b', {
      connection: server.client({ maxRetriesPerRequest: null }),
      autorun: false,
    });
    const events = new QueueEvents('options-a', {
      connection: server.client({ maxRetriesPerRequest: null }),
      autorun: false,
    });
    const redis = server.client();
    const worker = new Worker('options-a', async () => 1, { connection, autorun: false });
    try {
      const make = (options: Partial<BullmqJobStoreOptions>) => () =>
        new BullmqJobStore({ queue, events, redis, ...options } as BullmqJobStoreOptions);
      expect(make({ queue: {} as Queue })).toThrow(expect.objectContaining({ argument: 'queue' }));
      expect(make({ events: null as unknown as QueueEvents })).toThrow(expect.objectContaining({ argument: 'events' }));
      expect(make({ events: other })).toThrow(expect.objectContaining({ argument: 'events' }));
      expect(make({ redis: {} as never })).toThrow(expect.objectContaining({ argument: 'redis' }));
      expect(make({ lostAfterMs: 0 })).toThrow(expect.objectContaining({ argument: 'lostAfterMs' }));
      expect(make({ jobOptions: 3 as never })).toThrow(expect.objectContaining({ argument: 'jobOptions' }));
      await make({})().close();
      expect(() => forwardCancellations({} as Worker, events)).toThrow(expect.objectContaining({ argument: 'worker' }));
      expect(() => forwardCancellations(worker, other)).toThrow(expect.objectContaining({ argument: 'events' }));
      forwardCancellations(worker, events)();
    } finally {
      await worker.close();
      await Promise.all([queue.close(), other.close(), events.close()]);
      redis.disconnect();
    }
  });

  it('refuses job ids BullMQ cannot take', async () => {
    const connection = server.client({ maxRetriesPerRequest: null });
    const queue = new Queue('options-ids', { connection });
    const events = new QueueEvents('options-ids', { connection: server.client({ maxRetriesPerRequest: null }) });
    const redis = server.client();
    const store = new BullmqJobStore({ queue, events, redis });
    try {
      for (const id of ['42', 'a:b']) {
        const job = newJob({ id, type: 't', input: 1, runner: 'external', nowMs: Date.now() });
        await expect(store.insert(job)).rejects.toSatisfy(InvalidArgumentError.is);
      }
    } finally {
      await store.close();
      await Promise.all([queue.close(), events.close()]);
      redis.disconnect();
    }
  });
});
