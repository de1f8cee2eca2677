import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { pollkitFastify } from '../../src/adapters/fastify.js';
import { PollkitHandler } from '../../src/server/http/handler.js';
import { describeClientConformance } from '../conformance/clients.js';
import { call, post, startFixture } from '../conformance/fixture.js';
import { describeConformance } from '../conformance/suite.js';
import { type StartServer, listen } from '../helpers/http-server.js';
import { describeFrameworkBehaviour } from './framework-behaviour.js';

/** Fastify 5 with the pollkit plugin and an ordinary JSON route beside it. */
function fastifyStarter(mount?: string): StartServer {
  return async (handler) => {
    const app = Fastify();
    await app.register(pollkitFastify(handler), mount === undefined ? {} : { prefix: mount });
    app.post('/echo', async (request) => ({ received: request.body }));
    await app.ready();
    // Tracked sockets come from the shared helper; Fastify serves through its own node:http server.
    return listen(app.server);
  };
}

const startFastify = fastifyStarter();

describeConformance('pollkit/fastify on fastify 5', startFastify);
describeClientConformance('pollkit/fastify on fastify 5', startFastify);
describeFrameworkBehaviour('fastify', startFastify);

describe('pollkit/fastify', () => {
  it('keeps its raw-body parser to itself: other routes still parse JSON', async () => {
    const f = await startFixture(startFastify);
    const answer = await post(`${f.server.url}/echo`, { a: 1 });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ received: { a: 1 } });
    expect((await post(`${f.base}/jobs`, { type: 'echo', input: 1 })).status).toBe(202);
  });

  it('answers body limits and media types as pollkit problems, not Fastify errors', async () => {
    const f = await startFixture(startFastify, { bodyLimitBytes: 64 });
    const tooLarge = await post(`${f.base}/topics/t/records`, { value: 'x'.repeat(200) });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.code).toBe('payload-too-large');
    const wrongType = await call(`${f.base}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/xml' },
      body: '<job/>',
    });
    expect(wrongType.status).toBe(415);
    expect(wrongType.body.code).toBe('unsupported-media-type');
  });

  it('works under a Fastify prefix when the handler prefix includes it', async () => {
    const f = await startFixture(fastifyStarter('/api'), { prefix: '/api/pollkit' });
    const answer = await post(`${f.server.url}/api/pollkit/jobs`, { type: 'echo', input: 1 });
    expect(answer.status).toBe(202);
    expect((await call(`${f.server.url}/api/pollkit/jobs/${answer.body.id}`)).status).toBe(200);
  });

  it('refuses a handler prefix outside the plugin prefix', async () => {
    const app = Fastify();
    await expect(app.register(pollkitFastify(new PollkitHandler()), { prefix: '/api' })).rejects.toThrow(/prefix/);
    await app.close();
  });
});
