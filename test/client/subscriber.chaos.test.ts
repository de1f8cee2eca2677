/**
 * A thousand cuts per transport: a chaos proxy severs the server-to-client stream at random byte
 * offsets (a share of them right after an SSE `id:` line) while a producer appends numbered records.
 * The subscriber must deliver every record exactly once, in order.
 */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { backoff } from '../../src/core/backoff.js';
import type { TopicRecord } from '../../src/core/protocol.js';
import { TopicClient } from '../../src/client/http.js';
import { Subscriber } from '../../src/client/subscriber.js';
import { LongPollTransport } from '../../src/client/transports/long-poll.js';
import { SseTransport } from '../../src/client/transports/sse.js';
import type { Transport } from '../../src/client/transports/transport.js';
import { type WebSocketConstructor, WebSocketTransport } from '../../src/client/transports/websocket.js';
import { type ChaosProxy, startChaosProxy } from '../helpers/chaos-proxy.js';
import { type PushServer, startPushServer } from '../helpers/push-server.js';

const CUTS = 1000;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const next = (cursor: string | undefined): number => (cursor === undefined ? 0 : Number(cursor) + 1);

async function run(
  make: (server: PushServer, proxy: ChaosProxy) => Transport<TopicRecord>,
  seed: number,
  maxBytes: number,
): Promise<{ received: number[]; cuts: number; idLineCuts: number; connections: number }> {
  const server = await startPushServer({ sseRetryMs: 1 });
  cleanups.push(() => server.close());
  const proxy = await startChaosProxy({ targetPort: server.port, seed, minBytes: 1, maxBytes, maxCuts: CUTS });
  cleanups.push(() => proxy.close());
  const subscriber = new Subscriber<TopicRecord>({
    transports: make(server, proxy),
    backoff: backoff({ strategy: 'full', initial: 2, max: 5 }),
    spreadMs: 0,
    stableAfterMs: 50,
    connectTimeoutMs: 2000,
  });
  cleanups.push(async () => subscriber.close());
  const received: number[] = [];
  let connections = 0;
  subscriber.on('open', () => connections++);
  let produced = 0;
  const done = new Promise<void>((resolve, reject) => {
    subscriber.on('message', ({ data }) => {
      received.push(data.offset);
      if (proxy.cuts >= CUTS && received.length === produced && producerStopped) resolve();
    });
    subscriber.on('gone', ({ reason, error }) => {
      if (reason !== 'closed') reject(error as Error);
    });
  });
  let producerStopped = false;
  subscriber.start();
  // The producer appends records every millisecond until the proxy has made its thousand cuts.
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      // Paced by the consumer so each connection's replay stays short and the cuts land in fresh data.
      for (let i = 0; i < 3 && produced - received.length < 30; i++) {
        server.append({ n: produced, pad: 'x'.repeat(produced % 40) });
        produced++;
      }
      if (proxy.cuts >= CUTS) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  producerStopped = true;
  server.append({ n: produced, last: true });
  produced++;
  await done;
  subscriber.close();
  return { received, cuts: proxy.cuts, idLineCuts: proxy.idLineCuts, connections };
}

function expectExactlyOnceInOrder(received: number[]): void {
  // Cheap to state, strict to pass: offsets 0..n-1, each once, in order.
  const wrong = received.findIndex((offset, index) => offset !== index);
  expect(wrong).toBe(-1);
}

describe('Subscriber under a chaos proxy: 1,000 cuts, zero lost, zero duplicated, in order', () => {
  it('over SSE (cuts include the gap between an id: line and the end of its event)', async () => {
    const result = await run(
      (_server, proxy) =>
        new SseTransport<TopicRecord>({
          url: `${proxy.url}/pollkit/topics/t/events`,
          decode: (data) => JSON.parse(data) as TopicRecord,
        }),
      11,
      1500,
    );
    expect(result.cuts).toBe(CUTS);
    expect(result.idLineCuts).toBeGreaterThan(100);
    expectExactlyOnceInOrder(result.received);
    expect(result.connections).toBeGreaterThan(CUTS / 2);
  }, 60_000);

  it('over WebSocket', async () => {
    const result = await run(
      (_server, proxy) =>
        new WebSocketTransport<TopicRecord>({
          url: (cursor) => `${proxy.wsUrl}/pollkit/topics/t/ws?offset=${next(cursor)}`,
          WebSocket: WebSocket as unknown as WebSocketConstructor,
          decode: (text) => JSON.parse(text) as TopicRecord,
          idOf: (record) => String(record.offset),
        }),
      12,
      1500,
    );
    expect(result.cuts).toBe(CUTS);
    expectExactlyOnceInOrder(result.received);
  }, 60_000);

  it('over long polling', async () => {
    const result = await run(
      (_server, proxy) =>
        new LongPollTransport({
          client: new TopicClient({ baseUrl: proxy.url }),
          topic: 't',
          waitMs: 1000,
          minIntervalMs: 0,
          limit: 20,
        }),
      13,
      3000,
    );
    expect(result.cuts).toBe(CUTS);
    expectExactlyOnceInOrder(result.received);
  }, 60_000);
});
