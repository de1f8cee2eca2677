import { afterEach, describe, expect, it } from 'vitest';
import { backoff } from '../../../src/core/backoff.js';
import { InvalidArgumentError } from '../../../src/core/errors.js';
import type { TopicRecord } from '../../../src/core/protocol.js';
import { TopicClient } from '../../../src/client/http.js';
import { Subscriber } from '../../../src/client/subscriber.js';
import { LongPollTransport } from '../../../src/client/transports/long-poll.js';
import { PollkitHandler } from '../../../src/server/http/handler.js';
import { TopicRegistry } from '../../../src/server/topics/topic-registry.js';
import { startNodeServer } from '../../helpers/http-server.js';
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

function subscribe(push: PushServer, cursor?: string): Subscriber<TopicRecord> {
  const subscriber = new Subscriber<TopicRecord>({
    transports: new LongPollTransport({
      client: new TopicClient({ baseUrl: push.url }),
      topic: 't',
      waitMs: 500,
      minIntervalMs: 0,
    }),
    backoff: backoff({ strategy: 'full', initial: 5, max: 20 }),
    spreadMs: 0,
    ...(cursor === undefined ? {} : { cursor }),
  });
  cleanups.push(() => subscriber.close());
  return subscriber;
}

describe('LongPollTransport', () => {
  it('validates its options', () => {
    const client = new TopicClient({ baseUrl: 'http://localhost' });
    expect(() => new LongPollTransport({ client: {} as never, topic: 't' })).toThrow(InvalidArgumentError);
    expect(() => new LongPollTransport({ client, topic: '' })).toThrow(InvalidArgumentError);
    expect(() => new LongPollTransport({ client, topic: 't', startOffset: -1 })).toThrow(InvalidArgumentError);
  });

  it('delivers held and backlogged records in order, resuming after the committed offset', async () => {
    const push = await server();
    push.append('a');
    push.append('b');
    push.append('c');
    const subscriber = subscribe(push, '0').start();
    const offsets: number[] = [];
    const done = new Promise<void>((resolve) =>
      subscriber.on('message', ({ data, id }) => {
        offsets.push(data.offset);
        expect(id).toBe(String(data.offset));
        if (offsets.length === 3) resolve();
      }),
    );
    await subscriber.waitFor('open');
    setTimeout(() => push.append('d'), 50);
    await done;
    expect(offsets).toEqual([1, 2, 3]);
    expect(subscriber.cursor).toBe('3');
    expect(subscriber.transport).toBe('long-poll');
  });

  it('long-polls a public topic with the cursor the server hands out', async () => {
    const topics = new TopicRegistry();
    const handler = new PollkitHandler({ topics, maxWaitSeconds: 1, authorize: () => ({ isPublicTopic: () => true }) });
    const origin = await startNodeServer(handler);
    cleanups.push(async () => {
      await handler.close();
      await origin.close();
      await topics.close();
    });
    const topic = topics.topic('news');
    await topic.append('a');
    const urls: URL[] = [];
    const client = new TopicClient({
      baseUrl: origin.url,
      fetch: (input, init) => {
        urls.push(new URL(input));
        return fetch(input, init);
      },
    });
    const subscriber = new Subscriber<TopicRecord>({
      transports: new LongPollTransport({ client, topic: 'news', waitMs: 300, minIntervalMs: 0 }),
      spreadMs: 0,
    });
    cleanups.push(() => subscriber.close());
    const values: unknown[] = [];
    const done = new Promise<void>((resolve) =>
      subscriber.on('message', ({ data }) => {
        values.push(data.value);
        if (values.length === 3) resolve();
      }),
    );
    subscriber.start();
    await subscriber.waitFor('open');
    // Let one long poll time out at the head, so the next carries the cursor it handed out.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await topic.append('b');
    await topic.append('c');
    await done;
    expect(values).toEqual(['a', 'b', 'c']);
    const query = urls.map((url) => Object.fromEntries(url.searchParams));
    // Opens with a range read (no wait, no cursor), then long polls at the head with the cursor.
    expect(query[0]).toEqual({ offset: '0' });
    const live = query.filter((q) => q['wait'] !== undefined);
    expect(live.length).toBeGreaterThanOrEqual(2);
    for (const q of live)
      expect(q).toMatchObject({ epoch: expect.any(String), cursor: expect.stringMatching(/^\d+$/) });
    expect(live.some((q) => q['cursor'] !== '0')).toBe(true);
  });

  it('reconnects through a 503 honouring its Retry-After', async () => {
    const push = await server();
    push.failNext({ status: 503, retryAfter: '0.1' });
    const subscriber = subscribe(push).start();
    const reconnecting = await subscriber.waitFor('reconnecting');
    expect(reconnecting).toMatchObject({ reason: 'http-503', hintMs: 100 });
    expect(reconnecting.delayMs).toBeGreaterThanOrEqual(100);
    await subscriber.waitFor('open');
  });

  it('stops on a client error', async () => {
    const push = await server();
    push.failNext({ status: 403 });
    const subscriber = subscribe(push).start();
    const gone = await subscriber.waitFor('gone');
    expect(gone.reason).toBe('stopped');
  });
});
