/**
 * What does scaling out through Redis cost? Three questions, each answered beside an in-memory,
 * single-process baseline run in the same invocation:
 *
 * 1. Wake latency: a reader long-polls a topic over HTTP; something appends. Baseline: one process,
 *    in-memory stores. Redis: the reader is held by server process A (a child), the append is made by
 *    process B (this one) through its own Redis store; A learns of it through its one subscription.
 * 2. Jobs per second, submit → succeed: POST /jobs to a server whose handler finishes at once, while
 *    the submitter waits for the result through a JobRegistry of its own (a cross-process wake-up in
 *    the Redis case). Baseline: the same in one process with in-memory stores.
 * 3. Redis commands per held request: hold many long polls on A and read INFO commandstats before and
 *    after an idle spell (target: zero while holding), and count A's connections (target: two).
 * 4. Why pub/sub for the wake-ups: the raw latency of a notice through PUBLISH → SUBSCRIBE next to
 *    XADD → a blocked XREAD loop (the other design that keeps one connection per process), and the
 *    Redis commands each costs per notice and process.
 *
 *   node --import tsx bench/redis.ts [--quick]
 *
 * Starts its own redis-server (/usr/bin/redis-server) on a free port; never touches 6379.
 *
 * @module
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { performance } from 'node:perf_hooks';
import { RedisChangeFeed, RedisJobStore, RedisTopicStore } from '../src/redis/index.js';
import { createNodeListener } from '../src/adapters/node.js';
import type { JobSnapshot } from '../src/core/protocol.js';
import { PollkitHandler } from '../src/server/http/handler.js';
import { JobRegistry } from '../src/server/jobs/job-registry.js';
import { DelayedOperationPurgatory } from '../src/server/purgatory/purgatory.js';
import { TopicRegistry } from '../src/server/topics/topic-registry.js';
import { startServer } from '../test/redis/helpers/cluster.js';
import { startRedis } from '../test/redis/helpers/redis-server.js';

const quick = process.argv.includes('--quick');
const WAKE_SAMPLES = quick ? 60 : 300;
const JOBS = quick ? 1000 : 5000;
const JOB_CONCURRENCY = 32;
const HELD = quick ? 1000 : 5000;

interface Percentiles {
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
}

function percentiles(samples: number[]): Percentiles {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p99: at(0.99), mean: sorted.reduce((sum, value) => sum + value, 0) / sorted.length };
}

const ms = (value: number): string => `${value.toFixed(2)} ms`;

async function until(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 1));
}

/** An HTTP server in this process over the given registries. */
async function listen(jobs: JobRegistry, topics: TopicRegistry): Promise<{ base: string; server: Server }> {
  const handler = new PollkitHandler({
    jobs,
    topics,
    publicAppends: true,
    autoCreateTopics: true,
    waitJitter: 0,
    maxHeldRequests: 1_000_000,
    maxHeldPerCaller: 1_000_000,
  });
  const server = createServer(createNodeListener(handler));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}/pollkit`, server };
}

/** Long-polls `topic` at `offset` on `base`; `held()` says when the request sits in the purgatory. */
async function wakeLatency(
  base: string,
  held: () => Promise<boolean>,
  append: (n: number) => Promise<unknown>,
  topic: string,
): Promise<Percentiles> {
  const samples: number[] = [];
  for (let n = 0; n < WAKE_SAMPLES + 10; n++) {
    const answered = fetch(`${base}/topics/${topic}/records?offset=${n}&wait=10`).then(async (response) => {
      const body = (await response.json()) as { records: unknown[] };
      if (body.records.length !== 1) throw new Error('woken without the record');
      return performance.now();
    });
    await until(held);
    const started = performance.now();
    await append(n);
    const latency = (await answered) - started;
    if (n >= 10) samples.push(latency); // the first ten warm up connections and JIT
  }
  return percentiles(samples);
}

/** Submits JOBS jobs over HTTP, JOB_CONCURRENCY at a time, each awaited through `registry.wait`. */
async function jobThroughput(base: string, registry: JobRegistry): Promise<number> {
  let next = 0;
  const started = performance.now();
  const lane = async (): Promise<void> => {
    while (next < JOBS) {
      next++;
      const response = await fetch(`${base}/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'echo', input: next }),
      });
      let job = (await response.json()) as JobSnapshot;
      while (!job.done) {
        const seen = await registry.wait(job.id, { sinceVersion: job.version, timeoutMs: 10_000 });
        if (seen === undefined) throw new Error(`job ${job.id} vanished`);
        job = seen;
      }
      if (job.status !== 'succeeded') throw new Error(`job ${job.id} ended ${job.status}`);
    }
  };
  await Promise.all(Array.from({ length: JOB_CONCURRENCY }, lane));
  return JOBS / ((performance.now() - started) / 1000);
}

async function baseline(): Promise<{ wake: Percentiles; jobsPerSecond: number }> {
  const purgatory = new DelayedOperationPurgatory();
  const jobs = new JobRegistry({ purgatory }).define('echo', ({ input }) => input);
  const topics = new TopicRegistry({ purgatory });
  const { base, server } = await listen(jobs, topics);
  try {
    const topic = topics.topic('bench');
    const wake = await wakeLatency(
      base,
      async () => purgatory.numDelayed() === 1,
      (n) => topic.append(n),
      'bench',
    );
    const jobsPerSecond = await jobThroughput(base, jobs);
    return { wake, jobsPerSecond };
  } finally {
    server.closeAllConnections();
    server.close();
    await jobs.close();
    await topics.close();
    purgatory.shutdown();
  }
}

/** Notice latency and commands per notice: pub/sub against one XREAD BLOCK loop per process. */
async function transports(
  client: (name: string) => Redis,
  commands: () => Promise<number>,
): Promise<{ pubsub: Percentiles; xread: Percentiles; pubsubCommands: number; xreadCommands: number }> {
  const samples = WAKE_SAMPLES * 2;
  const writer = client('writer');
  const subscriber = client('subscriber');
  const reader = client('reader');
  try {
    let arrived: (() => void) | undefined;
    subscriber.on('message', () => arrived?.());
    await subscriber.subscribe('bench:notices');
    const pubsubLatencies: number[] = [];
    let before = await commands();
    for (let n = 0; n < samples; n++) {
      const got = new Promise<number>((resolve) => (arrived = () => resolve(performance.now())));
      const started = performance.now();
      await writer.publish('bench:notices', `{"k":"t","hw":${n}}`);
      pubsubLatencies.push((await got) - started);
    }
    const pubsubCommands = ((await commands()) - before) / samples;

    const xreadLatencies: number[] = [];
    let last = '$';
    before = await commands();
    for (let n = 0; n < samples; n++) {
      const blocked = reader.xread('BLOCK', 0, 'STREAMS', 'bench:notices:stream', last).then((reply) => {
        const entries = reply?.[0]?.[1] ?? [];
        last = entries[entries.length - 1]?.[0] ?? last;
        return performance.now();
      });
      await new Promise((resolve) => setTimeout(resolve, 1)); // let the XREAD reach Redis and block
      const started = performance.now();
      await writer.xadd('bench:notices:stream', 'MAXLEN', '~', 1000, '*', 'n', String(n));
      xreadLatencies.push((await blocked) - started);
    }
    const xreadCommands = ((await commands()) - before) / samples;
    return {
      pubsub: percentiles(pubsubLatencies),
      xread: percentiles(xreadLatencies),
      pubsubCommands,
      xreadCommands,
    };
  } finally {
    writer.disconnect();
    subscriber.disconnect();
    reader.disconnect();
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  console.log(`bench/redis.ts${quick ? ' --quick' : ''}: node ${process.version}`);
  const memory = await baseline();

  const redisServer = await startRedis();
  const keyPrefix = 'bench:';
  const a = await startServer('A', redisServer.url, keyPrefix);
  // This process is "B": its own client, feed and stores, as another server instance would have.
  const redis = redisServer.client();
  const feed = new RedisChangeFeed({ redis, keyPrefix });
  const jobs = new JobRegistry({ store: new RedisJobStore({ redis, feed, keyPrefix }) });
  const topics = new TopicRegistry({ store: new RedisTopicStore({ redis, feed, keyPrefix }) });
  const admin = redisServer.client();
  try {
    await feed.ready();
    const heldOnA = async (): Promise<number> => ((await a.call('stats')) as { held: number }).held;
    const topic = topics.topic('bench');
    const wake = await wakeLatency(
      a.base,
      async () => (await heldOnA()) === 1,
      (n) => topic.append(n),
      'bench',
    );
    const jobsPerSecond = await jobThroughput(a.base, jobs);

    // Commands Redis executes, by name, excluding this benchmark's own probes.
    const commands = async (): Promise<number> =>
      (await admin.info('commandstats'))
        .split('\n')
        .filter((line) => line.startsWith('cmdstat_') && !/^cmdstat_(info|client|ping)[:|]/.test(line))
        .reduce((sum, line) => sum + Number(/calls=(\d+)/.exec(line)?.[1] ?? 0), 0);
    const connections = async (): Promise<number> =>
      ((await admin.client('LIST')) as string).split('\n').filter((line) => line.includes(' name=pollkit-A ')).length;
    const job = (await a.call('create', 'hold', null)) as JobSnapshot;
    const beforeHolding = await commands();
    const connectionsBefore = await connections();
    const answered = (response: Response): number => response.status;
    const heldJobs = Array.from({ length: HELD / 2 }, () =>
      fetch(`${a.base}/jobs/${job.id}?version=${job.version}&wait=30`).then(answered),
    );
    const heldReads = Array.from({ length: HELD / 2 }, () =>
      fetch(`${a.base}/topics/idle/records?offset=0&wait=30`).then(answered),
    );
    await until(async () => (await heldOnA()) === HELD);
    const settled = await commands();
    await new Promise((resolve) => setTimeout(resolve, quick ? 1000 : 3000));
    const whileHolding = (await commands()) - settled;
    const connectionsHolding = await connections();
    // Waking them: the write itself plus whatever A re-reads to answer (shared between readers).
    let before = await commands();
    await jobs.start(job.id);
    const jobStatuses = await Promise.all(heldJobs);
    const jobWake = (await commands()) - before;
    before = await commands();
    await topics.topic('idle').append('wake');
    const readStatuses = await Promise.all(heldReads);
    const topicWake = (await commands()) - before;
    if ([...jobStatuses, ...readStatuses].some((status) => status !== 200)) {
      throw new Error('a held request did not answer 200');
    }
    const transport = await transports((name) => redisServer.client({ connectionName: `bench-${name}` }), commands);

    const ratio = (redisValue: number, memoryValue: number): string => `${(redisValue / memoryValue).toFixed(2)}×`;
    console.log('\n| measure | in-memory, 1 process | Redis, 2 processes | Redis ÷ memory |');
    console.log('|---|---|---|---|');
    console.log(
      `| wake latency p50 (append → held HTTP reader answered) | ${ms(memory.wake.p50)} | ${ms(wake.p50)} | ${ratio(wake.p50, memory.wake.p50)} |`,
    );
    console.log(
      `| wake latency p99 | ${ms(memory.wake.p99)} | ${ms(wake.p99)} | ${ratio(wake.p99, memory.wake.p99)} |`,
    );
    console.log(
      `| jobs/s, HTTP submit → handler succeeds → waiter woken (${JOB_CONCURRENCY} in flight) | ${memory.jobsPerSecond.toFixed(0)} | ${jobsPerSecond.toFixed(0)} | ${ratio(jobsPerSecond, memory.jobsPerSecond)} |`,
    );
    console.log(`\nheld requests on A: ${HELD} (half job long polls, half topic fetches)`);
    console.log(
      `Redis commands to start holding them: ${settled - beforeHolding} (${((settled - beforeHolding) / HELD).toFixed(2)} per request: the initial read)`,
    );
    console.log(
      `Redis commands while holding (${quick ? 1 : 3} s idle): ${whileHolding} (${(whileHolding / HELD).toFixed(4)} per held request)`,
    );
    console.log(`Redis commands to wake ${HELD / 2} job long polls (the write included): ${jobWake}`);
    console.log(`Redis commands to wake ${HELD / 2} topic fetches (the append included): ${topicWake}`);
    console.log(`A's Redis connections: ${connectionsBefore} before, ${connectionsHolding} while holding ${HELD}`);
    console.log(
      '\n| notice transport (raw, one writer, one listening connection) | p50 | p99 | Redis commands per notice, one listening process |',
    );
    console.log('|---|---|---|---|');
    console.log(
      `| PUBLISH → SUBSCRIBE (chosen) | ${ms(transport.pubsub.p50)} | ${ms(transport.pubsub.p99)} | ${transport.pubsubCommands.toFixed(2)} |`,
    );
    console.log(
      `| XADD → XREAD BLOCK loop | ${ms(transport.xread.p50)} | ${ms(transport.xread.p99)} | ${transport.xreadCommands.toFixed(2)} |`,
    );
    console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await a.stop();
    await jobs.close();
    await topics.close();
    await feed.close();
    admin.disconnect();
    await redisServer.stop();
  }
}

await main();
