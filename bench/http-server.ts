/**
 * The server under test of `bench/http.ts`, run as a forked child (with `--expose-gc`) so its heap,
 * RSS and CPU time are its own. One process serves one scenario: pollkit behind one adapter (node,
 * express, fastify, koa, hono), the naive baseline of `bench/http-naive.ts`, or one of the lower bounds
 * of `bench/http-floor.ts`.
 *
 * Commands arrive as IPC messages ({@link ServerCommand}); each is answered with one reply. It listens
 * on 127.0.0.1 only.
 *
 * @module
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { writeHeapSnapshot } from 'node:v8';
import { createAdaptorServer } from '@hono/node-server';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { pollkitExpress } from '../src/adapters/express.js';
import { pollkitFastify } from '../src/adapters/fastify.js';
import { mountPollkit } from '../src/adapters/hono.js';
import { pollkitKoa } from '../src/adapters/koa.js';
import { createNodeListener } from '../src/adapters/node.js';
import { type Clock, systemClock } from '../src/core/clock.js';
import { PollkitHandler } from '../src/server/http/handler.js';
import { JobRegistry } from '../src/server/jobs/job-registry.js';
import { DelayedOperationPurgatory } from '../src/server/purgatory/purgatory.js';
import { TopicRegistry } from '../src/server/topics/topic-registry.js';
import { type FloorServer, createFloorServer } from './http-floor.js';
import { type NaiveServer, createNaiveServer } from './http-naive.js';

/** A framework pollkit has an adapter for (`node` is the bare `node:http` listener). */
export type Framework = 'node' | 'express' | 'fastify' | 'koa' | 'hono';

/**
 * Which server a process runs: pollkit behind a framework's adapter, the same framework answering a
 * fixed job body from a plain route (`plain-…`, so the adapter's own share can be told from the
 * framework's), the naive long-poll baseline, a lower bound (`floor-http`, `floor-http-sliced`, `floor-socket`), or
 * pollkit/node never yielding during a wake-up (`node-unsliced`).
 */
export type ServerKind =
  Framework | `plain-${Framework}` | 'naive' | 'floor-http' | 'floor-http-sliced' | 'floor-socket' | 'node-unsliced';

/** A command from the orchestrator. */
export type ServerCommand =
  | { readonly id: number; readonly cmd: 'start'; readonly kind: ServerKind }
  | { readonly id: number; readonly cmd: 'stats'; readonly gc?: boolean }
  | { readonly id: number; readonly cmd: 'cpu-start' }
  | { readonly id: number; readonly cmd: 'cpu-stop' }
  | { readonly id: number; readonly cmd: 'append'; readonly topic: string; readonly bytes?: number }
  | {
      readonly id: number;
      readonly cmd: 'produce';
      readonly topic: string;
      readonly intervalMs: number;
      readonly count: number;
    }
  | {
      readonly id: number;
      readonly cmd: 'append-spread';
      /** Appends go to topics `t0` … `t{topics - 1}` in turn. */
      readonly topics: number;
      readonly count: number;
    }
  | { readonly id: number; readonly cmd: 'snapshot'; readonly dir: string }
  | { readonly id: number; readonly cmd: 'profile-start' }
  | { readonly id: number; readonly cmd: 'profile-stop'; readonly dir: string; readonly label: string }
  | { readonly id: number; readonly cmd: 'exit' };

/** The topics `append-spread` may use, made up front (reading an unknown topic is a 404). */
const SPREAD_TOPICS = 1000;

// Jitter off: the benchmark wants every held request to wait exactly as long as asked.
const benchClock: Clock = { ...systemClock, random: () => 0 };

/** The naive server or a floor: a baseline that answers every held fetch of a topic when appended to. */
let baseline: NaiveServer | FloorServer | undefined;
let handler: PollkitHandler | undefined;
let purgatory: DelayedOperationPurgatory | undefined;
let topics: TopicRegistry | undefined;
let jobId: string | undefined;
let cpuMark: { usage: NodeJS.CpuUsage; at: number } | undefined;

function listenOn(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // A deep backlog: thousands of clients connect within a second or two.
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => resolve((server.address() as AddressInfo).port));
  });
}

const FLOOR_MODES = { 'floor-http': 'http', 'floor-http-sliced': 'http-sliced', 'floor-socket': 'socket' } as const;

async function start(kind: ServerKind): Promise<Record<string, unknown>> {
  if (kind.startsWith('plain-')) {
    const server = await buildPlain(kind.slice('plain-'.length) as Framework);
    return { port: await listenOn(server), jobId: 'plain' };
  }
  if (kind === 'naive' || kind === 'floor-http' || kind === 'floor-http-sliced' || kind === 'floor-socket') {
    baseline = kind === 'naive' ? createNaiveServer() : createFloorServer(FLOOR_MODES[kind]);
    baseline.server.keepAliveTimeout = 120_000;
    baseline.server.headersTimeout = 0;
    baseline.server.requestTimeout = 0;
    return { port: await listenOn(baseline.server) };
  }
  // `node-unsliced`: pollkit/node with a purgatory that never yields during a wake-up (what yielding costs).
  purgatory = new DelayedOperationPurgatory({
    name: 'bench',
    clock: benchClock,
    ...(kind === 'node-unsliced' ? { resumeSliceMs: Number.POSITIVE_INFINITY } : {}),
  });
  topics = new TopicRegistry({ purgatory, clock: benchClock });
  const jobs = new JobRegistry({ purgatory, clock: benchClock });
  topics.topic('fan');
  topics.topic('idle');
  topics.topic('feed');
  for (let i = 0; i < SPREAD_TOPICS; i++) topics.topic(`t${i}`);
  jobId = (await jobs.create('bench.status', { n: 1 })).id;
  handler = new PollkitHandler({
    jobs,
    topics,
    clock: benchClock,
    maxWaitSeconds: 600,
    waitJitter: 0,
    maxHeldRequests: 50_000,
    // Every benchmark client comes from 127.0.0.1, the default per-caller key.
    maxHeldPerCaller: 50_000,
    publicAppends: true,
  });
  const server = await build(kind === 'node-unsliced' ? 'node' : (kind as Framework), handler);
  // Held requests outlive Node's default request and keep-alive timeouts.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 0;
  server.requestTimeout = 0;
  return { port: await listenOn(server), jobId };
}

async function build(kind: Framework, pollkit: PollkitHandler): Promise<Server> {
  switch (kind) {
    case 'node':
      return createServer(createNodeListener(pollkit));
    case 'express': {
      const app = express();
      app.use(pollkitExpress(pollkit));
      return createServer(app);
    }
    case 'koa': {
      const app = new Koa();
      app.use(pollkitKoa(pollkit));
      return createServer(app.callback());
    }
    case 'fastify': {
      const app = Fastify({ keepAliveTimeout: 120_000, requestTimeout: 0 });
      await app.register(pollkitFastify(pollkit));
      await app.ready();
      return app.server;
    }
    case 'hono': {
      const app = new Hono();
      mountPollkit(app, pollkit);
      // Built but not listening yet: `serve` would listen on a port of its own choosing.
      return createAdaptorServer({ fetch: app.fetch }) as Server;
    }
  }
}

/** A job body shaped like pollkit's, answered by each framework's own idiom for JSON. */
const PLAIN_BODY = JSON.stringify({
  id: 'p3Vq1m0bT6uS2yX8zK4wNa',
  type: 'bench.status',
  status: 'queued',
  done: false,
  progress: null,
  result: null,
  error: null,
  version: 1,
  createdAt: new Date(0).toISOString(),
  updatedAt: new Date(0).toISOString(),
  startedAt: null,
  finishedAt: null,
  expiresAt: null,
});
const PLAIN_HEADERS = {
  'content-type': 'application/json',
  'cache-control': 'no-store',
  etag: '"1"',
  'retry-after': '1',
};

async function buildPlain(kind: Framework): Promise<Server> {
  switch (kind) {
    case 'node':
      return createServer((_req, res) => {
        res.writeHead(200, { ...PLAIN_HEADERS, 'content-length': Buffer.byteLength(PLAIN_BODY) });
        res.end(PLAIN_BODY);
      });
    case 'express': {
      const app = express();
      app.get('/pollkit/jobs/:id', (_req, res) => {
        res.set(PLAIN_HEADERS).send(PLAIN_BODY);
      });
      return createServer(app);
    }
    case 'koa': {
      const app = new Koa();
      app.use((ctx) => {
        ctx.set(PLAIN_HEADERS);
        ctx.body = PLAIN_BODY;
      });
      return createServer(app.callback());
    }
    case 'fastify': {
      const app = Fastify({ keepAliveTimeout: 120_000 });
      app.get('/pollkit/jobs/:id', async (_request, reply) => {
        reply.headers(PLAIN_HEADERS);
        return PLAIN_BODY;
      });
      await app.ready();
      return app.server;
    }
    case 'hono': {
      const app = new Hono();
      app.get('/pollkit/jobs/:id', (c) => c.body(PLAIN_BODY, 200, PLAIN_HEADERS));
      return createAdaptorServer({ fetch: app.fetch }) as Server;
    }
  }
}

function stats(gc: boolean): Record<string, unknown> {
  if (gc) {
    const collect = (globalThis as { gc?: () => void }).gc;
    collect?.();
    collect?.();
  }
  const memory = process.memoryUsage();
  const metrics = purgatory?.metrics();
  return {
    heapUsed: memory.heapUsed,
    rss: memory.rss,
    external: memory.external + memory.arrayBuffers,
    held: handler?.heldRequests ?? baseline?.held() ?? 0,
    purgatoryPending: metrics?.pending ?? 0,
    purgatoryWatched: metrics?.watched ?? 0,
    purgatoryDelayed: metrics?.delayed ?? 0,
  };
}

async function append(topic: string, bytes: number | undefined): Promise<Record<string, unknown>> {
  const value = bytes === undefined ? { n: 1 } : { pad: 'x'.repeat(bytes) };
  const at = performance.timeOrigin + performance.now();
  if (baseline !== undefined) {
    const offset = baseline.append(topic, value);
    return { at, offset, appendMs: performance.timeOrigin + performance.now() - at };
  }
  const offset = await topics!.topic(topic).append(value);
  return { at, offset, appendMs: performance.timeOrigin + performance.now() - at };
}

/**
 * Appends `count` records to `topics` topics in turn, as fast as the server goes, yielding to the
 * event loop after each round of the topics so the answers it triggers go out and the readers' next
 * fetches come in.
 */
async function appendSpread(topicCount: number, count: number): Promise<Record<string, unknown>> {
  if (topicCount > SPREAD_TOPICS) throw new Error(`at most ${SPREAD_TOPICS} topics`);
  const startedAt = performance.timeOrigin + performance.now();
  for (let i = 0; i < count; i++) {
    const topic = `t${i % topicCount}`;
    if (baseline !== undefined) baseline.append(topic, { n: i });
    else await topics!.topic(topic).append({ n: i });
    if ((i + 1) % topicCount === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  return { startedAt, endedAt: performance.timeOrigin + performance.now() };
}

function produce(topic: string, intervalMs: number, count: number): Record<string, unknown> {
  let produced = 0;
  const timer = setInterval(() => {
    produced += 1;
    if (produced >= count) clearInterval(timer);
    void append(topic, undefined);
  }, intervalMs);
  return { scheduled: count };
}

let session: Session | undefined;

/** One inspector call, for CPU profiles of a chosen window (the fan-out) rather than the whole run. */
function post(method: string, params?: Record<string, unknown>): Promise<unknown> {
  if (session === undefined) {
    session = new Session();
    session.connect();
  }
  const connected = session;
  return new Promise((resolve, reject) => {
    connected.post(method, params ?? {}, (error, result) => (error === null ? resolve(result) : reject(error)));
  });
}

async function run(command: ServerCommand): Promise<Record<string, unknown>> {
  switch (command.cmd) {
    case 'start':
      return start(command.kind);
    case 'stats':
      return stats(command.gc === true);
    case 'cpu-start':
      cpuMark = { usage: process.cpuUsage(), at: performance.now() };
      return {};
    case 'cpu-stop': {
      if (cpuMark === undefined) throw new Error('cpu-start first');
      const used = process.cpuUsage(cpuMark.usage);
      const wallMs = performance.now() - cpuMark.at;
      return { cpuMs: (used.user + used.system) / 1000, wallMs };
    }
    case 'append':
      return append(command.topic, command.bytes);
    case 'produce':
      return produce(command.topic, command.intervalMs, command.count);
    case 'append-spread':
      return appendSpread(command.topics, command.count);
    case 'snapshot':
      return { file: writeHeapSnapshot(`${command.dir}/http-server-${process.pid}-${Date.now()}.heapsnapshot`) };
    case 'profile-start':
      await post('Profiler.enable');
      await post('Profiler.setSamplingInterval', { interval: 100 });
      await post('Profiler.start');
      return {};
    case 'profile-stop': {
      const { profile } = (await post('Profiler.stop')) as { profile: unknown };
      const file = `${command.dir}/http-server-${command.label}-${process.pid}.cpuprofile`;
      writeFileSync(file, JSON.stringify(profile));
      return { file };
    }
    case 'exit':
      setImmediate(() => process.exit(0));
      return {};
  }
}

process.on('message', (message: ServerCommand) => {
  run(message).then(
    (result) => process.send?.({ id: message.id, ok: true, ...result }),
    (error: unknown) => process.send?.({ id: message.id, ok: false, error: String(error) }),
  );
});
