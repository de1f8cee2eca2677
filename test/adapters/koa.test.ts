import { createServer } from 'node:http';
import Koa from 'koa';
import { describe, expect, it } from 'vitest';
import { pollkitKoa } from '../../src/adapters/koa.js';
import type { PollkitHandler } from '../../src/server/http/handler.js';
import { describeClientConformance } from '../conformance/clients.js';
import { call, post, startFixture } from '../conformance/fixture.js';
import { describeConformance } from '../conformance/suite.js';
import { type StartServer, listen } from '../helpers/http-server.js';
import { describeFrameworkBehaviour } from './framework-behaviour.js';

/** Koa 3 with pollkit before an ordinary middleware, and an upstream middleware that sets a header. */
const startKoa: StartServer = (handler) => {
  const app = new Koa();
  app.use(async (ctx, next) => {
    ctx.set('x-upstream', 'yes');
    await next();
  });
  app.use(pollkitKoa(handler));
  app.use((ctx) => {
    if (ctx.path === '/health') ctx.body = { ok: true };
  });
  return listen(createServer(app.callback()));
};

describeConformance('pollkit/koa on koa 3', startKoa);
describeClientConformance('pollkit/koa on koa 3', startKoa);
describeFrameworkBehaviour('koa', startKoa);

describe('pollkit/koa', () => {
  it('passes requests outside the prefix to the next middleware', async () => {
    const f = await startFixture(startKoa);
    const answer = await call(`${f.server.url}/health`);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ ok: true });
    expect((await call(`${f.server.url}/elsewhere`)).status).toBe(404);
  });

  it('keeps headers set by earlier middleware on pollkit answers', async () => {
    const f = await startFixture(startKoa);
    const answer = await post(`${f.base}/jobs`, { type: 'echo', input: 1 });
    expect(answer.status).toBe(202);
    expect(answer.headers.get('x-upstream')).toBe('yes');
  });

  it('reuses a body a body parser already read (rawBody first, then the parsed body)', async () => {
    const f = await startFixture(
      (handler) => {
        const app = new Koa();
        // A stand-in for koa-bodyparser: reads the stream, keeps rawBody and the parsed body.
        app.use(async (ctx, next) => {
          if (ctx.method === 'POST') {
            const chunks: Buffer[] = [];
            for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
            const raw = Buffer.concat(chunks).toString('utf8');
            const request = ctx.request as unknown as { body: unknown; rawBody: string };
            request.rawBody = raw;
            request.body = raw === '' ? {} : JSON.parse(raw);
          }
          await next();
        });
        app.use(pollkitKoa(handler));
        return listen(createServer(app.callback()));
      },
      { bodyLimitBytes: 64 },
    );
    expect((await post(`${f.base}/jobs`, { type: 'echo', input: 2 })).status).toBe(202);
    const tooLarge = await post(`${f.base}/topics/t/records`, { value: 'x'.repeat(200) });
    expect(tooLarge.status).toBe(413);
  });

  it('validates its arguments', () => {
    expect(() => pollkitKoa(null as unknown as PollkitHandler)).toThrow(/handler/);
  });
});
