/**
 * followJob and subscribeTopic against a real pollkit server (node:http adapter, topic sockets through
 * the ws adapter) on port 0: each transport by name and `auto`, typed results and progress, every
 * record once and in order, resume from the cursor, and the fallbacks (WebSocket refused → SSE; a
 * stream that opens and is cut at once, again and again → long polling).
 */
import { createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { createNodeListener } from '../../src/adapters/node.js';
import { PollkitWebSocketServer } from '../../src/adapters/ws.js';
import { followJob, JobClient, JobFailedError, subscribeTopic } from '../../src/client/index.js';
import type { JobTransportName, TopicTransportName } from '../../src/client/index.js';
import { sleep } from '../../src/core/abort.js';
import { backoff } from '../../src/core/backoff.js';
import { InvalidArgumentError, OffsetGoneError } from '../../src/core/errors.js';
import { JobRegistry, PollkitHandler, TopicRegistry } from '../../src/server/index.js';
import { listen } from '../helpers/http-server.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const quick = { backoff: backoff({ strategy: 'full', initial: 5, max: 20 }), spreadMs: 0, hintSpread: 0 } as const;

async function startPollkit(options: { webSockets?: boolean } = {}) {
  const jobs = new JobRegistry({ progressIntervalMs: 0 })
    .define<{ steps: number }, { steps: number }>('count', async ({ input, reportProgress, signal }) => {
      for (let step = 1; step <= input.steps; step++) {
        await sleep(10, { signal });
        reportProgress({ percent: Math.round((step / input.steps) * 100), data: { stage: `s${step}` } });
      }
      return { steps: input.steps };
    })
    .define('explode', async () => {
      await sleep(10);
      throw new Error('the transcoder caught fire');
    });
  const topics = new TopicRegistry();
  const handler = new PollkitHandler({ jobs, topics, sseRetryMs: 1, autoCreateTopics: true });
  const server = createServer(createNodeListener(handler));
  const wss = new WebSocketServer({ noServer: true });
  const sockets = new PollkitWebSocketServer(wss, handler);
  server.on('upgrade', (request, socket, head) => {
    if (options.webSockets === false || !sockets.handleUpgrade(request, socket, head)) socket.destroy();
  });
  const listening = await listen(server);
  cleanups.push(async () => {
    for (const client of wss.clients) client.terminate();
    wss.close();
    await handler.close();
    await listening.close();
    await jobs.close();
    await topics.close();
  });
  return { url: listening.url, jobs, topics, client: new JobClient({ baseUrl: listening.url }) };
}

describe('followJob', () => {
  for (const transport of ['sse', 'long-poll', 'poll', 'auto'] as const) {
    it(`follows a job to its result over ${transport}, with typed progress`, async () => {
      const pollkit = await startPollkit();
      const { location } = await pollkit.client.submit('count', { steps: 4 });
      const follower = followJob<{ steps: number }, { stage: string }>(location, {
        ...quick,
        transport: transport as JobTransportName | 'auto',
      });
      const stages: string[] = [];
      follower.on('progress', (progress) => stages.push(progress.data?.stage ?? '?'));
      const job = await follower.result();
      expect(job.status).toBe('succeeded');
      expect(job.result?.steps).toBe(4);
      expect(follower.transport).toBe(transport === 'auto' ? 'sse' : transport);
      // Every stage seen is one the job reported, in order; polls may skip versions between two asks.
      expect(stages.length).toBeGreaterThan(0);
      expect(stages).toEqual([...new Set(stages)].sort());
      expect(stages.at(-1)).toBe('s4');
      expect(follower.subscriber.state).toBe('closed');
    });
  }

  it('rejects with JobFailedError for a failed job, and ends once', async () => {
    const pollkit = await startPollkit();
    const { location } = await pollkit.client.submit('explode', {});
    const follower = followJob(location, quick);
    const ends: unknown[] = [];
    follower.on('end', (info) => ends.push(info.reason));
    await expect(follower.result()).rejects.toBeInstanceOf(JobFailedError);
    expect(ends).toEqual(['done']);
  });

  it('reaches the result of a job that finished before it connected', async () => {
    const pollkit = await startPollkit();
    const { location } = await pollkit.client.submit('count', { steps: 1 });
    await sleep(100);
    expect((await followJob<{ steps: number }>(location, quick).result()).result).toEqual({ steps: 1 });
  });

  it('rejects bad URLs and transport names at once', () => {
    expect(() => followJob('https://example.com/not-a-job')).toThrow(InvalidArgumentError);
    expect(() => followJob('https://example.com/jobs/1', { transport: 'pigeon' as never })).toThrow(
      InvalidArgumentError,
    );
  });
});

describe('subscribeTopic', () => {
  for (const transport of ['websocket', 'sse', 'long-poll', 'auto'] as const) {
    it(`delivers every record once, in order, and resumes from the cursor over ${transport}`, async () => {
      const pollkit = await startPollkit();
      const topic = pollkit.topics.topic('orders');
      for (let i = 0; i < 5; i++) await topic.append({ n: i });
      const url = `${pollkit.url}/pollkit/topics/orders`;
      const first = subscribeTopic<{ n: number }>(url, {
        ...quick,
        transport: transport as TopicTransportName | 'auto',
        WebSocket,
      });
      const seen: number[] = [];
      first.on('message', ({ data }) => seen.push(data.value.n));
      first.start();
      await until(() => seen.length === 5);
      for (let i = 5; i < 8; i++) await topic.append({ n: i });
      await until(() => seen.length === 8);
      expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(first.transport).toBe(transport === 'auto' ? 'websocket' : transport);
      // The cursor is the last offset (with the log's epoch when it came over SSE).
      expect(first.cursor?.split('@')[0]).toBe('7');
      first.close();

      for (let i = 8; i < 10; i++) await topic.append({ n: i });
      const second = subscribeTopic<{ n: number }>(url, {
        ...quick,
        transport: transport as TopicTransportName | 'auto',
        WebSocket,
        cursor: first.cursor!,
      });
      const rest: number[] = [];
      second.on('message', ({ data }) => rest.push(data.value.n));
      second.start();
      await until(() => rest.length === 2);
      await sleep(50);
      expect(rest).toEqual([8, 9]);
      second.close();
    });
  }

  it('falls back from a refused WebSocket to SSE', async () => {
    const pollkit = await startPollkit({ webSockets: false });
    const topic = pollkit.topics.topic('t');
    await topic.append('a');
    const subscriber = subscribeTopic<string>(`${pollkit.url}/pollkit/topics/t`, { ...quick, WebSocket });
    cleanups.push(() => subscriber.close());
    const moves: string[] = [];
    subscriber.on('fallback', ({ from, to }) => moves.push(`${from}>${to}`));
    const values: string[] = [];
    subscriber.on('message', ({ data }) => values.push(data.value));
    subscriber.start();
    await until(() => values.length === 1);
    expect(subscriber.transport).toBe('sse');
    expect(moves[0]).toBe('websocket>sse');
  });

  for (const transport of ['sse', 'long-poll'] as const) {
    it(`ends with OffsetGoneError when the log was reset while it was away, over ${transport}`, async () => {
      const pollkit = await startPollkit();
      const topic = pollkit.topics.topic('r');
      for (let i = 0; i < 3; i++) await topic.append(i);
      const url = `${pollkit.url}/pollkit/topics/r`;
      const first = subscribeTopic<number>(url, { ...quick, transport: 'sse' });
      let count = 0;
      first.on('message', () => count++);
      first.start();
      await until(() => count === 3);
      first.close();
      await topic.reset();
      await topic.append(99);
      const second = subscribeTopic<number>(url, { ...quick, transport, cursor: first.cursor! });
      const values: number[] = [];
      second.on('message', ({ data }) => values.push(data.value));
      const gone = second.waitFor('gone');
      second.start();
      const { reason, error } = await gone;
      expect(reason).toBe('stopped');
      expect(OffsetGoneError.is(error)).toBe(true);
      expect((error as OffsetGoneError).earliestOffset).toBe(0);
      expect(values).toEqual([]);
    });
  }

  it('checks WebSocket liveness by default: pollkit answers the pings; a silent peer is left', async () => {
    const pollkit = await startPollkit();
    await pollkit.topics.topic('live').append('a');
    const alive = subscribeTopic<string>(`${pollkit.url}/pollkit/topics/live`, {
      ...quick,
      transport: 'websocket',
      WebSocket,
      pingIntervalMs: 30,
      idleTimeoutMs: 100,
    });
    cleanups.push(() => alive.close());
    const reasons: string[] = [];
    const values: string[] = [];
    alive.on('close', ({ reason }) => reasons.push(reason));
    alive.on('message', ({ data }) => values.push(data.value));
    alive.start();
    await sleep(500);
    expect(reasons).toEqual([]);
    expect(values).toEqual(['a']);

    // A peer that takes the socket but never answers: the idle watchdog ends it and reconnects.
    const silent = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => silent.once('listening', resolve));
    cleanups.push(() => {
      for (const client of silent.clients) client.terminate();
      silent.close();
    });
    const { port } = silent.address() as { port: number };
    const dead = subscribeTopic<string>(`http://127.0.0.1:${port}/pollkit/topics/live`, {
      ...quick,
      transport: 'websocket',
      WebSocket,
      pingIntervalMs: 30,
      idleTimeoutMs: 100,
    });
    cleanups.push(() => dead.close());
    const idle = new Promise<string>((resolve) => dead.on('close', ({ reason }) => resolve(reason)));
    dead.start();
    expect(await idle).toBe('idle-timeout');
  });

  it('rejects a negative offset and a URL that is not a topic', () => {
    expect(() => subscribeTopic('https://example.com/topics/t', { offset: -1 })).toThrow(InvalidArgumentError);
    expect(() => subscribeTopic('https://example.com/jobs/t')).toThrow(InvalidArgumentError);
  });
});

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error('timed out waiting');
    await sleep(5);
  }
}
