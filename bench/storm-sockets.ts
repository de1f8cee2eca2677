/**
 * The storm on real sockets: 1,000 clients of one library in this process against pollkit's server in a
 * child process (bench/storm-server.ts) on loopback; the server cuts every connection and closes its
 * port, and listens again after the outage. Measured at the server: requests and upgrades accepted per
 * 100 ms after it returns (the peak is the herd it has to absorb). Measured at the clients: time from
 * the server's return to each one's reopened connection (p50, p99, max), and how many gave up.
 *
 * Every library runs with its default options; only the WebSocket class is passed where Node needs it.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';
import { WebSocket as PartySocket } from 'partysocket';
import ReconnectingWebSocket from 'reconnecting-websocket';
import WebSocket from 'ws';
import { subscribeTopic } from '../src/client/subscribe-topic.js';

/** What one library did through one outage. */
export interface StormRow {
  readonly name: string;
  readonly peak: number;
  readonly arrivals: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly back: number;
  readonly gaveUp: number;
  /** Neither back nor given up a minute after the server returned. */
  readonly notBack: number;
}

/** One client, however its library spells it: `onOpen` on every (re)open, `close` to end it. */
interface Client {
  close(): void;
}
type MakeClient = (
  url: { topic: string; ws: string; sse: string },
  onOpen: () => void,
  onGone: () => void,
  index: number,
  clients: number,
) => Client;

/**
 * The floor: plain `ws` sockets that reconnect on a perfectly stratified 4.6 s cycle (client i at
 * i/N of the cycle after the drop, then every 4.6 s), which no independent client can beat: any peak
 * above clients ÷ 46 windows (≈ 22) in this row is the machine (a starved process accepting in bursts),
 * not a schedule.
 */
function floorClient(url: string, onOpen: () => void, index: number, clients: number): Client {
  const cycle = 4600;
  let socket: WebSocket | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let droppedAt = 0;
  const connect = (): void => {
    socket = new WebSocket(url);
    socket.on('open', onOpen);
    socket.on('error', () => {});
    socket.on('close', () => {
      if (closed) return;
      if (droppedAt === 0) droppedAt = Date.now();
      const phase = (index / clients) * cycle;
      const since = Date.now() - droppedAt;
      const next = since <= phase ? phase - since : cycle - ((since - phase) % cycle);
      timer = setTimeout(connect, next);
    });
    socket.on('open', () => (droppedAt = 0));
  };
  connect();
  return {
    close: () => {
      closed = true;
      clearTimeout(timer);
      socket?.terminate();
    },
  };
}

/**
 * `ws` with a no-op `error` listener: reconnecting-websocket and partysocket close a socket still
 * connecting when their connect timeout fires, and `ws` then emits an `error` event that, unheard,
 * ends the process. Browsers have no such event; this changes none of the libraries' behaviour.
 */
class QuietWebSocket extends WebSocket {
  constructor(...args: ConstructorParameters<typeof WebSocket>) {
    super(...args);
    this.on('error', () => {});
  }
}

export const LIBRARIES: readonly { readonly name: string; readonly make: MakeClient }[] = [
  {
    name: 'floor: ws, stratified 4.6 s cycle',
    make: ({ ws }, onOpen, _onGone, index, clients) => floorClient(ws, onOpen, index, clients),
  },
  {
    name: 'pollkit subscribeTopic, websocket',
    make: ({ topic }, onOpen, onGone) => {
      const s = subscribeTopic(topic, { transport: 'websocket', WebSocket, offset: 1 });
      s.on('open', onOpen).on('gone', ({ reason }) => reason !== 'closed' && onGone());
      return s.start();
    },
  },
  {
    name: 'pollkit subscribeTopic, sse',
    make: ({ topic }, onOpen, onGone) => {
      const s = subscribeTopic(topic, { transport: 'sse', offset: 1 });
      s.on('open', onOpen).on('gone', ({ reason }) => reason !== 'closed' && onGone());
      return s.start();
    },
  },
  {
    name: 'reconnecting-websocket 4',
    make: ({ ws }, onOpen) => {
      const socket = new ReconnectingWebSocket(ws, [], { WebSocket: QuietWebSocket });
      socket.addEventListener('open', onOpen);
      return { close: () => socket.close() };
    },
  },
  {
    name: 'partysocket 1',
    make: ({ ws }, onOpen) => {
      const socket = new PartySocket(ws, [], { WebSocket: QuietWebSocket });
      socket.addEventListener('open', onOpen);
      return { close: () => socket.close() };
    },
  },
  {
    name: 'eventsource 4',
    make: ({ sse }, onOpen, onGone) => {
      const source = new EventSource(sse);
      source.addEventListener('open', onOpen);
      source.addEventListener('error', () => {
        if (source.readyState === EventSource.CLOSED) onGone();
      });
      return { close: () => source.close() };
    },
  },
];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

function ask<T>(child: ChildProcess, op: string, answer: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (message: { op: string }): void => {
      if (message.op !== answer) return;
      child.off('message', onMessage);
      resolve(message as T);
    };
    child.on('message', onMessage);
    if (op !== '') child.send({ op });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Runs one library through one outage; everything it started is ended before it returns. */
export async function stormOnSockets(
  library: { readonly name: string; readonly make: MakeClient },
  clients: number,
  outageMs: number,
): Promise<StormRow> {
  const port = await freePort();
  const script = fileURLToPath(new URL('./storm-server.ts', import.meta.url));
  const child = fork(script, [String(port)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    await ask(child, '', 'ready');
    const base = `127.0.0.1:${port}/pollkit/topics/storm`;
    const url = { topic: `http://${base}`, ws: `ws://${base}/ws?offset=1`, sse: `http://${base}/events?offset=1` };
    let upAt = Number.POSITIVE_INFINITY;
    let connected = 0;
    let gaveUp = 0;
    const back: number[] = [];
    const list: Client[] = [];
    for (let i = 0; i < clients; i++) {
      let counted = false;
      list.push(
        library.make(
          url,
          () => {
            const now = Date.now();
            if (now < upAt) connected++;
            else if (!counted) {
              counted = true;
              back.push(now - upAt);
            }
          },
          () => gaveUp++,
          i,
          clients,
        ),
      );
      // A gentle start, so that the baseline is not a storm of its own.
      if (i % 50 === 49) await sleep(20);
    }
    for (let waited = 0; connected < clients && waited < 30_000; waited += 50) await sleep(50);
    await sleep(500);
    await ask(child, 'down', 'down');
    await sleep(outageMs);
    upAt = (await ask<{ at: number }>(child, 'up', 'up')).at;
    const deadline = Date.now() + 60_000;
    while (back.length + gaveUp < clients && Date.now() < deadline) await sleep(50);
    const { arrivals } = await ask<{ arrivals: number[] }>(child, 'arrivals', 'arrivals');
    for (const client of list) client.close();
    const windows = new Map<number, number>();
    for (const at of arrivals) {
      const window = Math.floor((at - upAt) / 100);
      windows.set(window, (windows.get(window) ?? 0) + 1);
    }
    back.sort((a, b) => a - b);
    return {
      name: library.name,
      peak: Math.max(0, ...windows.values()),
      arrivals: arrivals.length,
      p50: percentile(back, 50),
      p99: percentile(back, 99),
      max: back.at(-1) ?? Number.NaN,
      back: back.length,
      gaveUp,
      notBack: clients - back.length - gaveUp,
    };
  } finally {
    child.send({ op: 'exit' });
    await new Promise((resolve) => child.once('exit', resolve));
  }
}
