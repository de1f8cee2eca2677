/**
 * pollkit servers and BullMQ workers as separate processes on one real redis-server: submits through
 * one server, progress from a worker elsewhere, long polls and SSE on other servers.
 */
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JobSnapshot } from '../../src/core/protocol.js';
import { openSse } from '../helpers/sse-client.js';
import { type RedisServer, startRedis } from '../redis/helpers/redis-server.js';
import { type Child, forkChild } from './helpers/ipc.js';

const pollkitScript = fileURLToPath(new URL('./helpers/pollkit-process.ts', import.meta.url));
const workerScript = fileURLToPath(new URL('./helpers/worker-process.ts', import.meta.url));

let redis: RedisServer;
let queues = 0;
const running: Child[] = [];

beforeAll(async () => {
  redis = await startRedis({ persistent: true });
});
afterAll(async () => {
  await redis.stop();
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((child) => child.stop()));
});

interface Cluster {
  readonly queue: string;
  /** pollkit server base URLs by name. */
  readonly base: (name: string) => string;
  readonly servers: Map<string, Child>;
  worker(name: string, env?: Record<string, string>): Promise<Child>;
}

async function cluster(serverNames: string[], workerNames: string[] = [], workerEnv: Record<string, string> = {}) {
  const queue = `mp-${++queues}`;
  const env = { REDIS_URL: redis.url, QUEUE: queue };
  const servers = new Map<string, Child>();
  await Promise.all(
    serverNames.map(async (name) => {
      const child = await forkChild(name, pollkitScript, env);
      running.push(child);
      servers.set(name, child);
    }),
  );
  const worker = async (name: string, extra: Record<string, string> = {}): Promise<Child> => {
    const child = await forkChild(name, workerScript, { ...env, ...workerEnv, ...extra });
    running.push(child);
    return child;
  };
  await Promise.all(workerNames.map((name) => worker(name)));
  const result: Cluster = {
    queue,
    servers,
    worker,
    base: (name) => `http://127.0.0.1:${(servers.get(name)!.ready as { port: number }).port}/pollkit`,
  };
  return result;
}

const alice = { authorization: 'Bearer alice' };

async function submit(base: string, type: string, input: unknown = {}, headers: Record<string, string> = alice) {
  const response = await fetch(`${base}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ type, input }),
  });
  expect(response.status).toBe(202);
  return (await response.json()) as JobSnapshot;
}

/**
 * Long-polls `base` from `version` until the job is done; returns every state it answered with. A 503
 * (the server's Redis connection is not back yet) is retried after its `Retry-After`, as a client would.
 */
async function followByLongPoll(base: string, id: string, version: number, headers = alice): Promise<JobSnapshot[]> {
  const seen: JobSnapshot[] = [];
  for (;;) {
    const response = await fetch(`${base}/jobs/${id}?version=${version}&wait=20`, { headers });
    if (response.status === 503) {
      const retryAfter = Number(response.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(0);
      await response.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000));
      continue;
    }
    expect(response.status).toBe(200);
    const job = (await response.json()) as JobSnapshot;
    if (job.version !== version) seen.push(job);
    version = job.version;
    if (job.done) return seen;
  }
}

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function snapshot(base: string, id: string, headers = alice): Promise<JobSnapshot> {
  const response = await fetch(`${base}/jobs/${id}`, { headers });
  expect(response.status).toBe(200);
  return (await response.json()) as JobSnapshot;
}

async function workerLog(queue: string): Promise<string[]> {
  const client = redis.client();
  try {
    return await client.lrange(`log:${queue}`, 0, -1);
  } finally {
    client.disconnect();
  }
}

describe('pollkit on BullMQ across processes', () => {
  it('shows a worker’s progress to a long poll on B and an SSE stream on C for a job submitted on A', async () => {
    // Steps a quarter second apart: each is its own version, even on a busy machine.
    const c = await cluster(['A', 'B', 'C'], ['W'], { STEP_MS: '250' });
    const job = await submit(c.base('A'), 'steps', { clip: 'intro.mp4' });
    expect(job).toMatchObject({ type: 'steps', status: 'queued', version: 1 });
    const stream = await openSse(`${c.base('C')}/jobs/${job.id}/events`, alice);
    expect(stream.status).toBe(200);
    const polled = await followByLongPoll(c.base('B'), job.id, job.version);
    await stream.ended;
    const streamed = stream.events.map((event) => JSON.parse(event.data) as JobSnapshot);
    for (const seen of [polled, streamed]) {
      const percents = seen.flatMap((state) => (state.progress?.percent === undefined ? [] : [state.progress.percent]));
      expect(percents).toEqual([...percents].sort((x, y) => x - y));
      for (const step of [25, 50, 75, 100]) expect(percents).toContain(step);
      const versions = seen.map((state) => state.version);
      expect(versions).toEqual([...versions].sort((x, y) => x - y));
      expect(seen.at(-1)).toMatchObject({ status: 'succeeded', done: true, result: { steps: 4, worker: 'W' } });
      expect(seen.filter((state) => state.done)).toHaveLength(1);
    }
    // Each process sees the same versions for the same states.
    expect(streamed.at(-1)!.version).toBe(polled.at(-1)!.version);
    expect((await snapshot(c.base('A'), job.id)).version).toBe(polled.at(-1)!.version);
  });

  it('ends a job failing once with attempts: 2 succeeded, and one failing every attempt failed with the reason', async () => {
    const c = await cluster(['A', 'B'], ['W']);
    const flaky = await submit(c.base('A'), 'flaky');
    const doomed = await submit(c.base('A'), 'doomed');
    const flakyStates = await followByLongPoll(c.base('B'), flaky.id, flaky.version);
    const doomedStates = await followByLongPoll(c.base('B'), doomed.id, doomed.version);
    expect(flakyStates.at(-1)).toMatchObject({ status: 'succeeded', result: 'second time lucky' });
    // Between the attempts the job never looked queued or failed.
    expect(flakyStates.slice(0, -1).every((state) => state.status === 'running')).toBe(true);
    expect(doomedStates.at(-1)).toMatchObject({
      status: 'failed',
      error: { code: 'job-failed', detail: 'attempt 2 fails' },
    });
    expect(doomedStates.slice(0, -1).every((state) => state.status === 'running')).toBe(true);
  });

  it('hands a SIGKILLed worker’s job to another worker, and the long poll on B wakes with succeeded once', async () => {
    const fast = { LOCK_MS: '1000', STALLED_MS: '300' };
    const c = await cluster(['A', 'B', 'C'], [], fast);
    // W1 would take a minute: only W2, after the stalled-job check, can finish the job.
    const first = await c.worker('W1', { SLOW_MS: '60000' });
    const job = await submit(c.base('A'), 'slow', { ms: 1500 });
    const started = await until(async () => {
      const state = await snapshot(c.base('B'), job.id);
      return state.status === 'running' ? state : undefined;
    });
    await c.worker('W2');
    const stream = await openSse(`${c.base('C')}/jobs/${job.id}/events`, alice);
    const polled = followByLongPoll(c.base('B'), job.id, started.version);
    await first.kill();
    const states = await polled;
    await stream.ended;
    expect(states.at(-1)).toMatchObject({ status: 'succeeded', result: { worker: 'W2' } });
    expect(states.filter((state) => state.done)).toHaveLength(1);
    const terminal = stream.events.filter((event) => (JSON.parse(event.data) as JobSnapshot).done);
    expect(terminal).toHaveLength(1);
    const log = await workerLog(c.queue);
    expect(log.filter((entry) => entry.endsWith(`:done:${job.id}`))).toEqual([`W2:done:${job.id}`]);
    expect(log).toContain(`W1:start:${job.id}`);
  });

  it('cancels a waiting job (removed from the queue) and an active one (its processor aborted, no retry)', async () => {
    const c = await cluster(['A', 'B']);
    const waiting = await submit(c.base('A'), 'slow', { ms: 5000 });
    const canceled = await fetch(`${c.base('B')}/jobs/${waiting.id}:cancel`, { method: 'POST', headers: alice });
    expect(canceled.status).toBe(200);
    expect(await canceled.json()).toMatchObject({ status: 'canceled', done: true, error: { code: 'canceled' } });
    const queue = new Queue(c.queue, { connection: redis.client({ maxRetriesPerRequest: null }) });
    try {
      await until(async () => ((await queue.getJob(waiting.id)) === undefined ? true : undefined));
      await c.worker('W');
      const active = await submit(c.base('A'), 'slow', { ms: 10_000 });
      const running = await until(async () => {
        const state = await snapshot(c.base('B'), active.id);
        return state.status === 'running' ? state : undefined;
      });
      const held = followByLongPoll(c.base('A'), active.id, running.version);
      const answer = await fetch(`${c.base('B')}/jobs/${active.id}/cancel`, { method: 'POST', headers: alice });
      expect(await answer.json()).toMatchObject({ status: 'canceled' });
      expect((await held).at(-1)).toMatchObject({ status: 'canceled' });
      await until(async () => ((await workerLog(c.queue)).includes(`W:aborted:${active.id}`) ? true : undefined));
      // BullMQ ends the job failed at once: its attempts left (3) are not run.
      await until(async () => ((await queue.getJobState(active.id)) === 'failed' ? true : undefined));
      const starts = (await workerLog(c.queue)).filter((entry) => entry.endsWith(`:start:${active.id}`));
      expect(starts).toHaveLength(1);
      expect(await snapshot(c.base('A'), active.id)).toMatchObject({ status: 'canceled' });
      expect((await workerLog(c.queue)).some((entry) => entry.startsWith(`W:done:`))).toBe(false);
    } finally {
      await queue.close();
    }
  });

  it('answers 404 on every route for another caller’s job', async () => {
    const c = await cluster(['A', 'B']);
    const job = await submit(c.base('A'), 'slow', { ms: 60_000 });
    const bob = { authorization: 'Bearer bob' };
    const base = c.base('B');
    const routes: [string, RequestInit][] = [
      [`/jobs/${job.id}`, {}],
      [`/jobs/${job.id}?version=1&wait=1`, {}],
      [`/jobs/${job.id}/events`, {}],
      [`/jobs/${job.id}:cancel`, { method: 'POST' }],
      [`/jobs/${job.id}`, { method: 'DELETE' }],
    ];
    for (const [path, init] of routes) {
      const response = await fetch(`${base}${path}`, { ...init, headers: bob });
      expect(response.status, `${init.method ?? 'GET'} ${path}`).toBe(404);
      expect(((await response.json()) as { code: string }).code).toBe('job-not-found');
    }
    const list = (await (await fetch(`${base}/jobs`, { headers: bob })).json()) as { jobs: JobSnapshot[] };
    expect(list.jobs).toEqual([]);
    const own = (await (await fetch(`${base}/jobs`, { headers: alice })).json()) as { jobs: JobSnapshot[] };
    expect(own.jobs.map((j) => j.id)).toEqual([job.id]);
    // Nothing bob did reached the job.
    expect(await snapshot(base, job.id)).toMatchObject({ status: 'queued', version: 1 });
  });

  it('loses no acknowledged submit when Redis restarts mid-run (append-only file)', async () => {
    // A job the worker took just as Redis died is active in Redis but unknown to the worker: BullMQ's
    // stalled-job check hands it back after its lock expires. Short locks keep that within the test's
    // time; with BullMQ's defaults (30 s lock, 30 s check) it takes up to a minute.
    const c = await cluster(['A', 'B'], ['W'], { STEP_MS: '5', LOCK_MS: '2000', STALLED_MS: '500' });
    const acknowledged: string[] = [];
    let restarted = false;
    let beforeOutage = 0;
    let atRestart = 0;
    const restart = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      beforeOutage = acknowledged.length;
      await redis.kill();
      await new Promise((resolve) => setTimeout(resolve, 500));
      await redis.restart();
      atRestart = acknowledged.length;
      restarted = true;
    })();
    // Submit until Redis is back and has taken at least ten more (and forty in all).
    const enough = (): boolean => restarted && acknowledged.length >= Math.max(40, atRestart + 10);
    const deadline = Date.now() + 20_000;
    while (!enough() && Date.now() < deadline) {
      const response = await fetch(`${c.base('A')}/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...alice },
        body: JSON.stringify({ type: 'steps', input: { n: acknowledged.length } }),
      }).catch(() => undefined);
      if (response?.status === 202) acknowledged.push(((await response.json()) as JobSnapshot).id);
      else {
        await response?.body?.cancel();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    await restart;
    // Submits were acknowledged on both sides of the outage (those during it answered 503 or waited).
    expect(beforeOutage).toBeGreaterThan(0);
    expect(acknowledged.length - atRestart).toBeGreaterThanOrEqual(10);
    expect(acknowledged.length).toBeGreaterThanOrEqual(40);
    for (const id of acknowledged) {
      const states = await followByLongPoll(c.base('B'), id, 0);
      expect(states.at(-1), id).toMatchObject({ status: 'succeeded' });
    }
  });
});
