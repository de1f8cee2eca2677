/**
 * The protocol conformance suite on the BullMQ backend: every job of the suite is a BullMQ job run by
 * a real `Worker` on a real redis-server, served back through a `BullmqJobStore`.
 */
import { Queue, QueueEvents, Worker } from 'bullmq';
import { afterAll, beforeAll } from 'vitest';
import { BullmqJobStore, forwardCancellations } from '../../src/bullmq/index.js';
import { JobRegistry } from '../../src/server/jobs/job-registry.js';
import type { JobBackend } from '../conformance/fixture.js';
import { describeConformance } from '../conformance/suite.js';
import { startNodeServer } from '../helpers/http-server.js';
import { type RedisServer, startRedis } from '../redis/helpers/redis-server.js';

let server: RedisServer;
let queues = 0;

beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await server.stop();
});

const bullmqJobs: JobBackend = async (purgatory) => {
  const name = `http-${++queues}`;
  const connection = server.client({ maxRetriesPerRequest: null });
  // Finished jobs keep an age, so they carry an expiry like the in-memory registry's.
  const queue = new Queue(name, { connection, defaultJobOptions: { removeOnComplete: { age: 3600 } } });
  const events = new QueueEvents(name, { connection: server.client({ maxRetriesPerRequest: null }) });
  await events.waitUntilReady();
  const redis = server.client();
  const store = new BullmqJobStore({
    queue,
    events,
    redis,
    // Jobs made with registry.create('external') are driven through pollkit's external-worker API,
    // so they wait in BullMQ's delayed set where no worker takes them.
    jobOptions: { external: { delay: 86_400_000 } },
  });
  const jobs = new JobRegistry({ purgatory, store })
    .accept('echo')
    .accept('number', {
      validate: (input) => {
        if (typeof input !== 'number') throw new TypeError('input must be a number');
        return input;
      },
    })
    .accept('hold');
  const releases = new Map<string, (result: unknown) => void>();
  const worker = new Worker(
    name,
    async (job, _token, signal) => {
      if (job.name !== 'hold') return job.data;
      const held = new Promise((resolve, reject) => {
        releases.set(job.id!, resolve);
        signal?.addEventListener('abort', () => reject(new Error(String(signal.reason))), { once: true });
      });
      await job.updateProgress({ percent: 10, message: 'started' });
      return await held;
    },
    { connection: server.client({ maxRetriesPerRequest: null }) },
  );
  await worker.waitUntilReady();
  const stopForwarding = forwardCancellations(worker, events);
  return {
    jobs,
    release(id, result) {
      const resolve = releases.get(id);
      if (resolve === undefined) throw new Error(`job ${id} is not running`);
      releases.delete(id);
      resolve(result);
    },
    async drained() {
      for (;;) {
        const counts = await queue.getJobCounts('waiting', 'active', 'prioritized');
        if (Object.values(counts).every((count) => count === 0)) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    async close() {
      stopForwarding();
      await worker.close(true);
      await store.close();
      await events.close();
      await queue.obliterate({ force: true });
      await queue.close();
      redis.disconnect();
    },
  };
};

describeConformance('bullmq backend (node:http)', startNodeServer, bullmqJobs);
