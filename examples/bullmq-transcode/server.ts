/**
 * Transcoding on BullMQ: the page submits a video to transcode, a BullMQ queue holds the job, worker
 * processes (worker.ts, plain BullMQ code) do the work and report progress, and the page follows the
 * job over pollkit's protocol — short polling or the job's SSE stream — from whichever server
 * instance it reaches. Cancel stops the running attempt in the worker's process.
 *
 * Run it (with a Redis on REDIS_URL, default redis://127.0.0.1:6379):
 *
 * ```sh
 * node --import tsx examples/bullmq-transcode/server.ts    # then open http://127.0.0.1:3000/
 * node --import tsx examples/bullmq-transcode/worker.ts    # as many as you like, in any terminal
 * ```
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { BullmqJobStore } from 'pollkit/bullmq';
import { createNodeListener } from 'pollkit/node';
import { InvalidArgumentError, JobRegistry, PollkitHandler } from 'pollkit/server';
import { type ListenOptions, type Running, isMain, listen, pageRoute } from '../shared/serve.js';

/** Options for {@link start}. */
export interface TranscodeServerOptions extends ListenOptions {
  /** Where Redis is. Default `REDIS_URL`, else `redis://127.0.0.1:6379`. */
  readonly redisUrl?: string;
  /** The BullMQ queue. Default `"transcode"`. */
  readonly queue?: string;
}

/** What the page submits: a source and the renditions wanted. */
export interface TranscodeInput {
  readonly source: string;
  readonly renditions: readonly string[];
}

/** What a finished transcode returns. */
export interface TranscodeResult {
  readonly outputs: readonly string[];
  readonly worker: string;
}

/** Rejects input that is not a {@link TranscodeInput}; the client gets `400 invalid-input`. */
export function validateInput(input: unknown): TranscodeInput {
  const value = input as Partial<TranscodeInput> | null;
  if (typeof value?.source !== 'string' || value.source.length === 0) {
    throw new InvalidArgumentError('source must be a non-empty string', 'source');
  }
  const renditions = value.renditions ?? ['720p'];
  if (!Array.isArray(renditions) || renditions.length === 0 || renditions.some((r) => !/^\d{3,4}p$/.test(String(r)))) {
    throw new InvalidArgumentError('renditions must be a list like ["480p", "1080p"]', 'renditions');
  }
  return { source: value.source, renditions };
}

/**
 * Starts one server instance; run as many as you like on one queue.
 *
 * @example
 * ```ts
 * const { url, close } = await start({ port: 0, redisUrl: 'redis://127.0.0.1:6379' });
 * console.log(`open ${url}`);
 * ```
 */
export async function start(options: TranscodeServerOptions = {}): Promise<Running> {
  const redisUrl = options.redisUrl ?? process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
  const name = options.queue ?? 'transcode';
  // BullMQ's connections wait out an outage; pollkit's own fails fast, so clients get 503 + Retry-After.
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  const eventsConnection = connection.duplicate();
  const queue = new Queue(name, { connection });
  const events = new QueueEvents(name, { connection: eventsConnection });
  const store = new BullmqJobStore({
    queue,
    events,
    redis,
    jobOptions: {
      transcode: { attempts: 3, backoff: { type: 'exponential', delay: 500 }, removeOnComplete: { age: 3600 } },
    },
  });
  const jobs = new JobRegistry({ store }).accept('transcode', { validate: validateInput });
  const handler = new PollkitHandler({ jobs });
  const page = pageRoute(new URL('.', import.meta.url));
  const servePage = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!(await page(req, res))) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  };
  const server = await listen(
    createNodeListener(handler, {
      onUnmatched: (req, res) => {
        servePage(req, res).catch((error: unknown) => {
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(String(error));
        });
      },
    }),
    options,
  );
  await events.waitUntilReady();
  return {
    url: server.url,
    close: async () => {
      await handler.close();
      await jobs.close();
      await store.close();
      await server.close();
      await events.close();
      await queue.close();
      // BullMQ leaves connections it was given open; these are ours to close.
      redis.disconnect();
      eventsConnection.disconnect();
      connection.disconnect();
    },
  };
}

if (isMain(import.meta.url)) {
  const { url, close } = await start({ port: Number(process.env['PORT'] ?? 3000) });
  console.log(
    `bullmq-transcode: open ${url} (and start a worker: node --import tsx examples/bullmq-transcode/worker.ts)`,
  );
  process.once('SIGINT', () => void close().then(() => process.exit(0)));
}
