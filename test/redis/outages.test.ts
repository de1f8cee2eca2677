/**
 * The documented Redis setup (docs/scaling-out.md, copied verbatim, no `onError`) when Redis goes away
 * while a job finishes and while the retention sweep runs: the processes live, the job ends
 * `succeeded` once Redis is back, and a long poll held on the other instance wakes.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JobSnapshot } from '../../src/core/protocol.js';
import { RedisJobStore } from '../../src/redis/index.js';
import { newJob, startJob, succeedJob } from '../../src/server/jobs/job-state.js';
import { type DocsServer, removeDocsExample, startDocsServer, writeDocsExample } from './helpers/docs-example.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

let redis: RedisServer;
const servers: DocsServer[] = [];

beforeAll(async () => {
  writeDocsExample();
  // Append-only, as the guide recommends: what was written before the outage is there after it.
  redis = await startRedis({ persistent: true });
});
afterAll(async () => {
  await redis.stop();
  removeDocsExample();
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.kill()));
  // A test that failed mid-outage leaves Redis down; the next one starts with it up.
  await redis.restart();
});

async function start(): Promise<DocsServer> {
  const server = await startDocsServer(redis.url);
  servers.push(server);
  return server;
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('the documented Redis setup during a Redis outage', () => {
  it('keeps running when Redis dies mid-finish, and the job ends succeeded once Redis is back', async () => {
    const [a, b] = [await start(), await start()];
    const rendering = a.rendering();
    const submitted = await fetch(`${a.url}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'thumbnail', input: { image: 'cat.png' } }),
    });
    expect(submitted.status).toBe(202);
    const job = (await submitted.json()) as JobSnapshot;
    expect(await rendering).toEqual({ image: 'cat.png' });
    // Held on the other instance through the whole outage.
    const held = fetch(`${b.url}/jobs/${job.id}?version=2&wait=30`).then(
      async (response) => (await response.json()) as JobSnapshot,
    );
    held.catch(() => undefined); // awaited below; a failure before that must not go unhandled
    await new Promise((resolve) => setTimeout(resolve, 300));

    await redis.kill();
    a.release({ url: '/thumbs/cat.png' });
    // The result cannot be stored now: the process keeps it and logs why, and lives.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect({ a: a.alive(), b: b.alive() }).toEqual({ a: true, b: true });
    expect(a.stderr()).toContain(`finish of job ${job.id} failed`);

    await redis.restart();
    const woken = await held;
    expect(woken).toMatchObject({ id: job.id, status: 'succeeded', result: { url: '/thumbs/cat.png' } });
    const seen = (await (await fetch(`${a.url}/jobs/${job.id}`)).json()) as JobSnapshot;
    expect(seen.status).toBe('succeeded');
    expect(a.alive() && b.alive()).toBe(true);
  });

  it('keeps running when Redis dies mid-sweep, and sweeps once Redis is back', async () => {
    const [a, b] = [await start(), await start()];
    // A job that expires in 2.5 s: both instances learn of it and plan a sweep for then.
    const client = redis.client();
    const store = new RedisJobStore({ redis: client });
    try {
      await store.feed.ready();
      const now = Date.now();
      const expiring = succeedJob(
        startJob(newJob({ id: 'expiring', type: 'thumbnail', input: null, runner: 'external', nowMs: now }), now),
        null,
        now,
        { retentionMs: 2500 },
      );
      await store.insert(expiring);
      // The notice (inside the insert's script) reaches both instances within milliseconds; a kill
      // right after the insert could take it down with Redis.
      await new Promise((resolve) => setTimeout(resolve, 500));
      await redis.kill();
      // Both sweeps come due during the outage and fail; nobody crashes, and both say why.
      await new Promise((resolve) => setTimeout(resolve, 4000));
      expect({ a: a.alive(), b: b.alive() }).toEqual({ a: true, b: true });
      expect(a.stderr()).toContain('sweep failed');
      expect(b.stderr()).toContain('sweep failed');
      await redis.restart();
      const admin = redis.client();
      await until(
        async () => (await admin.exists('pollkit:job:expiring')) === 0,
        10_000,
        'the sweep to remove the job',
      );
      admin.disconnect();
      expect(a.alive() && b.alive()).toBe(true);
    } finally {
      await store.close();
      client.disconnect();
    }
  });
});
