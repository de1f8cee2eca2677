/**
 * The load generator of `bench/http.ts`, run as a forked child so the server under test never shares a
 * process (or an event loop, or a file-descriptor budget) with its clients. It speaks HTTP/1.1 over raw
 * `net` sockets instead of `node:http`'s client: a held request then costs the load side one socket and
 * a few closures, so 9 500 of them per process stay cheap and the server stays the thing measured.
 *
 * Commands arrive as IPC messages ({@link LoadCommand}); each is answered with one {@link LoadReply}.
 * Only loopback addresses are accepted.
 *
 * @module
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';

/** A command from the orchestrator. */
export type LoadCommand =
  | {
      readonly id: number;
      readonly cmd: 'hold';
      readonly host: string;
      readonly port: number;
      readonly paths: readonly string[];
    }
  | {
      readonly id: number;
      readonly cmd: 'collect';
      readonly timeoutMs: number;
      /** Collect only the first `count` held requests (the ones expected to be answered). */
      readonly count: number;
    }
  | { readonly id: number; readonly cmd: 'release' }
  | {
      readonly id: number;
      readonly cmd: 'rps';
      readonly host: string;
      readonly port: number;
      readonly path: string;
      readonly connections: number;
      readonly durationMs: number;
    }
  | {
      readonly id: number;
      readonly cmd: 'poll';
      readonly host: string;
      readonly port: number;
      /** Path with `{offset}` where each client's next offset goes. */
      readonly pathTemplate: string;
      readonly clients: number;
      /** 0 = long poll (ask again as soon as an answer arrives); > 0 = short poll at this interval. */
      readonly intervalMs: number;
      readonly durationMs: number;
      readonly startOffset: number;
    }
  | {
      readonly id: number;
      readonly cmd: 'follow';
      readonly host: string;
      readonly port: number;
      /** One long-poll follower per path (a topic's records URL without its query). */
      readonly paths: readonly string[];
      /** Records each follower must receive before it stops. */
      readonly records: number;
    }
  | { readonly id: number; readonly cmd: 'followed'; readonly timeoutMs: number }
  | { readonly id: number; readonly cmd: 'exit' };

/** The answer to one command. */
export type LoadReply =
  | { readonly id: number; readonly ok: true; readonly [key: string]: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string };

/** One parsed HTTP response. */
interface ParsedResponse {
  readonly status: number;
  readonly body: string;
  /** Bytes of the whole response (status line, headers, body framing). */
  readonly bytes: number;
}

/** Absolute time in milliseconds, comparable across processes on one host (both use the wall clock origin). */
export function absoluteNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * A keep-alive HTTP/1.1 connection that sends one request at a time and parses responses framed by
 * `Content-Length` or chunked encoding — enough for what pollkit and the naive baseline send.
 */
class Connection {
  readonly socket: net.Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #waiting: ((response: ParsedResponse | Error) => void) | undefined;
  requestBytes = 0;
  closed = false;

  constructor(host: string, port: number) {
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.on('data', (chunk: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
      this.#parse();
    });
    const fail = (error?: Error): void => {
      this.closed = true;
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting?.(error ?? new Error('connection closed'));
    };
    this.socket.on('error', fail);
    this.socket.on('close', () => fail());
  }

  request(host: string, path: string): Promise<ParsedResponse> {
    const text = `GET ${path} HTTP/1.1\r\nhost: ${host}\r\naccept: application/json\r\n\r\n`;
    this.requestBytes += text.length;
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error('connection closed'));
        return;
      }
      this.#waiting = (result) => (result instanceof Error ? reject(result) : resolve(result));
      this.socket.write(text);
    });
  }

  #parse(): void {
    const headerEnd = this.#buffer.indexOf('\r\n\r\n');
    if (headerEnd < 0) return;
    const head = this.#buffer.toString('latin1', 0, headerEnd);
    const status = Number(head.slice(9, 12));
    const lower = head.toLowerCase();
    const lengthMatch = /\r\ncontent-length:\s*(\d+)/.exec(lower);
    let bodyStart = headerEnd + 4;
    let body: string;
    let end: number;
    if (status === 304 || status === 204) {
      body = '';
      end = bodyStart;
    } else if (lengthMatch !== null) {
      const length = Number(lengthMatch[1]);
      if (this.#buffer.length < bodyStart + length) return;
      body = this.#buffer.toString('utf8', bodyStart, bodyStart + length);
      end = bodyStart + length;
    } else if (/\r\ntransfer-encoding:\s*chunked/.test(lower)) {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = this.#buffer.indexOf('\r\n', bodyStart);
        if (lineEnd < 0) return;
        const size = Number.parseInt(this.#buffer.toString('latin1', bodyStart, lineEnd), 16);
        if (this.#buffer.length < lineEnd + 2 + size + 2) return;
        if (size === 0) {
          end = lineEnd + 4;
          break;
        }
        parts.push(this.#buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
        bodyStart = lineEnd + 2 + size + 2;
      }
      body = Buffer.concat(parts).toString('utf8');
    } else {
      return; // close-delimited bodies are not used by the servers under test
    }
    const bytes = end;
    this.#buffer = this.#buffer.subarray(end);
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.({ status, body, bytes });
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }
}

function assertLoopback(host: string): void {
  if (host !== '127.0.0.1' && host !== '::1' && host !== 'localhost') throw new Error(`loopback only, got ${host}`);
}

function connectAll(host: string, port: number, count: number): Promise<Connection[]> {
  // Pace the connects so the listen backlog never overflows (a dropped SYN costs a 1 s retransmit).
  return new Promise((resolve, reject) => {
    const connections: Connection[] = [];
    let opened = 0;
    let started = 0;
    const inFlight = 256;
    const startOne = (): void => {
      if (started >= count) return;
      started += 1;
      const connection = new Connection(host, port);
      connections.push(connection);
      connection.socket.once('connect', () => {
        opened += 1;
        if (opened === count) resolve(connections);
        else startOne();
      });
      connection.socket.once('error', (error) => reject(error));
    };
    if (count === 0) resolve(connections);
    for (let i = 0; i < Math.min(inFlight, count); i++) startOne();
  });
}

interface HeldState {
  connections: Connection[];
  responses: Promise<{ at: number; status: number } | { at: number; error: string }>[];
}

let held: HeldState | undefined;

async function hold(host: string, port: number, paths: readonly string[]): Promise<Record<string, unknown>> {
  assertLoopback(host);
  const connections = await connectAll(host, port, paths.length);
  const responses = connections.map((connection, index) =>
    connection.request(host, paths[index]!).then(
      (response) => ({ at: absoluteNow(), status: response.status }),
      (error: unknown) => ({ at: absoluteNow(), error: String(error) }),
    ),
  );
  held = { connections, responses };
  return { held: connections.length };
}

async function collect(timeoutMs: number, count: number): Promise<Record<string, unknown>> {
  if (held === undefined) throw new Error('nothing held');
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const all = Promise.all(held.responses.slice(0, count));
  const outcome = await Promise.race([all, timeout]);
  clearTimeout(timer);
  if (outcome === 'timeout') return { timedOut: true };
  const times = outcome.map((entry) => entry.at);
  const statuses: Record<string, number> = {};
  for (const entry of outcome) {
    const key = 'status' in entry ? String(entry.status) : 'error';
    statuses[key] = (statuses[key] ?? 0) + 1;
  }
  return { times, statuses };
}

function release(): Record<string, unknown> {
  const count = held?.connections.length ?? 0;
  for (const connection of held?.connections ?? []) connection.destroy();
  held = undefined;
  return { released: count };
}

async function requestsPerSecond(
  host: string,
  port: number,
  path: string,
  connectionCount: number,
  durationMs: number,
): Promise<Record<string, unknown>> {
  assertLoopback(host);
  const connections = await connectAll(host, port, connectionCount);
  let completed = 0;
  let failed = 0;
  let running = true;
  const started = performance.now();
  const warmupEnd = started + Math.min(1000, durationMs / 5);
  let measuredFrom = 0;
  let measuredCount = 0;
  const loop = async (connection: Connection): Promise<void> => {
    while (running && !connection.closed) {
      try {
        const response = await connection.request(host, path);
        if (response.status === 200) completed += 1;
        else failed += 1;
      } catch {
        failed += 1;
        return;
      }
      const now = performance.now();
      if (now >= warmupEnd) {
        if (measuredFrom === 0) measuredFrom = now;
        measuredCount += 1;
      }
    }
  };
  const loops = connections.map((connection) => loop(connection));
  await new Promise((resolve) => setTimeout(resolve, durationMs));
  running = false;
  const measuredMs = performance.now() - measuredFrom;
  await Promise.race([Promise.all(loops), new Promise((resolve) => setTimeout(resolve, 2000))]);
  for (const connection of connections) connection.destroy();
  return { completed, failed, requestsPerSecond: (measuredCount / measuredMs) * 1000 };
}

async function poll(
  host: string,
  port: number,
  pathTemplate: string,
  clients: number,
  intervalMs: number,
  durationMs: number,
  startOffset: number,
): Promise<Record<string, unknown>> {
  assertLoopback(host);
  const connections = await connectAll(host, port, clients);
  let requests = 0;
  let responseBytes = 0;
  let delivered = 0;
  let failed = 0;
  let running = true;
  const deadline = performance.now() + durationMs;
  const loop = async (connection: Connection, index: number): Promise<void> => {
    let offset = startOffset;
    // Spread short pollers over the interval, as independent clients would be.
    if (intervalMs > 0) await new Promise((resolve) => setTimeout(resolve, (index * intervalMs) / clients));
    while (running && !connection.closed && performance.now() < deadline) {
      const sentAt = performance.now();
      try {
        const response = await connection.request(host, pathTemplate.replace('{offset}', String(offset)));
        requests += 1;
        responseBytes += response.bytes;
        if (response.status === 200) {
          const parsed = JSON.parse(response.body) as { records: unknown[]; nextOffset: number };
          delivered += parsed.records.length;
          offset = parsed.nextOffset;
        } else failed += 1;
      } catch {
        failed += 1;
        return;
      }
      if (intervalMs > 0) {
        const rest = intervalMs - (performance.now() - sentAt);
        if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
      }
    }
  };
  const loops = connections.map((connection, index) => loop(connection, index));
  await new Promise((resolve) => setTimeout(resolve, durationMs));
  running = false;
  for (const connection of connections) connection.destroy();
  await Promise.allSettled(loops);
  const requestBytes = connections.reduce((sum, connection) => sum + connection.requestBytes, 0);
  return { requests, requestBytes, responseBytes, delivered, failed };
}

interface Following {
  connections: Connection[];
  done: Promise<{ at: number; requests: number; failed: number }[]>;
}

let following: Following | undefined;

/**
 * Connects one follower per path, each long-polling its topic from offset 0 and asking again from
 * `nextOffset` at once, until it has received `records` records. Replies once all are connected and
 * holding their first fetch; `followed` then waits for them to finish.
 */
async function follow(
  host: string,
  port: number,
  paths: readonly string[],
  records: number,
): Promise<Record<string, unknown>> {
  assertLoopback(host);
  const connections = await connectAll(host, port, paths.length);
  const loop = async (connection: Connection, path: string) => {
    let offset = 0;
    let received = 0;
    let requests = 0;
    let failed = 0;
    while (received < records && !connection.closed) {
      try {
        const response = await connection.request(host, `${path}?offset=${offset}&wait=600`);
        requests += 1;
        if (response.status !== 200) {
          failed += 1;
          continue;
        }
        const parsed = JSON.parse(response.body) as { records: unknown[]; nextOffset: number };
        received += parsed.records.length;
        offset = parsed.nextOffset;
      } catch {
        failed += 1;
        break;
      }
    }
    return { at: absoluteNow(), requests, failed };
  };
  following = { connections, done: Promise.all(connections.map((connection, i) => loop(connection, paths[i]!))) };
  return { following: connections.length };
}

async function followed(timeoutMs: number): Promise<Record<string, unknown>> {
  if (following === undefined) throw new Error('nobody follows');
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const outcome = await Promise.race([following.done, timeout]);
  clearTimeout(timer);
  for (const connection of following.connections) connection.destroy();
  following = undefined;
  if (outcome === 'timeout') return { timedOut: true };
  return {
    last: Math.max(...outcome.map((entry) => entry.at)),
    requests: outcome.reduce((sum, entry) => sum + entry.requests, 0),
    failed: outcome.reduce((sum, entry) => sum + entry.failed, 0),
  };
}

async function run(command: LoadCommand): Promise<Record<string, unknown>> {
  switch (command.cmd) {
    case 'hold':
      return hold(command.host, command.port, command.paths);
    case 'collect':
      return collect(command.timeoutMs, command.count);
    case 'release':
      return release();
    case 'rps':
      return requestsPerSecond(command.host, command.port, command.path, command.connections, command.durationMs);
    case 'poll':
      return poll(
        command.host,
        command.port,
        command.pathTemplate,
        command.clients,
        command.intervalMs,
        command.durationMs,
        command.startOffset,
      );
    case 'follow':
      return follow(command.host, command.port, command.paths, command.records);
    case 'followed':
      return followed(command.timeoutMs);
    case 'exit':
      release();
      setImmediate(() => process.exit(0));
      return {};
  }
}

process.on('message', (message: LoadCommand) => {
  run(message).then(
    (result) => process.send?.({ id: message.id, ok: true, ...result } satisfies LoadReply),
    (error: unknown) => process.send?.({ id: message.id, ok: false, error: String(error) } satisfies LoadReply),
  );
});
