/**
 * `pollkit/bullmq`: the polling protocol served from a BullMQ queue you already run. Submits become
 * `queue.add`, plain BullMQ workers in any process run the jobs, and every pollkit route (status,
 * long poll, SSE, cancel, list) reads them back with versions that only rise. Wake-ups come from one
 * `QueueEvents` per process, so held requests cost Redis nothing while they wait.
 *
 * `bullmq` and `ioredis` are optional peer dependencies, imported here as types only: pass your own
 * `Queue`, `QueueEvents` and client.
 *
 * @example
 * ```ts
 * import { Queue, QueueEvents } from 'bullmq';
 * import { Redis } from 'ioredis';
 * import { JobRegistry, PollkitHandler } from 'pollkit/server';
 * import { BullmqJobStore } from 'pollkit/bullmq';
 *
 * const connection = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null });
 * const store = new BullmqJobStore({
 *   queue: new Queue('media', { connection }),
 *   events: new QueueEvents('media', { connection }),
 *   redis: connection,
 * });
 * const handler = new PollkitHandler({ jobs: new JobRegistry({ store }) });
 * ```
 *
 * @module pollkit/bullmq
 */
export { BullmqJobStore, type BullmqJobStoreOptions } from './job-store.js';
export { CANCELED_THROUGH_POLLKIT, forwardCancellations } from './cancellation.js';
export { type BullmqState, type BullmqView, bullmqProgress } from './fold.js';
