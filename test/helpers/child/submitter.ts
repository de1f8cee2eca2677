/**
 * A process that submits jobs to itself at a steady rate, with the documented options but 1 s
 * retention, and reports how many jobs its store held at most. `STORE=redis` (with `REDIS_URL`,
 * `KEY_PREFIX`) uses the Redis stores, anything else the in-memory default. Run under
 * `--unhandled-rejections=strict`; the parent reads one IPC message at the end.
 *
 * @module
 */
import { Redis } from 'ioredis';
import { RedisChangeFeed, RedisJobStore } from '../../../src/redis/index.js';
import { JobRegistry } from '../../../src/server/jobs/job-registry.js';
import type { JobStore } from '../../../src/server/jobs/stores/job-store.js';
import { MemoryJobStore } from '../../../src/server/jobs/stores/memory-job-store.js';

const rate = Number(process.env['RATE'] ?? 5000);
const seconds = Number(process.env['SECONDS'] ?? 20);
const keyPrefix = process.env['KEY_PREFIX'] ?? 'pollkit:';
const redis = process.env['STORE'] === 'redis' ? new Redis(process.env['REDIS_URL']!) : undefined;
const feed = redis === undefined ? undefined : new RedisChangeFeed({ redis, keyPrefix });
const memory = new MemoryJobStore();
const store: JobStore = redis === undefined ? memory : new RedisJobStore({ redis, feed: feed!, keyPrefix });
await feed?.ready();

// Enough room for a second's submits in the run queue: the point is the store, not admission.
const jobs = new JobRegistry({ store, retentionMs: 1000, sweepIntervalMs: 1000, concurrency: 64, maxQueued: rate * 2 });
jobs.define('noop', () => null);

/** Jobs the store holds now, in any state. */
const held = async (): Promise<number> =>
  redis === undefined ? memory.size : await redis.zcard(`${keyPrefix}jobs:all`);

let submitted = 0;
let refused = 0;
let most = 0;
const sampler = setInterval(() => {
  void held().then((count) => {
    most = Math.max(most, count);
  });
}, 100);
const started = performance.now();
while (performance.now() - started < seconds * 1000) {
  const due = Math.floor(((performance.now() - started) / 1000) * rate);
  const batch: Promise<unknown>[] = [];
  for (; submitted < due; submitted++) batch.push(jobs.submit('noop', null).catch(() => refused++));
  await Promise.all(batch);
  await new Promise((resolve) => setTimeout(resolve, 5));
}
const elapsed = (performance.now() - started) / 1000;
await jobs.onIdle();
// Everything finished: within retention + one sweep the store is empty again.
await new Promise((resolve) => setTimeout(resolve, 2500));
clearInterval(sampler);
const left = await held();
process.send?.({ submitted, refused, rate: submitted / elapsed, most, left });
await jobs.close();
await feed?.close();
redis?.disconnect();
process.disconnect?.();
