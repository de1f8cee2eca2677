import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { mountPollkit, pollkitHono } from '../../src/adapters/hono.js';
import type { PollkitCaller } from '../../src/server/http/caller.js';
import type { PollkitHandler } from '../../src/server/http/handler.js';
import { describeClientConformance } from '../conformance/clients.js';
import { call, eventually, post, startFixture } from '../conformance/fixture.js';
import { describeConformance } from '../conformance/suite.js';
import type { StartServer, TestServer } from '../helpers/http-server.js';
import { describeFrameworkBehaviour } from './framework-behaviour.js';

/** Serves a Hono app through @hono/node-server on 127.0.0.1:0 with tracked sockets. */
async function serveHono(app: Hono): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const server = await new Promise<Server>((resolve) => {
    const created = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(created as Server));
    (created as Server).on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Hono 4 with pollkit mounted at its prefix and an ordinary route beside it. */
const startHono: StartServer = (handler) => {
  const app = new Hono();
  mountPollkit(app, handler);
  app.get('/health', (c) => c.json({ ok: true }));
  return serveHono(app);
};

describeConformance('pollkit/hono on hono 4 + @hono/node-server', startHono);
describeClientConformance('pollkit/hono on hono 4 + @hono/node-server', startHono);
describeFrameworkBehaviour('hono', startHono);

describe('pollkit/hono', () => {
  it('leaves other routes alone', async () => {
    const f = await startFixture(startHono);
    expect((await call(`${f.server.url}/health`)).body).toEqual({ ok: true });
  });

  it('as global middleware, passes requests outside the prefix to next()', async () => {
    const f = await startFixture((handler) => {
      const app = new Hono();
      app.use(pollkitHono(handler));
      app.get('/after', (c) => c.text('after'));
      return serveHono(app);
    });
    expect((await call(`${f.server.url}/after`)).text).toBe('after');
    expect((await post(`${f.base}/jobs`, { type: 'echo', input: 1 })).status).toBe(202);
  });

  it('passes the Hono context and the peer address to authorize', async () => {
    const seen: { context: unknown; remoteAddress: string | undefined }[] = [];
    const f = await startFixture(
      (handler) => {
        const app = new Hono<{ Variables: { user: string } }>();
        app.use(async (c, next) => {
          c.set('user', c.req.header('x-user') ?? 'anonymous');
          await next();
        });
        mountPollkit(app, handler, { context: (c) => ({ user: c.get('user') as string }) });
        return serveHono(app as unknown as Hono);
      },
      {
        authorize: (request): PollkitCaller => {
          seen.push({ context: request.context, remoteAddress: request.remoteAddress });
          return { owner: (request.context as { user: string }).user };
        },
      },
    );
    const job = await post(`${f.base}/jobs`, { type: 'echo', input: 1 }, { 'x-user': 'ann' });
    expect(job.status).toBe(202);
    expect(seen[0]).toEqual({ context: { user: 'ann' }, remoteAddress: '127.0.0.1' });
    expect((await call(`${f.base}/jobs/${job.body.id}`, { headers: { 'x-user': 'ben' } })).status).toBe(404);
  });

  it('ends a held poll when the client disconnects (request.signal from @hono/node-server)', async () => {
    const f = await startFixture(startHono);
    f.topics.topic('q');
    const controller = new AbortController();
    const poll = fetch(`${f.base}/topics/q/records?offset=0&wait=20`, { signal: controller.signal }).catch(
      () => undefined,
    );
    await eventually(() => f.handler.heldRequests === 1);
    controller.abort();
    await poll;
    await eventually(() => f.handler.heldRequests === 0 && f.purgatory.watched() === 0);
  });

  it('validates its arguments', () => {
    expect(() => pollkitHono(undefined as unknown as PollkitHandler)).toThrow(/handler/);
  });
});
