import { afterEach, describe, expect, it } from 'vitest';
import { backoff } from '../../../src/core/backoff.js';
import { InvalidArgumentError } from '../../../src/core/errors.js';
import type { TopicRecord } from '../../../src/core/protocol.js';
import { Subscriber, type SubscriberOptions } from '../../../src/client/subscriber.js';
import { SseTransport, type SseTransportOptions } from '../../../src/client/transports/sse.js';
import { type PushServer, startPushServer, type PushServerOptions } from '../../helpers/push-server.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(options: PushServerOptions = {}): Promise<PushServer> {
  const started = await startPushServer(options);
  cleanups.push(() => started.close());
  return started;
}

function subscribe(
  url: string,
  transport: Partial<SseTransportOptions<TopicRecord>> = {},
  options: Partial<SubscriberOptions<TopicRecord>> = {},
): Subscriber<TopicRecord> {
  const subscriber = new Subscriber<TopicRecord>({
    transports: new SseTransport<TopicRecord>({
      url: `${url}/pollkit/topics/t/events`,
      decode: (data) => JSON.parse(data) as TopicRecord,
      ...transport,
    }),
    backoff: backoff({ strategy: 'full', initial: 5, max: 20 }),
    spreadMs: 0,
    ...options,
  });
  cleanups.push(() => subscriber.close());
  return subscriber;
}

async function collect(subscriber: Subscriber<TopicRecord>, count: number): Promise<number[]> {
  const offsets: number[] = [];
  for await (const message of subscriber.messages()) {
    offsets.push(message.data.offset);
    if (offsets.length === count) break;
  }
  return offsets;
}

describe('SseTransport', () => {
  it('requires a url and a valid method', () => {
    expect(() => new SseTransport({} as never)).toThrow(InvalidArgumentError);
    expect(() => new SseTransport({ url: 'http://x', method: 'PUT' as never })).toThrow(InvalidArgumentError);
  });

  it('streams events and resumes with Last-Event-ID after the server drops the stream', async () => {
    const push = await server();
    for (let i = 0; i < 3; i++) push.append(i);
    const subscriber = subscribe(push.url).start();
    const first = collect(subscriber, 6);
    await subscriber.waitFor('commit');
    await new Promise((resolve) => setTimeout(resolve, 20));
    push.dropAll();
    const reconnecting = await subscriber.waitFor('reconnecting');
    expect(reconnecting.hintMs).toBe(1); // the stream's "retry: 1"
    await subscriber.waitFor('open');
    for (let i = 3; i < 6; i++) push.append(i);
    expect(await first).toEqual([0, 1, 2, 3, 4, 5]);
    expect(push.lastEventIds).toEqual([undefined, '2']);
  });

  it('sends custom headers and POST bodies, and the cursor it was started with', async () => {
    const push = await server();
    push.append('a');
    push.append('b');
    const seen: RequestInit[] = [];
    const subscriber = subscribe(push.url, {
      method: 'POST',
      body: () => '{"filter":"all"}',
      headers: () => ({ authorization: 'Bearer t0ken' }),
      fetch: (input, init) => {
        seen.push(init);
        return fetch(input, init);
      },
    }).start('0');
    const message = await subscriber.waitFor('message');
    expect(message.data.offset).toBe(1);
    expect(seen[0]).toMatchObject({ method: 'POST', body: '{"filter":"all"}' });
    expect(seen[0]!.headers).toMatchObject({
      authorization: 'Bearer t0ken',
      'last-event-id': '0',
      accept: 'text/event-stream',
    });
  });

  it('honours Retry-After on 503 as a floor', async () => {
    const push = await server();
    push.failNext({ status: 503, retryAfter: '0.2' });
    const subscriber = subscribe(push.url).start();
    const reconnecting = await subscriber.waitFor('reconnecting');
    expect(reconnecting).toMatchObject({ reason: 'http-503', hintMs: 200 });
    expect(reconnecting.delayMs).toBeGreaterThanOrEqual(200);
    expect(reconnecting.delayMs).toBeLessThanOrEqual(240);
    await subscriber.waitFor('open');
  });

  it('stops on 204 and on a client error', async () => {
    const push = await server();
    push.failNext({ status: 204 });
    const stopped = subscribe(push.url).start();
    expect(await stopped.waitFor('gone')).toMatchObject({ reason: 'stopped' });
    push.failNext({ status: 401 });
    const denied = subscribe(push.url).start();
    const gone = await denied.waitFor('gone');
    expect(gone.reason).toBe('stopped');
    expect(gone.error).toMatchObject({ status: 401 });
  });

  it('reports a missing endpoint or a non-event-stream answer as unavailable', async () => {
    const push = await server();
    const missing = subscribe(push.url, { url: `${push.url}/nowhere` }).start();
    expect(await missing.waitFor('gone')).toMatchObject({ reason: 'unavailable' });
    const wrongType = subscribe(push.url, {
      fetch: async () => new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } }),
    }).start();
    expect(await wrongType.waitFor('gone')).toMatchObject({ reason: 'unavailable' });
  });

  it('replaces a silent stream, and heartbeats keep a quiet one alive', async () => {
    const quiet = await server({ heartbeatMs: 0 });
    const silent = subscribe(quiet.url, {}, { idleTimeoutMs: 150 }).start();
    const reconnecting = await silent.waitFor('reconnecting');
    expect(reconnecting.reason).toBe('idle-timeout');

    const beating = await server({ heartbeatMs: 30 });
    const alive = subscribe(beating.url, {}, { idleTimeoutMs: 150 }).start();
    let reconnects = 0;
    alive.on('reconnecting', () => reconnects++);
    await alive.waitFor('open');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(reconnects).toBe(0);
  });

  it('delivers only the selected event names', async () => {
    const subscriber = new Subscriber<string>({
      transports: new SseTransport({
        url: 'http://example.invalid/stream',
        events: ['state'],
        fetch: async () =>
          new Response('event: progress\nid: 1\ndata: p\n\nevent: state\nid: 2\ndata: s\n\n', {
            status: 200,
            headers: { 'content-type': 'text/event-stream' },
          }),
      }),
      maxRetries: 0,
    });
    cleanups.push(() => subscriber.close());
    const got: string[] = [];
    subscriber.on('message', ({ data, event }) => got.push(`${event}:${data}`));
    subscriber.start();
    await subscriber.waitFor('gone');
    expect(got).toEqual(['state:s']);
  });

  it('turns a decode failure into a reconnect', async () => {
    const subscriber = new Subscriber<unknown>({
      transports: new SseTransport<unknown>({
        url: 'http://example.invalid/stream',
        decode: (data) => JSON.parse(data) as unknown,
        fetch: async () =>
          new Response('id: 1\ndata: {not json\n\n', {
            status: 200,
            headers: { 'content-type': 'text/event-stream' },
          }),
      }),
      maxRetries: 0,
    });
    cleanups.push(() => subscriber.close());
    subscriber.start();
    const close = await subscriber.waitFor('close');
    expect(close.reason).toBe('decode');
    expect(subscriber.cursor).toBeUndefined();
  });
});
