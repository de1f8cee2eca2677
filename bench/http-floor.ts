/**
 * The lower bounds that `bench/http.ts` prints beside pollkit: servers that do nothing but hold
 * responses and, on an append, answer them all in one synchronous loop with one prebuilt body. They
 * parse nothing beyond the path and keep no timers, so what they cost is what answering costs at all.
 *
 * - `http`: `writeHead` + `end` on each `ServerResponse`, the least that any server built on
 *   `node:http` can do per answer (pollkit/node, Express, Fastify, Koa and Hono's Node server all are).
 * - `http-sliced`: the same, but like pollkit's purgatory it yields to the event loop once a wake-up
 *   has run for 100 ms (checking the clock every 256 answers), so timers and new connections are served
 *   during a wake-up of thousands: the least a server that must stay responsive can do.
 * - `socket`: the prebuilt response bytes written straight onto each socket, past `node:http`'s
 *   response machinery: the kernel's and libuv's share alone. Not a usable server (those responses
 *   never finish, so a connection cannot be reused), only a measurement.
 *
 * Both answer `GET /floor/topics/{t}/records?offset=` like the naive server and pollkit do, so the
 * load generator drives all of them alike. A fetch behind the head is answered at once, with
 * placeholders for the records it missed (the floors keep only each topic's length).
 *
 * @module
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';

/** How a floor server writes its answers. */
export type FloorMode = 'http' | 'http-sliced' | 'socket';

/** The `http-sliced` floor's slice and batch: pollkit's `resumeSliceMs` and `resumeBatchSize` defaults. */
const SLICE_MS = 100;
const BATCH = 256;

/** A running floor server. */
export interface FloorServer {
  readonly server: http.Server;
  /** Appends one record to `topic` and answers every request held on it; returns the offset. */
  append(topic: string, value: unknown): number;
  /** How many requests are held right now. */
  held(): number;
}

/**
 * Creates a floor server (not listening yet).
 *
 * @example
 * ```ts
 * import { createFloorServer } from './http-floor.js';
 * const floor = createFloorServer('http');
 * floor.server.listen(0, '127.0.0.1');
 * ```
 */
export function createFloorServer(mode: FloorMode): FloorServer {
  const lengths = new Map<string, number>();
  const waiting = new Map<string, Set<http.ServerResponse>>();
  let held = 0;

  const server = http.createServer((req, res) => {
    const match = /^\/floor\/topics\/([^/?]+)\/records\?offset=(\d+)/.exec(req.url ?? '');
    if (req.method !== 'GET' || match === null) {
      res.writeHead(404).end();
      return;
    }
    const topic = match[1]!;
    const offset = Number(match[2]);
    const length = lengths.get(topic) ?? 0;
    if (offset < length) {
      // A reader that fell behind (section 5): answered at once, with placeholders for what it missed.
      const missed = Array.from({ length: length - offset }, (_, i) => ({ offset: offset + i, value: null }));
      const body = JSON.stringify({
        topic,
        epoch: 'floor',
        records: missed,
        nextOffset: length,
        highWatermark: length,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      return;
    }
    let set = waiting.get(topic);
    if (set === undefined) {
      set = new Set();
      waiting.set(topic, set);
    }
    set.add(res);
    held++;
    res.on('close', () => {
      if (set.delete(res)) held--;
    });
  });

  return {
    server,
    append(topic: string, value: unknown): number {
      const offset = lengths.get(topic) ?? 0;
      lengths.set(topic, offset + 1);
      const body = JSON.stringify({
        topic,
        epoch: 'floor',
        records: [{ offset, timestamp: new Date().toISOString(), key: null, value }],
        nextOffset: offset + 1,
        highWatermark: offset + 1,
        earliestOffset: 0,
      });
      const length = Buffer.byteLength(body);
      const headers = { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': length };
      const raw = Buffer.from(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: no-store\r\n` +
          `content-length: ${length}\r\n\r\n${body}`,
      );
      const set = waiting.get(topic);
      if (set === undefined) return offset;
      waiting.delete(topic);
      held -= set.size;
      if (mode === 'http-sliced') {
        // A copy, so that a client hanging up mid-wake-up is not counted off `held` twice.
        answerInSlices([...set].values(), (res) => res.writeHead(200, headers).end(body));
        set.clear();
        return offset;
      }
      for (const res of set) {
        if (mode === 'socket') res.socket?.write(raw);
        else res.writeHead(200, headers).end(body);
      }
      set.clear();
      return offset;
    },
    held: () => held,
  };
}

/** Answers every response `pending` yields, yielding to the event loop after each `SLICE_MS` of work. */
function answerInSlices(pending: Iterator<http.ServerResponse>, answer: (res: http.ServerResponse) => void): void {
  const sliceEnds = performance.now() + SLICE_MS;
  for (;;) {
    for (let i = 0; i < BATCH; i++) {
      const next = pending.next();
      if (next.done === true) return;
      answer(next.value);
    }
    if (performance.now() >= sliceEnds) {
      setImmediate(() => answerInSlices(pending, answer));
      return;
    }
  }
}
