import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JobSnapshot, TopicFetchResult } from '../../src/core/protocol.js';
import { type ServerProcess, startServer } from './helpers/cluster.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

let redis: RedisServer;
let prefixes = 0;
const running: ServerProcess[] = [];

beforeAll(async () => {
  redis = await startRedis({ persistent: true });
});
afterAll(async () => {
  await redis.stop();
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.stop()));
});

async function servers(...names: string[]): Promise<ServerProcess[]> {
  return serversWith({}, ...names);
}

async function serversWith(env: Record<string, string>, ...names: string[]): Promise<ServerProcess[]> {
  const keyPrefix = `mp${++prefixes}:`;
  const started = await Promise.all(names.map((name) => startServer(name, redis.url, keyPrefix, env)));
  running.push(...started);
  return started;
}

async function submit(server: ServerProcess, type: string, input: unknown): Promise<JobSnapshot> {
  const response = await fetch(`${server.base}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type, input }),
  });
  expect(response.status).toBe(202);
  return (await response.json()) as JobSnapshot;
}

async function longPollJob(server: ServerProcess, id: string, version: number, waitSeconds: number) {
  const response = await fetch(`${server.base}/jobs/${id}?version=${version}&wait=${waitSeconds}`);
  return { status: response.status, job: (await response.json()) as JobSnapshot };
}

async function fetchRecords(server: ServerProcess, topic: string, offset: number, waitSeconds: number) {
  const response = await fetch(
    `${server.base}/topics/${topic}/records?offset=${offset}&wait=${waitSeconds}&limit=1000`,
  );
  expect(response.status).toBe(200);
  return (await response.json()) as TopicFetchResult<number>;
}

/** Reads a topic from `from` through `server` with long polls until `count` records arrived. */
async function readAll(
  server: ServerProcess,
  topic: string,
  count: number,
  from = 0,
  waitSeconds = 10,
): Promise<number[]> {
  const offsets: number[] = [];
  let offset = from;
  while (offsets.length < count) {
    const page = await fetchRecords(server, topic, offset, waitSeconds);
    for (const record of page.records) offsets.push(record.offset);
    offset = page.nextOffset;
  }
  return offsets;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe('several server processes sharing one Redis', () => {
  it('wakes a long poll held on C when a worker on B finishes a job created on A', async () => {
    const [a, b, c] = await servers('A', 'B', 'C');
    const created = (await a!.call('create', 'render', { frames: 12 })) as JobSnapshot;
    const started = (await b!.call('start', created.id)) as JobSnapshot;
    const held = longPollJob(c!, created.id, started.version, 20);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const before = Date.now();
    await b!.call('succeed', created.id, { url: '/out.mp4' });
    const { status, job } = await held;
    expect(status).toBe(200);
    expect(job).toMatchObject({ id: created.id, status: 'succeeded', done: true, result: { url: '/out.mp4' } });
    expect(Date.now() - before).toBeLessThan(2000);
  });

  it('delivers appends made on B to readers held on A and C, in order, without gaps', async () => {
    const [a, b, c] = await servers('A', 'B', 'C');
    const readers = [readAll(a!, 'orders', 60), readAll(c!, 'orders', 60)];
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (let n = 0; n < 30; n++) await b!.call('append', 'orders', n);
    // And concurrently, from two processes at once: offsets stay gap-free.
    await Promise.all(range(30).map((n) => (n % 2 === 0 ? a! : b!).call('append', 'orders', 30 + n)));
    for (const offsets of await Promise.all(readers)) expect(offsets).toEqual(range(60));
    const page = await fetchRecords(c!, 'orders', 0, 0);
    expect(page.records.slice(0, 30).map((record) => record.value)).toEqual(range(30));
  });

  it('lets exactly one of two workers on different processes finish a job', async () => {
    const [a, b, c] = await servers('A', 'B', 'C');
    for (let round = 0; round < 10; round++) {
      const job = (await a!.call('create', 'race', round)) as JobSnapshot;
      await a!.call('start', job.id);
      const outcomes = await Promise.allSettled([b!.call('succeed', job.id, 'B'), c!.call('succeed', job.id, 'C')]);
      const winners = outcomes.filter((outcome) => outcome.status === 'fulfilled');
      expect(winners).toHaveLength(1);
      const loser = outcomes.find((outcome) => outcome.status === 'rejected') as PromiseRejectedResult;
      expect((loser.reason as { code: string }).code).toBe('illegal-transition');
      const { job: final } = await longPollJob(a!, job.id, 0, 0);
      expect(final.result).toBe((winners[0] as PromiseFulfilledResult<JobSnapshot>).value.result);
    }
  });

  it('loses nothing when a server process is killed', async () => {
    const [a, b, c] = await servers('A', 'B', 'C');
    const reader = readAll(c!, 'events', 40);
    const jobs: JobSnapshot[] = [];
    for (let n = 0; n < 20; n++) {
      await b!.call('append', 'events', n);
      if (n % 5 === 0) jobs.push((await b!.call('create', 'work', n)) as JobSnapshot);
    }
    await b!.kill();
    for (let n = 20; n < 40; n++) await a!.call('append', 'events', n);
    expect(await reader).toEqual(range(40));
    for (const job of jobs) {
      const { status, job: seen } = await longPollJob(a!, job.id, 0, 0);
      expect(status).toBe(200);
      expect(seen).toMatchObject({ id: job.id, status: 'queued' });
    }
  });

  it('holds one subscription per process however many requests it holds, and sends Redis nothing while holding', async () => {
    const [a, b, c] = await servers('A', 'B', 'C');
    const admin = redis.client();
    try {
      const job = (await b!.call('create', 'hold', 0)) as JobSnapshot;
      const count = async (name: string): Promise<number> =>
        ((await admin.client('LIST')) as string).split('\n').filter((line) => line.includes(` name=pollkit-${name} `))
          .length;
      const channel = `mp${prefixes}:changes`;
      const subscribers = async (): Promise<number> => ((await admin.pubsub('NUMSUB', channel)) as [string, number])[1];
      expect(await count('A')).toBe(2);
      expect(await subscribers()).toBe(3);

      const held = [
        ...range(200).map(() => longPollJob(a!, job.id, 1, 20)),
        ...range(200).map(() => fetchRecords(a!, 'quiet', 0, 20)),
        ...range(50).map(() => longPollJob(c!, job.id, 1, 20)),
      ];
      const heldOn = async (server: ServerProcess): Promise<number> =>
        ((await server.call('stats')) as { held: number }).held;
      await expect.poll(() => heldOn(a!), { timeout: 10_000 }).toBe(400);
      await expect.poll(() => heldOn(c!), { timeout: 10_000 }).toBe(50);
      const commands = async (): Promise<number> => {
        const stats = (await admin.info('commandstats')).split('\n').filter((line) => line.startsWith('cmdstat_'));
        return stats
          .filter((line) => !/^cmdstat_(info|client|pubsub)[:|]/.test(line))
          .reduce((sum, line) => sum + Number(/calls=(\d+)/.exec(line)?.[1] ?? 0), 0);
      };
      const before = await commands();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect((await commands()) - before).toBe(0);
      expect(await count('A')).toBe(2);
      expect(await count('C')).toBe(2);
      expect(await subscribers()).toBe(3);

      await b!.call('start', job.id);
      const answers = await Promise.all([...held.slice(0, 200), ...held.slice(400)]);
      for (const answer of answers) expect((answer as { job: JobSnapshot }).job.status).toBe('running');
      await b!.call('append', 'quiet', 1);
      for (const page of await Promise.all(held.slice(200, 400))) {
        expect((page as TopicFetchResult).records).toHaveLength(1);
      }
    } finally {
      admin.disconnect();
    }
  });

  it('survives a Redis restart mid-run: answers held requests at their timeout, keeps every write, wakes again', async () => {
    const [a, b] = await servers('A', 'B');
    const job = (await a!.call('create', 'restart', 0)) as JobSnapshot;
    await b!.call('append', 'log', 0);
    await b!.call('append', 'log', 1);
    expect((await fetchRecords(a!, 'log', 0, 0)).records).toHaveLength(2);
    // Held at the end of the log through the whole outage, re-polling every second.
    const reader = readAll(a!, 'log', 2, 2, 1);
    await new Promise((resolve) => setTimeout(resolve, 200));

    await redis.kill(true);
    // Held requests answer at their timeout with the last known state, not an error or a hang.
    const started = Date.now();
    const during = await longPollJob(a!, job.id, 1, 1);
    expect(during.status).toBe(200);
    expect(during.job).toMatchObject({ id: job.id, version: 1, status: 'queued' });
    expect(Date.now() - started).toBeLessThan(4000);
    // Writes fail fast with a retryable 503.
    const write = await fetch(`${a!.base}/topics/log/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: 99 }),
    });
    expect(write.status).toBe(503);
    expect(write.headers.get('retry-after')).toMatch(/^\d+$/);
    await expect(b!.call('start', job.id)).rejects.toMatchObject({ code: 'overloaded' });

    await redis.restart();
    const held = longPollJob(a!, job.id, 1, 20);
    // Both connections of each process (commands and subscription) reconnect on their own backoff.
    for (const server of [a!, b!]) {
      await expect
        .poll(async () => ((await server.call('stats')) as { connected: boolean }).connected, { timeout: 15_000 })
        .toBe(true);
    }
    await b!.call('start', job.id);
    expect((await held).job).toMatchObject({ id: job.id, version: 2, status: 'running' });
    await b!.call('append', 'log', 2);
    await b!.call('append', 'log', 3);
    expect(await reader).toEqual([2, 3]);
  });

  it('fails the job of a SIGKILLed process within lease + one sweep, seen from both others (default options)', async () => {
    const [a, b, c] = await servers('A', 'B', 'C');
    const job = await submit(a!, 'hang', 'frame');
    const running = await longPollJob(b!, job.id, 1, 5);
    expect(running.job.status).toBe('running');
    // Held on B and C (re-armed at each 30 s timeout): they wake when whichever of them notices
    // first fails the job.
    const killedAt = { at: 0 };
    const watch = async (server: ServerProcess) => {
      let seen = running.job;
      while (!seen.done) seen = (await longPollJob(server, job.id, seen.version, 30)).job;
      return { job: seen, afterKillMs: Date.now() - killedAt.at };
    };
    const onB = watch(b!);
    const onC = watch(c!);
    await new Promise((resolve) => setTimeout(resolve, 300));
    killedAt.at = Date.now();
    await a!.kill();
    const [seenB, seenC] = await Promise.all([onB, onC]);
    console.log('worker-lost seen after the kill (ms):', { B: seenB.afterKillMs, C: seenC.afterKillMs });
    for (const seen of [seenB, seenC]) {
      expect(seen.job).toMatchObject({
        id: job.id,
        status: 'failed',
        error: { code: 'worker-lost', retryable: true },
      });
      // The default lease is 30 s and the sweep interval 1 s; A renewed at most 10 s before it died.
      // (Plus a second for a machine as loaded as CI's.)
      expect(seen.afterKillMs).toBeLessThanOrEqual(30_000 + 1000 + 1000);
    }
    const [b2, c2] = await Promise.all([longPollJob(b!, job.id, 0, 0), longPollJob(c!, job.id, 0, 0)]);
    expect(b2.job.version).toBe(c2.job.version);
  }, 60_000);

  it('runs the job again on another process when its type allows a second attempt', async () => {
    const [a, b, c] = await serversWith({ LEASE_MS: '3000' }, 'A', 'B', 'C');
    const job = await submit(a!, 'retried', 'clip');
    const running = await longPollJob(c!, job.id, 1, 5);
    expect(running.job.status).toBe('running');
    await a!.kill();
    // Whichever of B and C took it over finished it; both see the same outcome.
    const deadline = Date.now() + 15_000;
    let seen = running.job;
    while (!seen.done && Date.now() < deadline) seen = (await longPollJob(b!, job.id, seen.version, 10)).job;
    expect(seen).toMatchObject({ status: 'succeeded', result: expect.stringMatching(/^clip done by [BC]$/) });
    expect((await longPollJob(c!, job.id, 0, 0)).job).toMatchObject({ status: 'succeeded', result: seen.result });
  });
});
