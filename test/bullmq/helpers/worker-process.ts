/**
 * A BullMQ worker process for the multi-process tests: a plain `Worker` whose processor is ordinary
 * BullMQ code (it knows nothing of pollkit), plus the one line that forwards pollkit's cancels to it.
 * Every start, completion and abort is appended to the Redis list `log:<queue>` as
 * `<worker>:<event>:<job id>`, so a test can tell which worker ran what, and how often.
 *
 * Job names: `echo` (returns its input), `steps` (progress 25, 50, 75, 100 every STEP_MS, then a result), `flaky` (fails its
 * first attempt), `doomed` (fails every attempt), `slow` (progress 10, then waits `input.ms`,
 * stopping when its signal aborts; SLOW_MS overrides it).
 *
 * Run as `node --import tsx test/bullmq/helpers/worker-process.ts` with REDIS_URL, QUEUE and NAME set.
 *
 * @module
 */
import { type Job, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { forwardCancellations } from '../../../src/bullmq/index.js';
import { type Reply, onRequests } from './ipc.js';

const url = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const queueName = process.env['QUEUE'] ?? 'media';
const name = process.env['NAME'] ?? 'worker';
const stepMs = Number(process.env['STEP_MS'] ?? 150);
const connection = (): Redis => new Redis(url, { maxRetriesPerRequest: null }).on('error', () => undefined);
const log = connection();
const note = (event: string, job: Job): Promise<number> => log.rpush(`log:${queueName}`, `${name}:${event}:${job.id}`);

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(new Error(`aborted: ${String(signal.reason)}`));
      },
      { once: true },
    );
  });
}

// The user's processor, as it would be without pollkit.
async function processor(job: Job, _token?: string, signal?: AbortSignal): Promise<unknown> {
  if (job.name === 'echo') return job.data;
  await note('start', job);
  try {
    switch (job.name) {
      case 'steps':
        for (const percent of [25, 50, 75, 100]) {
          await sleep(stepMs, signal);
          await job.updateProgress(percent);
        }
        await note('done', job);
        return { steps: 4, worker: name };
      case 'flaky':
        if (job.attemptsMade === 0) throw new Error('first attempt fails');
        await note('done', job);
        return 'second time lucky';
      case 'doomed':
        throw new Error(`attempt ${job.attemptsMade + 1} fails`);
      case 'slow':
        await job.updateProgress({ percent: 10, message: 'working' });
        await sleep(Number(process.env['SLOW_MS'] ?? (job.data as { ms?: number }).ms ?? 2000), signal);
        await note('done', job);
        return { worker: name };
      default:
        throw new Error(`no processor for ${job.name}`);
    }
  } catch (error) {
    if (signal?.aborted === true) await note('aborted', job);
    throw error;
  }
}

const worker = new Worker(queueName, processor, {
  connection: connection(),
  concurrency: Number(process.env['CONCURRENCY'] ?? 4),
  // Short locks, so a killed worker's job is found stalled within a second or two.
  lockDuration: Number(process.env['LOCK_MS'] ?? 30_000),
  stalledInterval: Number(process.env['STALLED_MS'] ?? 30_000),
});
worker.on('error', () => undefined);
const events = new QueueEvents(queueName, { connection: connection() });
events.on('error', () => undefined);
const stopForwarding = forwardCancellations(worker, events);

onRequests(async (request) => {
  if (request.cmd !== 'close') throw new Error(`unknown command ${request.cmd}`);
  stopForwarding();
  await worker.close();
  await events.close();
  log.disconnect();
  return true;
});

await worker.waitUntilReady();
await events.waitUntilReady();
process.send?.({ seq: 0, ok: true, value: { name } } satisfies Reply);
