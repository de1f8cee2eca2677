import { createServer } from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';
import { describe, expect, it } from 'vitest';
import { createNodeListener } from '../../src/adapters/node.js';
import {
  PollkitWebSocketServer,
  type PollkitWebSocketOptions,
  WS_CLOSE_CODES,
  attachWebSocket,
} from '../../src/adapters/ws.js';
import { PollkitError } from '../../src/core/errors.js';
import type { PollkitHandler } from '../../src/server/http/handler.js';
import { type Fixture, type FixtureOptions, eventually, idle, startFixture } from '../conformance/fixture.js';
import { type StartServer, listen } from '../helpers/http-server.js';

interface WsFixture extends Fixture {
  readonly sockets: PollkitWebSocketServer;
  readonly wss: WebSocketServer;
  /** `ws://127.0.0.1:<port>/pollkit/topics/<topic>/ws?<query>` */
  wsUrl(topic: string, query?: string): string;
}

/** A node:http server with the node listener for HTTP and a noServer WebSocketServer for topic sockets. */
async function startWs(
  options: FixtureOptions = {},
  socketOptions: ConstructorParameters<typeof PollkitWebSocketServer>[2] = {},
): Promise<WsFixture> {
  let sockets!: PollkitWebSocketServer;
  let wss!: WebSocketServer;
  const start: StartServer = async (handler: PollkitHandler) => {
    const server = createServer(createNodeListener(handler));
    wss = new WebSocketServer({ noServer: true });
    sockets = new PollkitWebSocketServer(wss, handler, socketOptions);
    server.on('upgrade', (request, socket, head) => {
      if (!sockets.handleUpgrade(request, socket, head)) socket.destroy();
    });
    const listening = await listen(server);
    return {
      ...listening,
      close: async () => {
        for (const client of wss.clients) client.terminate();
        wss.close();
        await listening.close();
      },
    };
  };
  const fixture = await startFixture(start, options);
  const origin = fixture.server.url.replace(/^http/, 'ws');
  return {
    ...fixture,
    sockets,
    wss,
    wsUrl: (topic, query = '') => `${origin}/pollkit/topics/${topic}/ws${query === '' ? '' : `?${query}`}`,
  };
}

interface Client {
  readonly socket: WebSocket;
  readonly messages: { offset: number; value: unknown; key: string | null; timestamp: string }[];
  readonly texts: string[];
  readonly closed: Promise<{ code: number; reason: string }>;
  waitFor(count: number, timeoutMs?: number): Promise<void>;
}

function connect(url: string, headers: Record<string, string> = {}): Client {
  const socket = new WebSocket(url, { headers });
  const messages: Client['messages'] = [];
  const texts: string[] = [];
  socket.on('message', (data) => {
    const text = data.toString();
    texts.push(text);
    const parsed = JSON.parse(text === 'pong' ? '{}' : text) as { offset?: number };
    if (typeof parsed.offset === 'number') messages.push(parsed as Client['messages'][number]);
  });
  socket.on('error', () => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  return {
    socket,
    messages,
    texts,
    closed,
    waitFor: (count, timeoutMs = 3000) => eventually(() => messages.length >= count, timeoutMs, `${count} messages`),
  };
}

function opened(client: Client): Promise<void> {
  return new Promise((resolve, reject) => {
    if (client.socket.readyState === WebSocket.OPEN) resolve();
    client.socket.once('open', () => resolve());
    client.socket.once('close', () => reject(new Error('closed before open')));
  });
}

async function appendAll(f: Fixture, topic: string, values: readonly unknown[]): Promise<void> {
  for (const value of values) await f.topics.topic(topic).append(value);
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('pollkit/ws', () => {
  it('sends records in order from the requested offset, then live ones', async () => {
    const f = await startWs();
    await appendAll(f, 'orders', range(0, 10));
    const client = connect(f.wsUrl('orders', 'offset=3'));
    await client.waitFor(7);
    await appendAll(f, 'orders', [10, 11]);
    await client.waitFor(9);
    expect(client.messages.map((m) => m.offset)).toEqual(range(3, 12));
    expect(client.messages.map((m) => m.value)).toEqual(range(3, 12));
    expect(client.messages[0]).toEqual({ offset: 3, timestamp: expect.any(String), key: null, value: 3 });
    client.socket.close();
  });

  it('starts at the high watermark when no offset is given', async () => {
    const f = await startWs();
    await appendAll(f, 'news', ['old']);
    const client = connect(f.wsUrl('news'));
    await opened(client);
    await eventually(() => f.handler.heldRequests === 1);
    await appendAll(f, 'news', ['new']);
    await client.waitFor(1);
    expect(client.messages.map((m) => m.value)).toEqual(['new']);
    client.socket.close();
  });

  it('resumes after reconnects with nothing lost or repeated while a producer keeps appending', async () => {
    const f = await startWs();
    f.topics.topic('feed');
    let producing = true;
    const producer = (async () => {
      for (let i = 0; producing && i < 300; i++) {
        await f.topics.topic('feed').append(i);
        if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    const received: number[] = [];
    let next = 0;
    for (let round = 0; round < 4; round++) {
      const client = connect(f.wsUrl('feed', `offset=${next}`));
      await client.waitFor(20, 5000);
      client.socket.terminate();
      await client.closed;
      for (const message of client.messages) received.push(message.offset);
      next = received.at(-1)! + 1;
    }
    await producer;
    producing = false;
    const last = connect(f.wsUrl('feed', `offset=${next}`));
    const { highWatermark } = await f.topics.topic('feed').position();
    await last.waitFor(highWatermark - next, 5000);
    for (const message of last.messages) received.push(message.offset);
    last.socket.close();
    expect(received).toEqual(range(0, highWatermark));
  });

  it('closes with 1008 when the authorize hook refuses the caller or hides the topic', async () => {
    const f = await startWs({
      authorize: (request) => {
        const auth = (request.headers as Record<string, string | undefined>)['authorization'];
        if (auth === undefined) throw new PollkitError('Who are you?', 'unauthorized');
        return { id: auth, canReadTopic: (topic) => !topic.startsWith('secret.') };
      },
    });
    f.topics.topic('secret.plans');
    f.topics.topic('open');
    const anonymous = connect(f.wsUrl('open', 'offset=0'));
    expect(await anonymous.closed).toEqual({ code: 1008, reason: JSON.stringify({ code: 'unauthorized' }) });
    const hidden = connect(f.wsUrl('secret.plans', 'offset=0'), { authorization: 'eve' });
    expect(await hidden.closed).toEqual({ code: 1008, reason: JSON.stringify({ code: 'topic-not-found' }) });
    const unknown = connect(f.wsUrl('nope', 'offset=0'), { authorization: 'eve' });
    expect((await unknown.closed).code).toBe(WS_CLOSE_CODES.policyViolation);
    const allowed = connect(f.wsUrl('open', 'offset=0'), { authorization: 'eve' });
    await appendAll(f, 'open', ['hi']);
    await allowed.waitFor(1);
    allowed.socket.close();
    await eventually(() => idle(f) && f.sockets.connections === 0);
  });

  it('closes with 1008 for a malformed offset or one above the high watermark', async () => {
    const f = await startWs();
    await appendAll(f, 't', [1]);
    const bad = connect(f.wsUrl('t', 'offset=abc'));
    expect(await bad.closed).toEqual({ code: 1008, reason: JSON.stringify({ code: 'invalid-parameter' }) });
    const ahead = connect(f.wsUrl('t', 'offset=5'));
    expect(await ahead.closed).toEqual({ code: 1008, reason: JSON.stringify({ code: 'offset-out-of-range' }) });
  });

  it('closes with 4410 and the earliest offset when the requested offset was trimmed', async () => {
    const f = await startWs({ maxRecords: 5 });
    await appendAll(f, 'short', range(0, 20));
    const client = connect(f.wsUrl('short', 'offset=0'));
    const { code, reason } = await client.closed;
    expect(code).toBe(WS_CLOSE_CODES.offsetGone);
    const { epoch } = await f.topics.topic('short').position();
    expect(JSON.parse(reason)).toEqual({ code: 'offset-gone', earliestOffset: 15, epoch });
  });

  it('closes with 1013 and a delay when the server holds too many requests', async () => {
    const f = await startWs({ maxHeldRequests: 1, heldRetryAfterSeconds: 3 });
    f.topics.topic('busy');
    const first = connect(f.wsUrl('busy', 'offset=0'));
    await eventually(() => f.handler.heldRequests === 1);
    const second = connect(f.wsUrl('busy', 'offset=0'));
    const closed = await second.closed;
    expect(closed.code).toBe(WS_CLOSE_CODES.tryAgainLater);
    expect(JSON.parse(closed.reason)).toEqual({ code: 'overloaded', retryAfterMs: 3000 });
    first.socket.close();
  });

  it('closes open sockets with 1001 when the adapter or the handler closes', async () => {
    const f = await startWs();
    f.topics.topic('a');
    const viaHandler = connect(f.wsUrl('a', 'offset=0'));
    await eventually(() => f.handler.heldRequests === 1);
    const closing = f.handler.close();
    expect((await viaHandler.closed).code).toBe(WS_CLOSE_CODES.goingAway);
    await closing;

    const g = await startWs();
    g.topics.topic('b');
    const viaAdapter = connect(g.wsUrl('b', 'offset=0'));
    await eventually(() => g.handler.heldRequests === 1);
    await g.sockets.close();
    const closed = await viaAdapter.closed;
    expect(closed.code).toBe(WS_CLOSE_CODES.goingAway);
    expect(JSON.parse(closed.reason)).toMatchObject({ code: 'shutting-down' });
    await eventually(() => idle(g));
    const late = connect(g.wsUrl('b', 'offset=0'));
    expect((await late.closed).code).toBe(WS_CLOSE_CODES.goingAway);
    await eventually(() => g.sockets.connections === 0);
  });

  it('answers application pings', async () => {
    const f = await startWs();
    f.topics.topic('p');
    const client = connect(f.wsUrl('p', 'offset=0'));
    await opened(client);
    client.socket.send(JSON.stringify({ type: 'ping', id: 7 }));
    client.socket.send('ping');
    await eventually(() => client.texts.length === 2);
    expect(client.texts).toEqual([JSON.stringify({ type: 'pong', id: 7 }), 'pong']);
    client.socket.close();
  });

  it('pings on each heartbeat and drops a peer that stops answering', async () => {
    const f = await startWs({ heartbeatMs: 50 });
    f.topics.topic('hb');
    const client = connect(f.wsUrl('hb', 'offset=0'));
    let pings = 0;
    client.socket.on('ping', () => {
      pings += 1;
    });
    await eventually(() => pings >= 2, 3000, 'two pings');
    // Stop answering pings (ws answers automatically unless autoPong is off, so silence the socket).
    (client.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    await eventually(() => f.sockets.connections === 0, 3000, 'the silent peer to be dropped');
    await eventually(() => idle(f));
    client.socket.terminate();
  });

  it('leaves nothing held when clients hang up', async () => {
    const f = await startWs();
    f.topics.topic('gone');
    const clients = range(0, 20).map(() => connect(f.wsUrl('gone', 'offset=0')));
    await eventually(() => f.handler.heldRequests === 20 && f.sockets.connections === 20);
    for (const client of clients) client.socket.terminate();
    await eventually(() => idle(f) && f.sockets.connections === 0, 3000, 'everything released');
    expect(f.purgatory.metrics().pending).toBe(0);
  });

  it('refuses upgrades for other paths so the application can route them', async () => {
    const f = await startWs();
    const client = new WebSocket(`${f.server.url.replace('http', 'ws')}/pollkit/topics/t/other`);
    const failed = await new Promise<boolean>((resolve) => {
      client.on('error', () => resolve(true));
      client.on('open', () => resolve(false));
    });
    expect(failed).toBe(true);
  });

  describe('slow consumers', () => {
    const value = 'x'.repeat(16 * 1024);
    const count = 1500; // ~24 MiB: far more than the kernel's socket buffers on loopback

    /** A server with a big topic and a client that reads it until it opened, then stops reading. */
    async function pausedReader(options: PollkitWebSocketOptions) {
      const f = await startWs({}, options);
      await appendAll(
        f,
        'big',
        range(0, count).map(() => value),
      );
      const client = connect(f.wsUrl('big', 'offset=0'));
      await opened(client);
      client.socket.pause();
      return { f, client };
    }

    it('stops reading the topic while the socket is backed up, then closes with 1013; a resume loses nothing', async () => {
      const highWaterMarkBytes = 256 * 1024;
      const { f, client } = await pausedReader({ highWaterMarkBytes, slowConsumerTimeoutMs: 400 });
      const serverSocket = [...f.wss.clients][0]!;
      let maxBuffered = 0;
      const sampler = setInterval(() => {
        maxBuffered = Math.max(maxBuffered, serverSocket.bufferedAmount);
      }, 5);
      await eventually(() => serverSocket.readyState !== WebSocket.OPEN, 5000, 'the slow socket to be closed');
      clearInterval(sampler);
      // Never more than the mark plus the one message sent just before the check.
      expect(maxBuffered).toBeGreaterThan(0);
      expect(maxBuffered).toBeLessThanOrEqual(highWaterMarkBytes + value.length + 200);
      client.socket.resume();
      const closed = await client.closed;
      expect(closed.code).toBe(WS_CLOSE_CODES.tryAgainLater);
      expect(JSON.parse(closed.reason)).toMatchObject({ code: 'slow-consumer' });
      const firstRun = client.messages.map((m) => m.offset);
      expect(firstRun.length).toBeLessThan(count);
      expect(firstRun).toEqual(range(0, firstRun.length));
      const again = connect(f.wsUrl('big', `offset=${firstRun.length}`));
      await again.waitFor(count - firstRun.length, 10_000);
      expect(again.messages.map((m) => m.offset)).toEqual(range(firstRun.length, count));
      again.socket.close();
      await eventually(() => idle(f));
    });

    it('destroys a slow socket that never reads its close frame, instead of keeping its buffer for 30 s', async () => {
      const { f, client } = await pausedReader({ highWaterMarkBytes: 256 * 1024, slowConsumerTimeoutMs: 300 });
      const serverSocket = [...f.wss.clients][0]!;
      await eventually(() => serverSocket.readyState !== WebSocket.OPEN, 5000, 'the slow socket to be closed');
      const closingAt = Date.now();
      // The client never reads again: the socket is destroyed after the grace, not ws's 30 s.
      await eventually(() => serverSocket.readyState === WebSocket.CLOSED, 5000, 'the slow socket to be destroyed');
      expect(Date.now() - closingAt).toBeLessThan(3000);
      expect(f.sockets.connections).toBe(0);
      client.socket.terminate();
    });

    it('with no timeout, waits for a paused client and then delivers everything', async () => {
      const { f, client } = await pausedReader({ highWaterMarkBytes: 128 * 1024, slowConsumerTimeoutMs: 0 });
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(f.sockets.connections).toBe(1);
      client.socket.resume();
      await client.waitFor(count, 10_000);
      expect(client.messages.map((m) => m.offset)).toEqual(range(0, count));
      client.socket.close();
    });
  });

  it('on a WebSocketServer that owns the HTTP server, closes sockets on other paths with 1008', async () => {
    const f = await startFixture(async (handler) => {
      const server = createServer(createNodeListener(handler));
      const wss = new WebSocketServer({ server });
      attachWebSocket(wss, handler);
      const listening = await listen(server);
      return {
        ...listening,
        close: async () => {
          for (const client of wss.clients) client.terminate();
          wss.close();
          await listening.close();
        },
      };
    });
    await f.topics.topic('direct').append('d');
    const origin = f.server.url.replace(/^http/, 'ws');
    const other = connect(`${origin}/elsewhere`);
    expect(await other.closed).toEqual({ code: 1008, reason: JSON.stringify({ code: 'not-found' }) });
    const topic = connect(`${origin}/pollkit/topics/direct/ws?offset=0`);
    await topic.waitFor(1);
    expect(topic.messages[0]?.value).toBe('d');
    topic.socket.close();
  });

  it('validates its options', () => {
    const wss = new WebSocketServer({ noServer: true });
    const handler = { handle: async () => null, prefix: '/pollkit', closing: false } as unknown as PollkitHandler;
    expect(() => new PollkitWebSocketServer(wss, handler, { highWaterMarkBytes: -1 })).toThrow(/highWaterMarkBytes/);
    expect(() => new PollkitWebSocketServer(wss, handler, { slowConsumerTimeoutMs: 1.5 })).toThrow(/slowConsumer/);
    expect(() => attachWebSocket({} as WebSocketServer, handler)).toThrow(/wss/);
    wss.close();
  });
});
