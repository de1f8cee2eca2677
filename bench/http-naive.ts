/**
 * The baseline that `bench/http.ts` measures pollkit against: the long-poll server most people write
 * first. Every held request gets its own `setTimeout` and closure, waiters sit in one array, and every
 * append scans the whole array (and every disconnect filters it). It answers the same topic fetch as
 * pollkit (`GET /naive/topics/{t}/records?offset=&wait=`) so the load generator can drive both alike.
 *
 * It is deliberately not optimised; it exists so the benchmark prints a ratio, not a bare number.
 *
 * @module
 */
import http from 'node:http';

interface NaiveRecord {
  readonly offset: number;
  readonly timestamp: string;
  readonly key: string | null;
  readonly value: unknown;
}

interface NaiveWaiter {
  readonly topic: string;
  readonly offset: number;
  readonly limit: number;
  readonly res: http.ServerResponse;
  readonly timer: NodeJS.Timeout;
}

/** A running naive server. */
export interface NaiveServer {
  readonly server: http.Server;
  /** Appends one record to `topic` and answers every waiter it satisfies; returns the offset. */
  append(topic: string, value: unknown): number;
  /** How many requests are held right now. */
  held(): number;
}

/**
 * Creates the naive long-poll server (not listening yet).
 *
 * @example
 * ```ts
 * import { createNaiveServer } from './http-naive.js';
 * const naive = createNaiveServer();
 * naive.server.listen(0, '127.0.0.1');
 * ```
 */
export function createNaiveServer(): NaiveServer {
  const logs = new Map<string, NaiveRecord[]>();
  let waiters: NaiveWaiter[] = [];
  const logOf = (topic: string): NaiveRecord[] => {
    let log = logs.get(topic);
    if (log === undefined) {
      log = [];
      logs.set(topic, log);
    }
    return log;
  };

  const answer = (res: http.ServerResponse, topic: string, offset: number, limit: number): void => {
    const log = logOf(topic);
    const records = log.slice(offset, offset + limit);
    const body = JSON.stringify({
      topic,
      epoch: 'naive',
      records,
      nextOffset: offset + records.length,
      highWatermark: log.length,
      earliestOffset: 0,
    });
    res.writeHead(200, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const match = /^\/naive\/topics\/([^/]+)\/records$/.exec(url.pathname);
    if (req.method !== 'GET' || match === null) {
      res.writeHead(404).end();
      return;
    }
    const topic = match[1]!;
    const log = logOf(topic);
    const offset = Number(url.searchParams.get('offset') ?? '0');
    const limit = Number(url.searchParams.get('limit') ?? '100');
    const waitMs = Number(url.searchParams.get('wait') ?? '0') * 1000;
    if (offset < log.length || waitMs <= 0) {
      answer(res, topic, offset, limit);
      return;
    }
    const timer = setTimeout(() => {
      waiters = waiters.filter((waiter) => waiter.res !== res);
      answer(res, topic, offset, limit);
    }, waitMs);
    waiters.push({ topic, offset, limit, res, timer });
    res.on('close', () => {
      clearTimeout(timer);
      waiters = waiters.filter((waiter) => waiter.res !== res);
    });
  });

  return {
    server,
    append(topic: string, value: unknown): number {
      const log = logOf(topic);
      const offset = log.length;
      log.push({ offset, timestamp: new Date().toISOString(), key: null, value });
      const ready = waiters.filter((waiter) => waiter.topic === topic && waiter.offset < log.length);
      waiters = waiters.filter((waiter) => waiter.topic !== topic || waiter.offset >= log.length);
      for (const waiter of ready) {
        clearTimeout(waiter.timer);
        answer(waiter.res, topic, waiter.offset, waiter.limit);
      }
      return offset;
    },
    held: () => waiters.length,
  };
}
