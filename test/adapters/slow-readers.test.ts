/**
 * A server-sent event stream whose client stopped reading is let go: on the Node adapters (which
 * Express, Fastify and Koa share) once the events held behind its full socket pass `maxUnsentBytes`
 * or its socket has not drained for `slowReaderTimeoutMs`; on the fetch adapter once the runtime has
 * not asked for the next event for `slowReaderTimeoutMs`. Clients here are raw sockets that stop
 * reading after the headers, as a stalled browser tab or a wedged proxy would.
 */
import { type Socket, connect } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { PollkitHandler, type PollkitHandlerOptions } from '../../src/server/http/handler.js';
import { TopicRegistry } from '../../src/server/topics/topic-registry.js';
import { type StartServer, startFetchServer, startNodeServer } from '../helpers/http-server.js';

async function serve(start: StartServer, options: Omit<PollkitHandlerOptions, 'topics'>) {
  const topics = new TopicRegistry({ retention: { maxRecords: Infinity } });
  const handler = new PollkitHandler({ topics, ...options });
  const server = await start(handler);
  onTestFinished(async () => {
    await server.close();
    await handler.close();
    await topics.close();
  });
  return { topics, handler, server };
}

/** Opens an SSE stream over a raw socket, reads until the headers arrived, then stops reading. */
async function stalledReader(url: string, path: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  onTestFinished(() => {
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nAccept: text/event-stream\r\n\r\n`);
    let seen = '';
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString('latin1');
      if (seen.includes('\r\n\r\n')) {
        socket.off('data', onData);
        socket.pause();
        resolve();
      }
    };
    socket.on('data', onData);
  });
  return socket;
}

async function until(condition: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - started;
}

const kib = 'x'.repeat(1024);

async function flood(topics: TopicRegistry, name: string, count: number): Promise<void> {
  const topic = topics.topic(name);
  for (let n = 0; n < count; n++) {
    await topic.append(kib);
    if (n % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('slow SSE readers', () => {
  it('evicts a reader whose unsent bytes stay above maxUnsentBytes for slowReaderTimeoutMs (node adapter)', async () => {
    const { topics, handler, server } = await serve(startNodeServer, {
      maxUnsentBytes: 64 * 1024,
      slowReaderTimeoutMs: 300,
    });
    topics.topic('firehose');
    await stalledReader(server.url, '/pollkit/topics/firehose/events?offset=0');
    expect(handler.heldRequests).toBe(1);
    // Enough to fill the kernel's buffers on both ends of a loopback connection, then the bound.
    await flood(topics, 'firehose', 20_000);
    // Nothing more is appended: the stalled socket never drains, and the clock lets it go.
    await until(() => handler.heldRequests === 0, 5000);
    await until(() => server.sockets.size === 0, 5000);
  });

  it('waits forever with slowReaderTimeoutMs 0, holding no more than the bound', async () => {
    const { topics, handler, server } = await serve(startNodeServer, {
      maxUnsentBytes: 64 * 1024,
      slowReaderTimeoutMs: 0,
    });
    topics.topic('patient');
    await stalledReader(server.url, '/pollkit/topics/patient/events?offset=0');
    await flood(topics, 'patient', 20_000);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(handler.heldRequests).toBe(1);
  });

  it('keeps a reader that keeps up, however much it receives', async () => {
    const { topics, handler, server } = await serve(startNodeServer, {
      maxUnsentBytes: 64 * 1024,
      slowReaderTimeoutMs: 300,
    });
    topics.topic('steady');
    const response = await fetch(`${server.url}/pollkit/topics/steady/events?offset=0`);
    const reader = response.body!.getReader();
    let bytes = 0;
    const reading = (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        bytes += value.byteLength;
      }
    })();
    await flood(topics, 'steady', 5000);
    await until(() => bytes > 5000 * 1024, 10_000);
    expect(handler.heldRequests).toBe(1);
    await reader.cancel();
    await reading;
  });

  it('evicts a stalled reader on the fetch adapter when the runtime stops asking for events', async () => {
    const { topics, handler, server } = await serve(startFetchServer, { slowReaderTimeoutMs: 300 });
    topics.topic('fetched');
    await stalledReader(server.url, '/pollkit/topics/fetched/events?offset=0');
    await flood(topics, 'fetched', 20_000);
    await until(() => handler.heldRequests === 0, 5000);
  });
});
