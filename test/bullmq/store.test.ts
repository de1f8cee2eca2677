import { Queue, QueueEvents } from 'bullmq';
import { afterAll, beforeAll } from 'vitest';
import { BullmqJobStore } from '../../src/bullmq/index.js';
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

describeJobStore('bullmq', async () => {
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
});
