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
import { performance } from 'node:perf_hooks';
import { RawConnection as Connection } from '../test/helpers/raw-http.js';

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

/** Absolute time in milliseconds, comparable across processes on one host (both use the wall clock origin). */
export function absoluteNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Every request asks for JSON, as a client of the protocol does. */
const ACCEPT = 'accept: application/json\r\n';

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
    connection.get(host, paths[index]!, ACCEPT).then(
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
        const response = await connection.get(host, path, ACCEPT);
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
        const response = await connection.get(host, pathTemplate.replace('{offset}', String(offset)), ACCEPT);
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
        const response = await connection.get(host, `${path}?offset=${offset}&wait=600`, ACCEPT);
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
