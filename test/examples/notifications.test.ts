import { EventSource } from 'eventsource';
import { afterEach, describe, expect, it } from 'vitest';
import { SseTransport, Subscriber, type TopicRecord } from 'pollkit/client';
import { type Notification, type NotificationsServer, start } from '../../examples/notifications/server.js';

let server: NotificationsServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const streamUrl = (base: string): string => new URL('/pollkit/topics/notifications/events', base).toString();

describe('examples/notifications', () => {
  it('sends retry: first and a heartbeat comment while the stream is quiet', async () => {
    server = await start({ heartbeatMs: 100, retryMs: 250 });
    const controller = new AbortController();
    const response = await fetch(streamUrl(server.url), { signal: controller.signal });
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!text.includes(': hb')) text += (await reader.read()).value ?? '';
    expect(text.startsWith('retry: 250')).toBe(true);
    controller.abort();
  });

  it('resumes EventSource and the pollkit Subscriber after a forced disconnect, without loss or repeats', async () => {
    server = await start({ heartbeatMs: 1000, retryMs: 100 });
    const native: number[] = [];
    const source = new EventSource(streamUrl(server.url));
    source.addEventListener('message', (event) => native.push((JSON.parse(event.data) as TopicRecord).offset));
    const pushed: number[] = [];
    const subscriber = new Subscriber<TopicRecord<Notification>>({
      transports: new SseTransport({
        url: streamUrl(server.url),
        decode: (data) => JSON.parse(data) as TopicRecord<Notification>,
      }),
      spreadMs: 100,
    });
    let opens = 0;
    subscriber.on('open', () => opens++);
    subscriber.on('message', ({ data }) => pushed.push(data.offset));
    subscriber.start();
    try {
      await until(() => opens === 1 && source.readyState === EventSource.OPEN);
      for (let i = 0; i < 3; i++) await server.notify({ text: `before ${i}`, level: 'info' });
      await until(() => native.length === 3 && pushed.length === 3);

      expect(server.dropConnections()).toBeGreaterThanOrEqual(2);
      // Published while both readers are cut off: they must fetch these on resume.
      for (let i = 0; i < 3; i++) await server.notify({ text: `during ${i}`, level: 'warning' });
      await until(() => opens === 2);
      for (let i = 0; i < 2; i++) await server.notify({ text: `after ${i}`, level: 'info' });
      await until(() => native.length >= 8 && pushed.length >= 8);
      await new Promise((resolve) => setTimeout(resolve, 200));

      expect(native).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(pushed).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    } finally {
      source.close();
      subscriber.close();
    }
  });

  it('publishes a POST /notify and serves the page', async () => {
    server = await start();
    const posted = await fetch(new URL('/notify', server.url), { method: 'POST', body: 'hello' });
    expect(posted.status).toBe(201);
    expect(await posted.json()).toEqual({ offset: 0 });
    const records = await fetch(new URL('/pollkit/topics/notifications/records?offset=0', server.url));
    expect(((await records.json()) as { records: TopicRecord[] }).records[0]?.value).toEqual({
      text: 'hello',
      level: 'info',
    });
    expect(await (await fetch(server.url)).text()).toContain('EventSource');
  });

  it('ticks on its own when asked to', async () => {
    server = await start({ tickMs: 30 });
    const deadline = Date.now() + 5000;
    let count = 0;
    while (count < 3 && Date.now() < deadline) {
      const response = await fetch(new URL('/pollkit/topics/notifications/records?offset=0', server.url));
      count = ((await response.json()) as { records: unknown[] }).records.length;
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    expect(count).toBeGreaterThanOrEqual(3);
  });
});
