/**
 * examples/bullmq-transcode end to end without a browser: two server instances in this process, two
 * worker processes (the example's worker.ts, forked as a user would run it), a real redis-server.
 * The page itself is driven in Chromium by test/browser/examples.test.ts.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { JobClient, type JobSnapshot, pollJob } from 'pollkit/client';
import { type TranscodeResult, start } from '../../examples/bullmq-transcode/server.js';
import type { Running } from '../../examples/shared/serve.js';
import { type RedisServer, startRedis } from '../redis/helpers/redis-server.js';

const workerScript = fileURLToPath(new URL('../../examples/bullmq-transcode/worker.ts', import.meta.url));
let redis: RedisServer;
let queues = 0;
const cleanup: (() => Promise<void>)[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close();
});

async function worker(name: string, queue: string, sliceMs = 30): Promise<ChildProcess> {
  const child = fork(workerScript, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, REDIS_URL: redis.url, QUEUE: queue, WORKER_NAME: name, SLICE_MS: String(sliceMs) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  cleanup.push(async () => {
    child.kill('SIGTERM');
    await exited;
  });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`worker ${name} exited with ${String(code)}`)));
  });
  return child;
}

async function servers(count: number, queue: string): Promise<Running[]> {
  const started = await Promise.all(Array.from({ length: count }, () => start({ redisUrl: redis.url, queue })));
  for (const server of started) cleanup.push(() => server.close());
  return started;
}

describe('examples/bullmq-transcode', () => {
  it('serves its page, and two workers transcode jobs submitted through either instance', async () => {
    const queue = `transcode-${++queues}`;
    const [a, b] = await servers(2, queue);
    await worker('w1', queue);
    await worker('w2', queue);
    const page = await fetch(a!.url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<progress id="bar"');
    expect((await fetch(new URL('app.js', a!.url))).status).toBe(200);

    const submitted = await Promise.all(
      Array.from({ length: 8 }, (_, n) =>
        new JobClient({ baseUrl: (n % 2 === 0 ? a! : b!).url }).submit<TranscodeResult>('transcode', {
          source: `clip-${n}.mov`,
          renditions: ['480p', '1080p'],
        }),
      ),
    );
    const finished = await Promise.all(
      submitted.map(async ({ job }, n) => {
        // Followed through the other instance than the one that took the submit.
        const poller = pollJob<TranscodeResult>(`${(n % 2 === 0 ? b! : a!).url}pollkit/jobs/${job.id}`, {
          interval: 50,
        });
        const percents: number[] = [];
        poller.on('update', (state: JobSnapshot) => percents.push(state.progress?.percent ?? 0));
        const done = await poller.result();
        return { done, percents };
      }),
    );
    for (const [n, { done, percents }] of finished.entries()) {
      expect(done.status).toBe('succeeded');
      expect(done.result?.outputs).toEqual([`clip-${n}.mov.480p.mp4`, `clip-${n}.mov.1080p.mp4`]);
      expect(percents).toEqual([...percents].sort((x, y) => x - y));
    }
    expect(new Set(finished.map(({ done }) => done.result?.worker))).toEqual(new Set(['w1', 'w2']));
  });

  it('refuses bad input with 400 and cancels a running transcode', async () => {
    const queue = `transcode-${++queues}`;
    const [a] = await servers(1, queue);
    await worker('w1', queue, 200);
    const client = new JobClient({ baseUrl: a!.url });
    await expect(client.submit('transcode', { source: '' })).rejects.toMatchObject({ code: 'invalid-input' });
    const { job } = await client.submit<TranscodeResult>('transcode', { source: 'long.mov', renditions: ['2160p'] });
    let state: JobSnapshot = job;
    while (state.progress === null) {
      const answer = await client.wait(job.id, { version: state.version, waitSeconds: 10 });
      if (answer.changed) state = answer.job;
    }
    const canceled = await client.cancel(job.id);
    expect(canceled).toMatchObject({ status: 'canceled', error: { code: 'canceled' } });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const later = await client.get(job.id);
    expect(later.changed && later.job).toMatchObject({ status: 'canceled', version: canceled.version });
  });
});
