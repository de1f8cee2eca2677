import { type IncomingMessage, createServer, request as httpRequest } from 'node:http';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { createNodeListener } from '../../src/adapters/node.js';
import { PollkitHandler } from '../../src/server/http/handler.js';
import { JobRegistry } from '../../src/server/jobs/job-registry.js';
import { TopicRegistry } from '../../src/server/topics/topic-registry.js';
import { describeClientConformance } from '../conformance/clients.js';
import { describeConformance } from '../conformance/suite.js';
import { listen, startNodeServer } from '../helpers/http-server.js';

describeConformance('pollkit/node on node:http', startNodeServer);
describeClientConformance('pollkit/node on node:http', startNodeServer);

async function serve(listener: Parameters<typeof createServer>[1]) {
  const server = await listen(createServer(listener));
  onTestFinished(() => server.close());
  return server;
}

describe('pollkit/node specifics', () => {
  it('answers 413 to a chunked body over the limit without reading all of it', async () => {
    const jobs = new JobRegistry().define('echo', ({ input }) => input);
    const server = await serve(createNodeListener(new PollkitHandler({ jobs, bodyLimitBytes: 1000 })));
    const { port } = new URL(server.url);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/pollkit/jobs',
          headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.write('{"type":"echo","input":"');
      // Far more than the limit, in chunks; the server answers as soon as the limit is crossed.
      const chunk = 'x'.repeat(500);
      let sent = 0;
      const pump = (): void => {
        while (sent < 200 && req.write(chunk)) sent++;
        if (sent < 200) req.once('drain', pump);
        else req.end('"}');
      };
      pump();
    });
    expect(status).toBe(413);
    await jobs.close();
  });

  it('passes requests outside the prefix to next() as middleware, else answers 404', async () => {
    const handler = new PollkitHandler({ topics: new TopicRegistry() });
    const listener = createNodeListener(handler);
    const server = await serve((req, res) => {
      listener(req, res, () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('next');
      });
    });
    expect(await (await fetch(`${server.url}/elsewhere`)).text()).toBe('next');
    expect((await fetch(`${server.url}/pollkit/topics/x/records?offset=0`)).status).toBe(404);
    const bare = await serve(createNodeListener(handler));
    const unmatched = await fetch(`${bare.url}/elsewhere`);
    expect(unmatched.status).toBe(404);
    expect(unmatched.headers.get('content-type')).toBe('application/problem+json');
    const custom = await serve(createNodeListener(handler, { onUnmatched: (_req, res) => res.writeHead(418).end() }));
    expect((await fetch(`${custom.url}/elsewhere`)).status).toBe(418);
  });

  it('passes the context builder output to authorize', async () => {
    const jobs = new JobRegistry();
    const seen: unknown[] = [];
    const handler = new PollkitHandler<{ user: string }>({
      jobs,
      authorize: (request) => {
        seen.push(request.context);
        return { owner: request.context!.user };
      },
    });
    const server = await serve(
      createNodeListener(handler, { context: (req) => ({ user: String(req.headers['x-user']) }) }),
    );
    await jobs.create('external', {}, { owner: 'ann' });
    const answer = await fetch(`${server.url}/pollkit/jobs`, { headers: { 'x-user': 'ann' } });
    expect(((await answer.json()) as { jobs: unknown[] }).jobs).toHaveLength(1);
    expect(seen).toEqual([{ user: 'ann' }]);
    await jobs.close();
  });
  it('answers JSON with a Content-Length, not chunked, also for a held read that an append answers', async () => {
    const topics = new TopicRegistry();
    topics.topic('t');
    const handler = new PollkitHandler({ topics });
    const server = await serve(createNodeListener(handler));
    const { port } = new URL(server.url);
    const raw = (path: string) =>
      new Promise<{ headers: Record<string, unknown>; body: string }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ headers: res.headers, body }));
        });
        req.on('error', reject);
        req.end();
      });
    const held = raw('/pollkit/topics/t/records?offset=0&wait=5');
    await vi.waitFor(() => expect(handler.heldRequests).toBe(1));
    await topics.topic('t').append({ n: 1 });
    const answer = await held;
    expect(answer.headers['transfer-encoding']).toBeUndefined();
    expect(Number(answer.headers['content-length'])).toBe(Buffer.byteLength(answer.body));
    expect((JSON.parse(answer.body) as { records: unknown[] }).records).toHaveLength(1);
    const missing = await raw('/pollkit/topics/nope/records?offset=0');
    expect(missing.headers['transfer-encoding']).toBeUndefined();
    expect(Number(missing.headers['content-length'])).toBe(Buffer.byteLength(missing.body));
    expect(handler.heldRequests).toBe(0);
    await topics.close();
  });

  it('drains a held GET’s request stream on arrival, not when one append answers it among thousands', async () => {
    const topics = new TopicRegistry();
    topics.topic('t');
    const handler = new PollkitHandler({ topics });
    const listener = createNodeListener(handler);
    const arrived: IncomingMessage[] = [];
    const server = await serve((req, res) => {
      arrived.push(req);
      listener(req, res);
    });
    const { port } = new URL(server.url);
    const answered = new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/pollkit/topics/t/records?offset=0&wait=5' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    await vi.waitFor(() => expect(handler.heldRequests).toBe(1));
    // Held, not yet answered, and the request stream has already ended and been released.
    await vi.waitFor(() => expect(arrived[0]!.readableEnded).toBe(true));
    await topics.topic('t').append({ n: 1 });
    expect(await answered).toBe(200);
    await topics.close();
  });
});
