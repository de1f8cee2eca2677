/**
 * A transcoding worker: a plain BullMQ `Worker`, written as it would be without pollkit. It pretends
 * to transcode each rendition in slices, reporting progress with `job.updateProgress` and stopping
 * when its `signal` aborts. The one pollkit line, `forwardCancellations`, lets a cancel made through
 * any server instance reach the attempt running here.
 *
 * Run it: `node --import tsx examples/bullmq-transcode/worker.ts` (REDIS_URL, QUEUE, WORKER_NAME,
 * SLICE_MS optional).
 *
 * @module
 */
import { type Job, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { forwardCancellations } from 'pollkit/bullmq';
import { isMain } from '../shared/serve.js';
import type { TranscodeInput, TranscodeResult } from './server.js';

/** Options for {@link startWorker}. */
export interface TranscodeWorkerOptions {
  /** Where Redis is. Default `REDIS_URL`, else `redis://127.0.0.1:6379`. */
  readonly redisUrl?: string;
  /** The BullMQ queue. Default `"transcode"`. */
  readonly queue?: string;
  /** The name this worker signs its results with. Default `"worker-<pid>"`. */
  readonly name?: string;
  /** How long one slice of work takes, in milliseconds. Default `200`. */
  readonly sliceMs?: number;
}

const SLICES_PER_RENDITION = 5;

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(new Error(`transcode aborted: ${String(signal.reason)}`));
      },
      { once: true },
    );
  });
}

/**
 * Starts a worker; resolves once it takes jobs. `close()` lets the running attempts finish.
 *
 * @example
 * ```ts
 * const worker = await startWorker({ name: 'w1' });
 * process.once('SIGTERM', () => void worker.close());
 * ```
 */
export async function startWorker(options: TranscodeWorkerOptions = {}): Promise<{ close(): Promise<void> }> {
  const redisUrl = options.redisUrl ?? process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
  const queue = options.queue ?? 'transcode';
  const name = options.name ?? `worker-${process.pid}`;
  const sliceMs = options.sliceMs ?? 200;
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });

  const transcode = async (
    job: Job<TranscodeInput>,
    _token?: string,
    signal?: AbortSignal,
  ): Promise<TranscodeResult> => {
    const { source, renditions } = job.data;
    const total = renditions.length * SLICES_PER_RENDITION;
    let done = 0;
    for (const rendition of renditions) {
      for (let slice = 0; slice < SLICES_PER_RENDITION; slice++) {
        await pause(sliceMs, signal);
        done++;
        await job.updateProgress({
          percent: Math.round((done / total) * 100),
          message: `${rendition}: slice ${slice + 1}`,
        });
      }
    }
    return { outputs: renditions.map((rendition) => `${source}.${rendition}.mp4`), worker: name };
  };

  const worker = new Worker(queue, transcode, { connection, concurrency: 4 });
  const eventsConnection = connection.duplicate();
  const events = new QueueEvents(queue, { connection: eventsConnection });
  const stop = forwardCancellations(worker, events);
  await worker.waitUntilReady();
  await events.waitUntilReady();
  return {
    close: async () => {
      stop();
      await worker.close();
      await events.close();
      // BullMQ leaves connections it was given open; these are ours to close.
      eventsConnection.disconnect();
      connection.disconnect();
    },
  };
}

if (isMain(import.meta.url)) {
  const worker = await startWorker({
    queue: process.env['QUEUE'] ?? 'transcode',
    ...(process.env['WORKER_NAME'] === undefined ? {} : { name: process.env['WORKER_NAME'] }),
    ...(process.env['SLICE_MS'] === undefined ? {} : { sliceMs: Number(process.env['SLICE_MS']) }),
  });
  console.log('bullmq-transcode worker: ready');
  process.send?.('ready');
  const stop = (): void => void worker.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
