/**
 * One pollkit server process on a BullMQ queue for the multi-process tests: the node adapter over a
 * JobRegistry whose store is a BullmqJobStore, listening on a free port. Callers are
 * `Authorization: Bearer <owner>`.
 *
 * Run as `node --import tsx test/bullmq/helpers/pollkit-process.ts` with REDIS_URL, QUEUE and NAME set.
 *
 * @module
 */
import { createServer } from 'node:http';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { createNodeListener } from '../../../src/adapters/node.js';
import { BullmqJobStore } from '../../../src/bullmq/index.js';
import { PollkitHandler } from '../../../src/server/http/handler.js';
import { getHeader } from '../../../src/server/http/types.js';
import { JobRegistry } from '../../../src/server/jobs/job-registry.js';
import { DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';
import { type Reply, type Request, onRequests } from './ipc.js';

const url = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const name = process.env['QUEUE'] ?? 'media';

// BullMQ's connections wait through an outage; pollkit's command client fails fast instead.
const bullConnection = (): Redis => new Redis(url, { maxRetriesPerRequest: null }).on('error', () => undefined);
const redis = new Redis(url, { maxRetriesPerRequest: 1, connectionName: `pollkit-${process.env['NAME'] ?? ''}` }).on(
  'error',
  () => undefined,
);
const queue = new Queue(name, { connection: bullConnection() });
const events = new QueueEvents(name, { connection: bullConnection() });
queue.on('error', () => undefined);
events.on('error', () => undefined);
const store = new BullmqJobStore({
  queue,
  events,
  redis,
  commandTimeoutMs: 1000,
  jobOptions: {
    flaky: { attempts: 2 },
    doomed: { attempts: 2 },
    slow: { attempts: 3 },
  },
});
const purgatory = new DelayedOperationPurgatory({ name: process.env['NAME'] ?? 'pollkit' });
const jobs = new JobRegistry({ store, purgatory });
for (const type of ['steps', 'flaky', 'doomed', 'slow', 'echo', 'gate']) jobs.accept(type);
const handler = new PollkitHandler({
  jobs,
  waitJitter: 0,
  maxHeldRequests: 100_000,
  maxHeldPerCaller: 100_000,
  heartbeatMs: 60_000,
  authorize: (request) => {
    const owner = /^Bearer (\w+)$/.exec(getHeader(request.headers, 'authorization') ?? '')?.[1];
    return owner === undefined ? undefined : { id: owner, owner };
  },
});
const server = createServer(createNodeListener(handler));

onRequests(async (request: Request): Promise<unknown> => {
  switch (request.cmd) {
    case 'stats':
      return { held: purgatory.numDelayed() };
    case 'close':
      server.closeAllConnections();
      server.close();
      await handler.close();
      await jobs.close();
      await store.close();
      await events.close();
      await queue.close();
      redis.disconnect();
      return true;
    default:
      throw new Error(`unknown command ${request.cmd}`);
  }
});

await events.waitUntilReady();
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.send?.({
    seq: 0,
    ok: true,
    value: { port: typeof address === 'object' && address !== null ? address.port : 0 },
  } satisfies Reply);
});
