import { createServer } from 'node:http';
import express from 'express';
import { describe, expect, it } from 'vitest';
import { pollkitExpress } from '../../src/adapters/express.js';
import type { PollkitHandler } from '../../src/server/http/handler.js';
import { describeClientConformance } from '../conformance/clients.js';
import { call, post, startFixture } from '../conformance/fixture.js';
import { describeConformance } from '../conformance/suite.js';
import { type StartServer, listen } from '../helpers/http-server.js';
import { openSse } from '../helpers/sse-client.js';
import { describeFrameworkBehaviour } from './framework-behaviour.js';

/** Express 5 with pollkit mounted as middleware beside an ordinary route. */
const startExpress: StartServer = (handler) => {
  const app = express();
  app.use(pollkitExpress(handler));
  app.get('/health', (_req, res) => {
    res.json({ ok: true });
  });
  return listen(createServer(app));
};

/** Express with express.json() in front, which consumes the body before pollkit sees the request. */
const startExpressWithJsonParser: StartServer = (handler: PollkitHandler) => {
  const app = express();
  app.use(express.json({ limit: '1mb' }));
  app.use(pollkitExpress(handler));
  return listen(createServer(app));
};

describeConformance('pollkit/express on express 5', startExpress);
describeClientConformance('pollkit/express on express 5', startExpress);
describeFrameworkBehaviour('express', startExpress);

describe('pollkit/express', () => {
  it('passes requests outside the prefix to the next route', async () => {
    const f = await startFixture(startExpress);
    const answer = await call(`${f.server.url}/health`);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ ok: true });
  });

  it('reuses a body that express.json() already parsed, still under the body limit', async () => {
    const f = await startFixture(startExpressWithJsonParser, { bodyLimitBytes: 64 });
    const submitted = await post(`${f.base}/jobs`, { type: 'echo', input: { n: 1 } });
    expect(submitted.status).toBe(202);
    const appended = await post(`${f.base}/topics/t/records`, { value: 'x' });
    expect(appended.status).toBe(201);
    const tooLarge = await post(`${f.base}/topics/t/records`, { value: 'x'.repeat(200) });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.code).toBe('payload-too-large');
  });

  it('routes on the original URL when mounted under a path', async () => {
    const f = await startFixture(
      (handler) => {
        const app = express();
        app.use('/api', pollkitExpress(handler));
        return listen(createServer(app));
      },
      { prefix: '/api/pollkit' },
    );
    const answer = await post(`${f.server.url}/api/pollkit/jobs`, { type: 'echo', input: 1 });
    expect(answer.status).toBe(202);
    expect(answer.headers.get('location')).toBe(`${f.server.url}/api/pollkit/jobs/${answer.body.id}`);
  });

  it('validates its arguments', () => {
    expect(() => pollkitExpress({} as PollkitHandler)).toThrow(/handler/);
  });
});

describe('pollkit/express behind compression-style buffering', () => {
  it('flushes every server-sent event through a middleware that buffers until flush()', async () => {
    // A stand-in for `compression`: it holds written bytes until res.flush() or res.end(), as gzip does.
    const f = await startFixture((handler) => {
      const app = express();
      app.use((_req, res, next) => {
        const pending: unknown[] = [];
        const write = res.write.bind(res) as (chunk: unknown) => boolean;
        const end = res.end.bind(res) as (chunk?: unknown) => typeof res;
        res.write = ((chunk: unknown) => {
          pending.push(chunk);
          return true;
        }) as typeof res.write;
        (res as unknown as { flush: () => void }).flush = () => {
          for (const chunk of pending.splice(0)) write(chunk);
        };
        res.end = ((chunk?: unknown) => {
          for (const buffered of pending.splice(0)) write(buffered);
          return end(chunk);
        }) as typeof res.end;
        next();
      });
      app.use(pollkitExpress(handler));
      return listen(createServer(app));
    });
    await f.topics.topic('z').append('first');
    const stream = await openSse(`${f.base}/topics/z/events?offset=0`);
    try {
      await stream.waitForEvents(1);
      await f.topics.topic('z').append('second');
      await stream.waitForEvents(2);
      expect(stream.events.map((event) => JSON.parse(event.data).value)).toEqual(['first', 'second']);
    } finally {
      stream.abort();
    }
  });
});
