import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { backoff } from '../../../src/core/backoff.js';
import { InvalidArgumentError, OffsetGoneError } from '../../../src/core/errors.js';
import type { TopicRecord } from '../../../src/core/protocol.js';
import { Subscriber, type SubscriberOptions } from '../../../src/client/subscriber.js';
import { SseTransport } from '../../../src/client/transports/sse.js';
import {
  classifyClose,
  closeReasonDelay,
  type WebSocketConstructor,
  WebSocketTransport,
  type WebSocketTransportOptions,
} from '../../../src/client/transports/websocket.js';
import { type PushServer, startPushServer } from '../../helpers/push-server.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(): Promise<PushServer> {
  const started = await startPushServer();
  cleanups.push(() => started.close());
  return started;
}

const next = (cursor: string | undefined): number => (cursor === undefined ? 0 : Number(cursor) + 1);

function transport(
  push: PushServer,
  options: Partial<WebSocketTransportOptions<TopicRecord>> = {},
): WebSocketTransport<TopicRecord> {
  return new WebSocketTransport<TopicRecord>({
    url: (cursor) => `${push.wsUrl}/pollkit/topics/t/ws?offset=${next(cursor)}`,
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    decode: (text) => JSON.parse(text) as TopicRecord,
    idOf: (record) => String(record.offset),
    ...options,
  });
}

function subscribe(
  transports: SubscriberOptions<TopicRecord>['transports'],
  options: Partial<SubscriberOptions<TopicRecord>> = {},
): Subscriber<TopicRecord> {
  const subscriber = new Subscriber<TopicRecord>({
    transports,
    backoff: backoff({ strategy: 'full', initial: 5, max: 20 }),
    spreadMs: 0,
    ...options,
  });
  cleanups.push(() => subscriber.close());
  return subscriber;
}

describe('close codes', () => {
  it('reads delays from close reasons', () => {
    expect(closeReasonDelay('retry-after=2.5')).toBe(2500);
    expect(closeReasonDelay('Retry-After: 3')).toBe(3000);
    expect(closeReasonDelay('7')).toBe(7000);
    expect(closeReasonDelay('going away')).toBeUndefined();
    expect(closeReasonDelay('{"code":"overloaded","retryAfterMs":1500}')).toBe(1500);
    expect(closeReasonDelay('{"code":"x"}')).toBeUndefined();
    expect(closeReasonDelay('{not json')).toBeUndefined();
  });

  it('classifies what the server wants', () => {
    expect(classifyClose(1008, 'banned', 5000)).toEqual({ reason: 'ws-1008', stop: true });
    expect(classifyClose(1013, '', 5000)).toEqual({ reason: 'ws-1013', retryAfterMs: 5000 });
    expect(classifyClose(1013, '2', 5000)).toEqual({ reason: 'ws-1013', retryAfterMs: 2000 });
    expect(classifyClose(4000, 'retry-after=1', 5000)).toEqual({ reason: 'ws-4000', retryAfterMs: 1000 });
    expect(classifyClose(4401, 'unauthorized', 5000)).toEqual({ reason: 'ws-4401' });
    expect(classifyClose(1006, '', 5000)).toEqual({ reason: 'ws-1006' });
    expect(classifyClose(1002, '', 5000)).toMatchObject({ unavailable: true });
    expect(classifyClose(1001, '{"code":"shutting-down","retryAfterMs":1000}', 5000)).toEqual({
      reason: 'ws-1001',
      retryAfterMs: 1000,
    });
    const gone = classifyClose(4410, '{"code":"offset-gone","earliestOffset":120,"epoch":"k9f"}', 5000);
    expect(gone).toMatchObject({ reason: 'offset-gone', stop: true, error: { earliestOffset: 120, epoch: 'k9f' } });
    expect(OffsetGoneError.is(gone.error)).toBe(true);
  });
});

describe('WebSocketTransport', () => {
  it('requires a url and a sane tryAgainLaterMs', () => {
    expect(() => new WebSocketTransport({} as never)).toThrow(InvalidArgumentError);
    expect(() => new WebSocketTransport({ url: 'ws://x', tryAgainLaterMs: -1 })).toThrow(InvalidArgumentError);
  });

  it('delivers records and resumes from the offset after the last one dispatched', async () => {
    const push = await server();
    push.append('a');
    push.append('b');
    const subscriber = subscribe(transport(push)).start();
    const offsets: number[] = [];
    const done = new Promise<void>((resolve) => {
      subscriber.on('message', ({ data }) => {
        offsets.push(data.offset);
        if (offsets.length === 4) resolve();
      });
    });
    await subscriber.waitFor('commit');
    while (offsets.length < 2) await subscriber.waitFor('commit');
    push.closeWebSockets(1001, 'restarting');
    expect((await subscriber.waitFor('reconnecting')).reason).toBe('ws-1001');
    await subscriber.waitFor('open');
    push.append('c');
    push.append('d');
    await done;
    expect(offsets).toEqual([0, 1, 2, 3]);
    expect(push.requests.ws).toBe(2);
  });

  it('honours 1013 and application close codes carrying a delay', async () => {
    const push = await server();
    const subscriber = subscribe(transport(push)).start();
    await subscriber.waitFor('open');
    push.closeWebSockets(1013, '0.1');
    const later = await subscriber.waitFor('reconnecting');
    expect(later).toMatchObject({ reason: 'ws-1013', hintMs: 100 });
    expect(later.delayMs).toBeGreaterThanOrEqual(100);
    await subscriber.waitFor('open');
    push.closeWebSockets(4000, 'retry-after=0.05');
    expect(await subscriber.waitFor('reconnecting')).toMatchObject({ reason: 'ws-4000', hintMs: 50 });
  });

  it('stops on a policy-violation close', async () => {
    const push = await server();
    const subscriber = subscribe(transport(push)).start();
    await subscriber.waitFor('open');
    push.closeWebSockets(1008, 'not allowed');
    expect(await subscriber.waitFor('gone')).toMatchObject({ reason: 'stopped' });
  });

  it('sends while open and queues while reconnecting', async () => {
    const push = await server();
    const subscriber = subscribe(transport(push)).start();
    const early = subscriber.send('hello');
    expect(early.status).toBe('queued');
    await subscriber.waitFor('open');
    expect(await early.settled).toBe('sent');
  });

  it('pings, counts pongs as life, and replaces a socket whose pongs stop', async () => {
    const push = await server();
    const subscriber = subscribe(transport(push, { ping: { message: 'ping', isPong: (text) => text === 'pong' } }), {
      pingIntervalMs: 30,
      idleTimeoutMs: 150,
    }).start();
    let reconnects = 0;
    subscriber.on('reconnecting', () => reconnects++);
    const messages: unknown[] = [];
    subscriber.on('message', (message) => messages.push(message));
    await subscriber.waitFor('open');
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(reconnects).toBe(0);
    expect(messages).toEqual([]); // pongs are not messages
    push.silence(true);
    expect((await subscriber.waitFor('reconnecting')).reason).toBe('idle-timeout');
  });

  it('looks the global WebSocket up at connect time, not at import', async () => {
    const push = await server();
    push.append('late');
    const original = (globalThis as { WebSocket?: unknown }).WebSocket;
    let constructed = 0;
    class CountingWebSocket extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        constructed++;
      }
    }
    (globalThis as { WebSocket?: unknown }).WebSocket = CountingWebSocket;
    cleanups.push(() => {
      (globalThis as { WebSocket?: unknown }).WebSocket = original;
    });
    const subscriber = subscribe(transport(push, { WebSocket: undefined as never })).start();
    expect((await subscriber.waitFor('message')).data.offset).toBe(0);
    expect(constructed).toBe(1);
  });

  it('falls back to SSE when no WebSocket constructor exists', async () => {
    const push = await server();
    push.append('x');
    const original = (globalThis as { WebSocket?: unknown }).WebSocket;
    (globalThis as { WebSocket?: unknown }).WebSocket = undefined;
    cleanups.push(() => {
      (globalThis as { WebSocket?: unknown }).WebSocket = original;
    });
    const subscriber = subscribe([
      transport(push, { WebSocket: undefined as never }),
      new SseTransport<TopicRecord>({
        url: `${push.url}/pollkit/topics/t/events`,
        decode: (data) => JSON.parse(data) as TopicRecord,
      }),
    ]);
    const fallback = subscriber.waitFor('fallback');
    subscriber.start();
    expect(await fallback).toMatchObject({ from: 'websocket', to: 'sse', reason: 'unsupported' });
    expect((await subscriber.waitFor('open')).transport).toBe('sse');
    expect(subscriber.transport).toBe('sse');
    expect(subscriber.send('nope').status).toBe('dropped');
  });
});
