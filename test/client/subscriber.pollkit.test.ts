/**
 * The subscriber against pollkit's own server (PollkitHandler behind the node adapter, topic sockets
 * through the ws adapter), through the chaos proxy: the same exactly-once, in-order guarantee as the
 * thousand-cut suite, with fewer cuts, on the real wire format.
 */
import { createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { createNodeListener } from '../../src/adapters/node.js';
import { PollkitWebSocketServer } from '../../src/adapters/ws.js';
import { backoff } from '../../src/core/backoff.js';
import type { TopicRecord } from '../../src/core/protocol.js';
import { PollkitHandler } from '../../src/server/http/handler.js';
import { TopicRegistry } from '../../src/server/topics/topic-registry.js';
import { TopicClient } from '../../src/client/http.js';
import { Subscriber } from '../../src/client/subscriber.js';
import { LongPollTransport } from '../../src/client/transports/long-poll.js';
import { SseTransport } from '../../src/client/transports/sse.js';
import type { Transport } from '../../src/client/transports/transport.js';
import { type WebSocketConstructor, WebSocketTransport } from '../../src/client/transports/websocket.js';
import { startChaosProxy } from '../helpers/chaos-proxy.js';
import { listen } from '../helpers/http-server.js';

const CUTS = 150;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startPollkit(): Promise<{ url: string; port: number; topics: TopicRegistry }> {
  const topics = new TopicRegistry();
  const handler = new PollkitHandler({ topics, sseRetryMs: 1, autoCreateTopics: true });
  const server = createServer(createNodeListener(handler));
  const wss = new WebSocketServer({ noServer: true });
  const sockets = new PollkitWebSocketServer(wss, handler);
  server.on('upgrade', (request, socket, head) => {
    if (!sockets.handleUpgrade(request, socket, head)) socket.destroy();
  });
  const listening = await listen(server);
  cleanups.push(async () => {
    for (const client of wss.clients) client.terminate();
    wss.close();
    await listening.close();
    await topics.close();
  });
  return { url: listening.url, port: Number(new URL(listening.url).port), topics };
}

async function run(make: (proxyUrl: string) => Transport<TopicRecord>, seed: number): Promise<number[]> {
  const pollkit = await startPollkit();
  const topic = pollkit.topics.topic('t');
  const proxy = await startChaosProxy({ targetPort: pollkit.port, seed, maxBytes: 3000, maxCuts: CUTS });
  cleanups.push(() => proxy.close());
  const subscriber = new Subscriber<TopicRecord>({
    transports: make(proxy.url),
    backoff: backoff({ strategy: 'full', initial: 2, max: 5 }),
    spreadMs: 0,
    hintSpread: 0,
    stableAfterMs: 50,
  });
  cleanups.push(() => subscriber.close());
  const received: number[] = [];
  let produced = 0;
  let stopped = false;
  const done = new Promise<void>((resolve, reject) => {
    subscriber.on('message', ({ data }) => {
      received.push(data.offset);
      if (stopped && received.length === produced) resolve();
    });
    subscriber.on('gone', ({ reason, error }) => {
      if (reason !== 'closed') reject(error as Error);
    });
  });
  subscriber.start();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      if (proxy.cuts >= CUTS) {
        clearInterval(timer);
        resolve();
        return;
      }
      for (let i = 0; i < 3 && produced - received.length < 30; i++) {
        produced++;
        void topic.append({ n: produced });
      }
    }, 1);
  });
  stopped = true;
  produced++;
  await topic.append({ last: true });
  await done;
  return received;
}

const inOrder = (received: number[]): number => received.findIndex((offset, index) => offset !== index);

describe("Subscriber against pollkit's own server through the chaos proxy", () => {
  it('over SSE', async () => {
    const received = await run(
      (url) =>
        new SseTransport<TopicRecord>({
          // Last-Event-ID wins over ?offset= on every reconnect; the query only places the first connect.
          url: `${url}/pollkit/topics/t/events?offset=0`,
          decode: (data) => JSON.parse(data) as TopicRecord,
        }),
      21,
    );
    expect(inOrder(received)).toBe(-1);
  }, 30_000);

  it('over WebSocket', async () => {
    const received = await run(
      (url) =>
        new WebSocketTransport<TopicRecord>({
          url: (cursor) =>
            `${url.replace(/^http/, 'ws')}/pollkit/topics/t/ws?offset=${cursor === undefined ? 0 : Number(cursor) + 1}`,
          WebSocket: WebSocket as unknown as WebSocketConstructor,
          decode: (text) => JSON.parse(text) as TopicRecord,
          idOf: (record) => String(record.offset),
          ping: { message: 'ping', isPong: (text) => text === 'pong' },
        }),
      22,
    );
    expect(inOrder(received)).toBe(-1);
  }, 30_000);

  it('over long polling', async () => {
    const received = await run(
      (url) =>
        new LongPollTransport({
          client: new TopicClient({ baseUrl: url }),
          topic: 't',
          waitMs: 1000,
          minIntervalMs: 0,
        }),
      23,
    );
    expect(inOrder(received)).toBe(-1);
  }, 30_000);
});
