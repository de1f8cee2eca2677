/**
 * What does serving the polling protocol from a BullMQ queue cost? Measured beside the pollkit Redis
 * store in the same run, on a private redis-server:
 *
 * 1. Wake latency: server process A holds an HTTP long poll on a running job; a worker completes it.
 *    BullMQ: a BullMQ Worker in this process returns from its processor (the clock starts there, so
 *    BullMQ's own completion is included) and A hears of it through its one QueueEvents. Redis store:
 *    an external worker in this process calls `registry.succeed` (the clock starts there) and A hears
 *    of it through its one pub/sub subscription.
 * 2. Redis commands per held request: hold many long polls on A and read INFO commandstats over an
 *    idle spell, against the same spell with nothing held (BullMQ's own workers and QueueEvents poll
 *    Redis on their own timers; those are not per request). Target 0.
 * 3. Jobs per second with the same worker process (one BullMQ Worker, concurrency 32): BullMQ alone
 *    (queue.add, then job.waitUntilFinished through QueueEvents) against pollkit + BullMQ (POST /jobs
 *    on A, then long polls on A until done), 32 jobs in flight. Target ≥ 0.8×. The floor beside them:
 *    a bare HTTP front on BullMQ (bench/bullmq-naive.ts) doing the least any server can per job.
 *
 *   node --import tsx bench/bullmq.ts [--quick]
 *
 * Starts its own redis-server (/usr/bin/redis-server) on a free port; never touches 6379.
 *
 * @module
 */
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Queue, QueueEvents, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { JobSnapshot } from '../src/core/protocol.js';
import { JobRegistry } from '../src/server/jobs/job-registry.js';
import { RedisJobStore } from '../src/redis/index.js';
import { type Child, forkChild } from '../test/bullmq/helpers/ipc.js';
import { startServer } from '../test/redis/helpers/cluster.js';
import { startRedis } from '../test/redis/helpers/redis-server.js';

const quick = process.argv.includes('--quick');
const WAKE_SAMPLES = quick ? 60 : 200;
const JOBS = quick ? 600 : 3000;
const IN_FLIGHT = 32;
const HELD = quick ? 1000 : 2000;
const IDLE_MS = quick ? 1000 : 3000;
const QUEUE = 'bench';

const pollkitScript = fileURLToPath(new URL('../test/bullmq/helpers/pollkit-process.ts', import.meta.url));
const workerScript = fileURLToPath(new URL('../test/bullmq/helpers/worker-process.ts', import.meta.url));
const naiveScript = fileURLToPath(new URL('./bullmq-naive.ts', import.meta.url));

interface Percentiles {
  readonly p50: number;
  readonly p99: number;
}

function percentiles(samples: number[]): Percentiles {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p99: at(0.99) };
}

const ms = (value: number): string => `${value.toFixed(2)} ms`;
const sleep = (delay: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, delay));

async function until(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition())) await sleep(1);
}

async function post(base: string, type: string, input: unknown): Promise<JobSnapshot> {
  const response = await fetch(`${base}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type, input }),
  });
  if (response.status !== 202) throw new Error(`submit answered ${response.status}`);
  return (await response.json()) as JobSnapshot;
}

async function longPoll(base: string, id: string, version: number): Promise<JobSnapshot> {
  const response = await fetch(`${base}/jobs/${id}?version=${version}&wait=20`);
  return (await response.json()) as JobSnapshot;
}

/** Commands Redis has executed, by name, without this benchmark's own probes. */
async function commands(admin: Redis): Promise<number> {
  return (await admin.info('commandstats'))
    .split('\n')
    .filter((line) => line.startsWith('cmdstat_') && !/^cmdstat_(info|client|ping)[:|]/.test(line))
    .reduce((sum, line) => sum + Number(/calls=(\d+)/.exec(line)?.[1] ?? 0), 0);
}

/** Commands over an idle spell, with nothing held and then with `count` long polls held on `base`. */
async function holdingCost(
  admin: Redis,
  base: string,
  job: JobSnapshot,
  held: () => Promise<number>,
  count: number,
): Promise<{ idle: number; holding: number; start: number }> {
  let before = await commands(admin);
  await sleep(IDLE_MS);
  const idle = (await commands(admin)) - before;
  before = await commands(admin);
  const polls = Array.from({ length: count }, () => fetch(`${base}/jobs/${job.id}?version=${job.version}&wait=30`));
  await until(async () => (await held()) === count);
  const settled = await commands(admin);
  await sleep(IDLE_MS);
  const holding = (await commands(admin)) - settled;
  void Promise.allSettled(polls);
  return { idle, holding, start: settled - before };
}

async function main(): Promise<void> {
  const started = performance.now();
  console.log(`bench/bullmq.ts${quick ? ' --quick' : ''}: node ${process.version}`);
  const redis = await startRedis();
  const admin = redis.client();
  const children: Child[] = [];
  try {
    // --- the pollkit Redis store: server R holds, this process is the external worker ----------------
    const r = await startServer('R', redis.url, 'bench:');
    const rStore = new RedisJobStore({ redis: redis.client(), keyPrefix: 'bench:' });
    await rStore.feed.ready();
    const rJobs = new JobRegistry({ store: rStore });
    const heldOnR = async (): Promise<number> => ((await r.call('stats')) as { held: number }).held;
    const redisWake: number[] = [];
    for (let n = 0; n < WAKE_SAMPLES + 10; n++) {
      const job = await rJobs.create('render', n);
      const running = await rJobs.start(job.id);
      const answered = longPoll(r.base, job.id, running.version).then(() => performance.now());
      await until(async () => (await heldOnR()) === 1);
      const t0 = performance.now();
      await rJobs.succeed(job.id, n);
      const latency = (await answered) - t0;
      if (n >= 10) redisWake.push(latency);
    }
    const rHeldJob = await rJobs.start((await rJobs.create('render', 'held')).id);
    const redisHolding = await holdingCost(admin, r.base, rHeldJob, heldOnR, HELD);
    await rJobs.succeed(rHeldJob.id, 'done');
    await r.stop();
    await rJobs.close();
    await rStore.close();

    // --- BullMQ: server A holds, a gated Worker in this process completes ---------------------------
    const a = await forkChild('A', pollkitScript, { REDIS_URL: redis.url, QUEUE });
    children.push(a);
    const aBase = `http://127.0.0.1:${(a.ready as { port: number }).port}/pollkit`;
    const heldOnA = async (): Promise<number> => ((await a.call('stats')) as { held: number }).held;
    let release: ((value: unknown) => void) | undefined;
    let completedAt = 0;
    const gated = new Worker(
      QUEUE,
      async (job) => {
        if (job.name !== 'gate') throw new Error('only gate jobs here');
        const value = await new Promise((resolve) => (release = resolve));
        completedAt = performance.now();
        return value;
      },
      { connection: redis.client({ maxRetriesPerRequest: null }), concurrency: 1 },
    );
    await gated.waitUntilReady();
    const bullWake: number[] = [];
    for (let n = 0; n < WAKE_SAMPLES + 10; n++) {
      release = undefined;
      let job = await post(aBase, 'gate', n);
      while (job.status !== 'running') job = await longPoll(aBase, job.id, job.version);
      const answered = longPoll(aBase, job.id, job.version).then((state) => {
        if (!state.done) throw new Error(`woken at ${state.status}`);
        return performance.now();
      });
      await until(async () => release !== undefined && (await heldOnA()) === 1);
      release!(n);
      const latency = (await answered) - completedAt;
      if (n >= 10) bullWake.push(latency);
    }
    let heldJob = await post(aBase, 'gate', 'held');
    while (heldJob.status !== 'running') heldJob = await longPoll(aBase, heldJob.id, heldJob.version);
    const bullHolding = await holdingCost(admin, aBase, heldJob, heldOnA, HELD);
    const wakeStart = await commands(admin);
    release!('done');
    await until(async () => (await heldOnA()) === 0);
    const bullWakeCommands = (await commands(admin)) - wakeStart;
    await gated.close();

    // --- jobs per second, the same worker process for both --------------------------------------------
    const w = await forkChild('W', workerScript, { REDIS_URL: redis.url, QUEUE, CONCURRENCY: String(IN_FLIGHT) });
    children.push(w);
    const queue = new Queue(QUEUE, { connection: redis.client({ maxRetriesPerRequest: null }) });
    // waitUntilFinished listens on the queue once per job in flight.
    queue.setMaxListeners(IN_FLIGHT * 2);
    const events = new QueueEvents(QUEUE, { connection: redis.client({ maxRetriesPerRequest: null }) });
    await events.waitUntilReady();
    const lanes = async (one: (n: number) => Promise<void>): Promise<number> => {
      let next = 0;
      const begin = performance.now();
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (next < JOBS) await one(next++);
        }),
      );
      return JOBS / ((performance.now() - begin) / 1000);
    };
    const alone = await lanes(async (n) => {
      const job = await queue.add('echo', { n });
      await job.waitUntilFinished(events, 20_000);
    });
    const through = await lanes(async (n) => {
      let job = await post(aBase, 'echo', { n });
      while (!job.done) job = await longPoll(aBase, job.id, job.version);
      if (job.status !== 'succeeded') throw new Error(`job ${job.id} ended ${job.status}`);
    });
    // The floor: the least an HTTP front on BullMQ does per job (submit, then one wait for the result).
    const naive = await forkChild('N', naiveScript, { REDIS_URL: redis.url, QUEUE });
    children.push(naive);
    const nBase = `http://127.0.0.1:${(naive.ready as { port: number }).port}`;
    const floor = await lanes(async (n) => {
      const { id } = (await post(nBase, 'echo', { n })) as unknown as { id: string };
      const response = await fetch(`${nBase}/jobs/${id}`);
      if (response.status !== 200) throw new Error(`naive wait answered ${response.status}`);
      await response.body?.cancel();
    });
    await events.close();
    await queue.close();

    const ratio = (x: number, y: number): string => `${(x / y).toFixed(2)}×`;
    console.log('\n| measure | pollkit Redis store | pollkit on BullMQ | BullMQ ÷ Redis store |');
    console.log('|---|---|---|---|');
    const w50 = percentiles(redisWake);
    const b50 = percentiles(bullWake);
    console.log(
      `| wake latency p50 (worker completes → held HTTP long poll on another process answered) | ${ms(w50.p50)} | ${ms(b50.p50)} | ${ratio(b50.p50, w50.p50)} |`,
    );
    console.log(`| wake latency p99 | ${ms(w50.p99)} | ${ms(b50.p99)} | ${ratio(b50.p99, w50.p99)} |`);
    const perHeld = (cost: { idle: number; holding: number }): string =>
      `${cost.holding} (${cost.idle} with none held; ${(Math.max(0, cost.holding - cost.idle) / HELD).toFixed(4)} per held request)`;
    console.log(
      `| Redis commands in ${IDLE_MS / 1000} s holding ${HELD} long polls | ${perHeld(redisHolding)} | ${perHeld(bullHolding)} | |`,
    );
    console.log(`| Redis commands to start holding them | ${redisHolding.start} | ${bullHolding.start} | |`);
    console.log(
      `\nRedis commands to wake ${HELD} long polls on BullMQ (completion, fold, answers): ${bullWakeCommands}`,
    );
    console.log(
      '\n| jobs/s, same worker process, 32 in flight | BullMQ alone | pollkit + BullMQ (HTTP) | ratio (target ≥ 0.8×) |',
    );
    console.log('|---|---|---|---|');
    console.log(
      `| submit → processor → result seen | ${alone.toFixed(0)} | ${through.toFixed(0)} | ${ratio(through, alone)} |`,
    );
    console.log(
      `\nfloor, a bare HTTP front on BullMQ (POST → queue.add, GET → waitUntilFinished): ${floor.toFixed(0)} jobs/s = ${ratio(floor, alone)} of BullMQ alone; pollkit = ${ratio(through, floor)} of the floor`,
    );
    console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    admin.disconnect();
    await redis.stop();
  }
}

await main();
