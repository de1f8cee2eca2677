/**
 * `npm run demo`: pollkit in one command, measured live.
 *
 * 1. Starts the upload-progress example in-process, uploads a file to it and draws the job's progress
 *    bar in the terminal as it runs (long polling the job).
 * 2. Runs one event stream through short polling, long polling, SSE and WebSocket side by side, each
 *    transport on its own listener so that requests and bytes on the wire can be counted apart, and
 *    prints requests, bytes and latency per delivered event for each.
 * 3. Prints how to open the browser examples, and exits 0.
 *
 * Flags: `--events N` (default 30), `--interval MS` short-poll interval (default 1000),
 * `--json FILE` also writes the measurements as JSON (what `scripts/render-chart.ts` draws).
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { WebSocketServer } from 'ws';
import {
  ShortPoller,
  SseTransport,
  Subscriber,
  TopicClient,
  type TopicFetchResponse,
  type TopicRecord,
  type WebSocketConstructor,
  WebSocketTransport,
  consumeTopic,
  longPollJob,
  pollReply,
  seededRandom,
  sleep,
  unchangedReply,
} from 'pollkit/client';
import { PollkitHandler, TopicRegistry } from 'pollkit/server';
import { createNodeListener } from 'pollkit/node';
import { PollkitWebSocketServer } from 'pollkit/ws';
import { start as startUploads } from '../examples/upload-progress/server.js';
import { listen } from '../examples/shared/serve.js';

// ---- terminal output ------------------------------------------------------------------------------

const tty = process.stdout.isTTY === true;
const bold = (text: string): string => (tty ? `\x1b[1m${text}\x1b[22m` : text);
const dim = (text: string): string => (tty ? `\x1b[2m${text}\x1b[22m` : text);

/**
 * A progress bar as text: `[██████░░░░]  60 % message`.
 *
 * @example
 * ```ts
 * progressBar(60, 10); // "[██████░░░░]  60 %"
 * ```
 */
export function progressBar(percent: number, width = 30, message = ''): string {
  const clamped = Math.max(0, Math.min(100, percent));
  const filled = Math.round((clamped / 100) * width);
  const bar = `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${String(Math.round(clamped)).padStart(3)} %`;
  return message === '' ? bar : `${bar} ${message}`;
}

/**
 * Renders rows as an aligned text table; numeric columns are right-aligned.
 *
 * @example
 * ```ts
 * console.log(table(['name', 'n'], [['a', '1'], ['bb', '22']]));
 * ```
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => row[column]!.length)));
  const numeric = header.map((_, column) => rows.every((row) => /^[\d.,\s%msKkB~–-]+$/.test(row[column]!)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => (numeric[column] ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)))
      .join('  ');
  const rule = widths.map((width) => '─'.repeat(width)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** Bytes in a short human form: 812 B, 14.2 kB. */
function formatBytes(bytes: number): string {
  return bytes < 1000 ? `${Math.round(bytes)} B` : `${(bytes / 1000).toFixed(1)} kB`;
}

/** Milliseconds in a short human form. */
function formatMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

// ---- part 1: a job with a progress bar ------------------------------------------------------------

async function showJobProgress(): Promise<void> {
  console.log(bold('1. A long-running job, followed by long polling'));
  const uploads = await startUploads({ chunkBytes: 64 * 1024, stepDelayMs: 60 });
  try {
    const file = randomBytes(2 * 1024 * 1024);
    const response = await fetch(new URL('/upload?name=demo.bin', uploads.url), { method: 'POST', body: file });
    const location = response.headers.get('operation-location');
    if (response.status !== 202 || location === null) throw new Error(`upload answered ${response.status}`);
    console.log(dim(`   POST /upload → 202 Accepted, Operation-Location: ${location}`));
    const poller = longPollJob<{ sha256: string }>(location);
    let lastPrinted = -1;
    let changes = 0;
    poller.on('data', ([job]) => {
      if (job === undefined) return;
      changes++;
      const percent = job.status === 'succeeded' ? 100 : (job.progress?.percent ?? 0);
      if (tty) {
        process.stdout.write(`\r   ${progressBar(percent, 30, job.status.padEnd(9))}`);
      } else if (Math.floor(percent / 25) > lastPrinted || job.done) {
        // Not a terminal (a pipe, a test): a line per quarter, and the final state, instead of redrawing.
        lastPrinted = job.done ? Number.POSITIVE_INFINITY : Math.floor(percent / 25);
        console.log(`   ${progressBar(percent, 30, job.status)}`);
      }
    });
    const job = await poller.result();
    if (tty) process.stdout.write('\n');
    console.log(
      `   ${job?.status ?? 'unknown'} after ${changes} changes; sha-256 ${job?.result?.sha256.slice(0, 16) ?? '?'}…\n`,
    );
  } finally {
    await uploads.close();
  }
}

// ---- part 2: one stream, four transports ----------------------------------------------------------

/** What one transport cost to deliver the stream. */
export interface TransportFigures {
  readonly transport: string;
  readonly events: number;
  readonly requests: number;
  readonly bytes: number;
  readonly meanLatencyMs: number;
  readonly p95LatencyMs: number;
}

/** A listener that counts the HTTP requests, WebSocket upgrades and bytes that pass through it. */
class CountingServer {
  requests = 0;
  #closedBytes = 0;
  readonly #sockets = new Set<Socket>();

  constructor(readonly server: Server) {
    server.on('request', () => this.requests++);
    server.on('upgrade', () => this.requests++);
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => {
        this.#sockets.delete(socket);
        this.#closedBytes += socket.bytesRead + socket.bytesWritten;
      });
    });
  }

  /** Bytes both ways, headers and framing included, for closed and open connections. */
  get bytes(): number {
    let open = 0;
    for (const socket of this.#sockets) open += socket.bytesRead + socket.bytesWritten;
    return this.#closedBytes + open;
  }
}

interface Delivery {
  readonly n: number;
  readonly sentAt: number;
}

async function compareTransports(options: { events: number; intervalMs: number }): Promise<TransportFigures[]> {
  const { events, intervalMs } = options;
  console.log(bold(`2. One stream of ${events} events, four ways to receive it`));
  const topics = new TopicRegistry();
  const topic = topics.topic<Delivery>('demo.events');
  const handler = new PollkitHandler({ topics });
  const transports = ['short polling', 'long polling', 'SSE', 'WebSocket'] as const;
  const servers = new Map<string, CountingServer>();
  const listenings: { close(): Promise<void> }[] = [];
  const wsServers: PollkitWebSocketServer[] = [];
  for (const name of transports) {
    const server = createServer(createNodeListener(handler));
    if (name === 'WebSocket') {
      const sockets = new PollkitWebSocketServer(new WebSocketServer({ noServer: true }), handler);
      server.on('upgrade', (request: IncomingMessage, socket, head) => {
        if (!sockets.handleUpgrade(request, socket, head)) socket.destroy();
      });
      wsServers.push(sockets);
    }
    servers.set(name, new CountingServer(server));
    listenings.push(await listen(server));
  }
  const urlOf = (name: string): string => {
    const address = servers.get(name)!.server.address() as { port: number };
    return `http://127.0.0.1:${address.port}/`;
  };

  const received = new Map<string, number[]>(transports.map((name) => [name, []]));
  const allArrived = new Map<string, () => void>();
  const arrived = transports.map((name) => new Promise<void>((resolve) => allArrived.set(name, resolve)));
  const deliver = (name: string, record: TopicRecord<Delivery>): void => {
    const latencies = received.get(name)!;
    latencies.push(performance.now() - record.value.sentAt);
    if (latencies.length === events) allArrived.get(name)!();
  };

  // Short polling: ask every `intervalMs` whether anything is new since the last offset.
  const shortClient = new TopicClient({ baseUrl: urlOf('short polling') });
  const short = new ShortPoller<TopicFetchResponse<Delivery>>({
    interval: intervalMs,
    poll: async ({ signal, cursor }) => {
      const batch = await shortClient.fetch<Delivery>('demo.events', { offset: cursor?.nextOffset ?? 0, signal });
      return batch.records.length === 0 && cursor !== undefined ? unchangedReply() : pollReply(batch);
    },
    equals: (previous, next) => previous.nextOffset === next.nextOffset,
    done: (batch) => batch.nextOffset >= events,
  });
  short.on('update', (batch) => batch.records.forEach((record) => deliver('short polling', record)));

  // Long polling: the server holds each request until a record exists.
  const long = consumeTopic<Delivery>(new TopicClient({ baseUrl: urlOf('long polling') }).topicUrl('demo.events'), {
    offset: 0,
  });
  long.on('data', (records) => records.forEach((record) => deliver('long polling', record)));

  // SSE and WebSocket: one connection each, pushed to.
  const sse = new Subscriber<TopicRecord<Delivery>>({
    transports: new SseTransport({
      url: `${urlOf('SSE')}pollkit/topics/demo.events/events?offset=0`,
      decode: (data) => JSON.parse(data) as TopicRecord<Delivery>,
    }),
  });
  sse.on('message', ({ data }) => deliver('SSE', data));
  const wsBase = urlOf('WebSocket').replace('http', 'ws');
  const ws = new Subscriber<TopicRecord<Delivery>>({
    transports: new WebSocketTransport<TopicRecord<Delivery>>({
      url: (cursor) => `${wsBase}pollkit/topics/demo.events/ws?offset=${cursor === undefined ? 0 : Number(cursor) + 1}`,
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      decode: (text) => JSON.parse(text) as TopicRecord<Delivery>,
      idOf: (record) => String(record.offset),
    }),
  });
  ws.on('message', ({ data }) => deliver('WebSocket', data));

  short.start();
  long.start();
  sse.start();
  ws.start();
  await sleep(300); // let every reader connect before the first event

  // The stream: irregular gaps, the same for every run.
  const random = seededRandom(7);
  const started = performance.now();
  for (let n = 0; n < events; n++) {
    await topic.append({ n, sentAt: performance.now() });
    const percent = Math.round(((n + 1) / events) * 100);
    if (tty) process.stdout.write(`\r   ${progressBar(percent, 30, `event ${n + 1}/${events}`)}`);
    await sleep(50 + random() * 300);
  }
  const deadline = new AbortController();
  const timeout = sleep(intervalMs * 3 + 5000, { signal: deadline.signal }).then(
    () => 'timeout' as const,
    () => 'done' as const,
  );
  const outcome = await Promise.race([Promise.all(arrived).then(() => 'done' as const), timeout]);
  deadline.abort(); // a pending timer would keep the process alive after the demo ends
  const seconds = (performance.now() - started) / 1000;
  if (tty) process.stdout.write('\n');

  short.stop();
  long.stop();
  sse.close();
  ws.close();
  const figures = transports.map((name): TransportFigures => {
    const latencies = [...received.get(name)!].sort((a, b) => a - b);
    const counter = servers.get(name)!;
    return {
      transport: name,
      events: latencies.length,
      requests: counter.requests,
      bytes: counter.bytes,
      meanLatencyMs: latencies.reduce((sum, value) => sum + value, 0) / Math.max(1, latencies.length),
      p95LatencyMs: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.95))] ?? Number.NaN,
    };
  });
  for (const sockets of wsServers) await sockets.close();
  await handler.close();
  await topics.close();
  await Promise.all(listenings.map((listening) => listening.close()));

  const perEvent = (value: number, figure: TransportFigures): number => value / Math.max(1, figure.events);
  console.log(
    table(
      ['transport', 'events', 'requests', 'req/event', 'bytes', 'bytes/event', 'mean latency', 'p95 latency'],
      figures.map((figure) => [
        figure.transport,
        String(figure.events),
        String(figure.requests),
        perEvent(figure.requests, figure).toFixed(2),
        formatBytes(figure.bytes),
        formatBytes(perEvent(figure.bytes, figure)),
        formatMs(figure.meanLatencyMs),
        formatMs(figure.p95LatencyMs),
      ]),
    )
      .split('\n')
      .map((line) => `   ${line}`)
      .join('\n'),
  );
  console.log(
    dim(
      `   ${events} events over ${seconds.toFixed(1)} s; short polling every ${intervalMs} ms (±20 %); ` +
        'bytes are both directions on the wire, headers included; latency is append → delivery in this process.',
    ),
  );
  if (outcome === 'timeout') console.log('   warning: not every transport delivered every event in time');
  console.log('');
  return figures;
}

// ---- main ------------------------------------------------------------------------------------------

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '30' },
    interval: { type: 'string', default: '1000' },
    json: { type: 'string' },
  },
});
const events = Number(values.events);
const intervalMs = Number(values.interval);
if (!(Number.isSafeInteger(events) && events > 0) || !(intervalMs > 0)) {
  console.error('usage: demo.ts [--events N] [--interval MS] [--json FILE]');
  process.exit(2);
}

console.log(bold('pollkit demo') + dim(` — Node ${process.version}, everything in this process on 127.0.0.1\n`));
await showJobProgress();
const figures = await compareTransports({ events, intervalMs });
if (values.json !== undefined) {
  mkdirSync(dirname(values.json), { recursive: true });
  writeFileSync(
    values.json,
    `${JSON.stringify({ measuredAt: new Date().toISOString(), node: process.version, events, intervalMs, figures }, null, 2)}\n`,
  );
  console.log(dim(`   measurements written to ${values.json}\n`));
}
console.log(bold('3. The browser examples'));
for (const [name, hint] of [
  ['upload-progress', 'a file upload with a live progress bar (short polling or SSE), and cancel'],
  ['chat', 'a room per topic, long polling or WebSocket; open two tabs (?room=lobby&name=ada)'],
  ['notifications', "SSE with Last-Event-ID resume and heartbeats, in EventSource and pollkit's Subscriber"],
] as const) {
  console.log(`   node --import tsx examples/${name}/server.ts   ${dim(`→ http://127.0.0.1:3000/  ${hint}`)}`);
}
console.log(
  `   node --import tsx examples/bullmq-transcode/server.ts   ${dim('→ http://127.0.0.1:3000/  jobs on a BullMQ queue run by worker processes (node --import tsx examples/bullmq-transcode/worker.ts); needs a Redis (REDIS_URL)')}`,
);
console.log(
  `   ${dim('and without a browser: examples/kafka-style-consumer (offsets committed to a file), examples/every-framework')}`,
);
