/**
 * A small protocol-speaking topic server for the subscriber's integration tests: one in-memory log
 * served as SSE (`retry:`, `id:`, `: hb` heartbeats, resume from `Last-Event-ID` or `?offset=`), as a
 * WebSocket (`{offset,timestamp,key,value}` messages, `?offset=` resume, `ping` answered by `pong`),
 * and as long-poll fetches (`GET …/records?offset&limit&wait`). Failure switches let a test make the
 * next requests answer 503/429/204 or close sockets with a chosen code.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { TopicRecord } from '../../src/core/protocol.js';

export interface PushServerOptions {
  /** The `retry:` sent at the start of each SSE stream, in ms. Default 1. */
  readonly sseRetryMs?: number;
  /** Interval of `: hb` comments; 0 for none. Default 0. */
  readonly heartbeatMs?: number;
  /** Write each SSE event's `id:` line and the rest in separate writes. Default true. */
  readonly splitWrites?: boolean;
}

export interface FailureSpec {
  readonly status: number;
  readonly retryAfter?: string;
  /** How many requests answer this way. Default 1. */
  readonly times?: number;
}

export interface PushServer {
  readonly url: string;
  readonly wsUrl: string;
  readonly port: number;
  readonly records: readonly TopicRecord[];
  /** SSE/WS/long-poll requests received, by kind. */
  readonly requests: { sse: number; ws: number; poll: number };
  /** Last-Event-ID headers seen by SSE requests, in order. */
  readonly lastEventIds: (string | undefined)[];
  append(value: unknown, key?: string | null): TopicRecord;
  failNext(spec: FailureSpec): void;
  /** Closes every open WebSocket with this code and reason. */
  closeWebSockets(code: number, reason?: string): void;
  /** Ends every open SSE stream and held long poll (the server restarts, say). */
  dropAll(): void;
  /** Stops answering pings (a half-open connection from the client's point of view). */
  silence(value: boolean): void;
  close(): Promise<void>;
}

export async function startPushServer(options: PushServerOptions = {}): Promise<PushServer> {
  const retryMs = options.sseRetryMs ?? 1;
  const heartbeatMs = options.heartbeatMs ?? 0;
  const splitWrites = options.splitWrites ?? true;
  const records: TopicRecord[] = [];
  const waiters = new Set<() => void>();
  const streams = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  const failures: { spec: FailureSpec; left: number }[] = [];
  const requests = { sse: 0, ws: 0, poll: 0 };
  const lastEventIds: (string | undefined)[] = [];
  let silent = false;

  const notify = (): void => {
    for (const wake of [...waiters]) wake();
  };
  const takeFailure = (): FailureSpec | undefined => {
    const next = failures[0];
    if (next === undefined) return undefined;
    if (--next.left <= 0) failures.shift();
    return next.spec;
  };
  const fail = (res: ServerResponse, spec: FailureSpec): void => {
    const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
    if (spec.retryAfter !== undefined) headers['retry-after'] = spec.retryAfter;
    res.writeHead(spec.status, headers);
    res.end(spec.status === 204 ? undefined : JSON.stringify({ status: spec.status, code: `http-${spec.status}` }));
  };
  const startOffset = (req: IncomingMessage, url: URL): number => {
    const lastId = req.headers['last-event-id'];
    const fromHeader = typeof lastId === 'string' && lastId !== '' ? Number(lastId) + 1 : undefined;
    return fromHeader ?? Number(url.searchParams.get('offset') ?? '0');
  };

  const serveSse = (req: IncomingMessage, res: ServerResponse, url: URL): void => {
    requests.sse++;
    const lastId = req.headers['last-event-id'];
    lastEventIds.push(typeof lastId === 'string' ? lastId : undefined);
    let next = startOffset(req, url);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write(`retry: ${retryMs}\n\n`);
    streams.add(res);
    const pump = (): void => {
      while (next < records.length && !res.destroyed) {
        const record = records[next]!;
        const body = `data: ${JSON.stringify(record)}\n\n`;
        if (splitWrites) {
          res.write(`id: ${record.offset}\n`);
          res.write(body);
        } else {
          res.write(`id: ${record.offset}\n${body}`);
        }
        next++;
      }
    };
    const heartbeat = heartbeatMs > 0 ? setInterval(() => res.write(': hb\n\n'), heartbeatMs) : undefined;
    waiters.add(pump);
    res.on('close', () => {
      waiters.delete(pump);
      streams.delete(res);
      if (heartbeat !== undefined) clearInterval(heartbeat);
    });
    pump();
  };

  const servePoll = (res: ServerResponse, url: URL): void => {
    requests.poll++;
    const offset = Number(url.searchParams.get('offset') ?? '0');
    const limit = Number(url.searchParams.get('limit') ?? '100');
    const waitMs = Number(url.searchParams.get('wait') ?? '0') * 1000;
    const answer = (): void => {
      cleanup();
      const batch = records.slice(offset, offset + limit);
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(
        JSON.stringify({
          topic: 't',
          epoch: 'e1',
          records: batch,
          nextOffset: offset + batch.length,
          highWatermark: records.length,
          earliestOffset: 0,
        }),
      );
    };
    const timer = setTimeout(answer, waitMs);
    const wake = (): void => {
      if (records.length > offset) answer();
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      waiters.delete(wake);
      streams.delete(res);
    };
    res.on('close', cleanup);
    if (records.length > offset || waitMs === 0) {
      answer();
      return;
    }
    waiters.add(wake);
    streams.add(res);
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const failure = takeFailure();
    if (failure !== undefined) {
      fail(res, failure);
      return;
    }
    if (url.pathname === '/pollkit/topics/t/events') serveSse(req, res, url);
    else if (url.pathname === '/pollkit/topics/t/records' && req.method === 'GET') servePoll(res, url);
    else {
      res.writeHead(404, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ status: 404, code: 'not-found' }));
    }
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  const wss = new WebSocketServer({ noServer: true });
  const webSockets = new Set<WebSocket>();
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const failure = takeFailure();
    if (url.pathname !== '/pollkit/topics/t/ws' || failure !== undefined) {
      socket.end(`HTTP/1.1 ${failure?.status ?? 404} Nope\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      requests.ws++;
      webSockets.add(ws);
      let next = Number(url.searchParams.get('offset') ?? '0');
      const pump = (): void => {
        while (next < records.length && ws.readyState === ws.OPEN) ws.send(JSON.stringify(records[next++]));
      };
      waiters.add(pump);
      ws.on('message', (data) => {
        if (String(data) === 'ping' && !silent) ws.send('pong');
      });
      ws.on('close', () => {
        waiters.delete(pump);
        webSockets.delete(ws);
      });
      ws.on('error', () => {});
      pump();
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    port,
    records,
    requests,
    lastEventIds,
    append(value: unknown, key: string | null = null): TopicRecord {
      const record: TopicRecord = { offset: records.length, timestamp: new Date().toISOString(), key, value };
      records.push(record);
      notify();
      return record;
    },
    failNext(spec: FailureSpec): void {
      failures.push({ spec, left: spec.times ?? 1 });
    },
    closeWebSockets(code: number, reason = ''): void {
      for (const ws of webSockets) ws.close(code, reason);
    },
    dropAll(): void {
      for (const res of streams) res.destroy();
      for (const ws of webSockets) ws.terminate();
    },
    silence(value: boolean): void {
      silent = value;
    },
    close: async () => {
      for (const ws of webSockets) ws.terminate();
      for (const socket of sockets) socket.destroy();
      wss.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
