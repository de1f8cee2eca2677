import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobClient, TopicClient, longPollJob, pollJob } from 'pollkit/client';
import { type EveryFrameworkServer, FRAMEWORKS, start } from '../../examples/every-framework/server.js';

let server: EveryFrameworkServer;
beforeAll(async () => {
  server = await start();
});
afterAll(async () => {
  await server?.close();
});

describe('examples/every-framework', () => {
  it.each(FRAMEWORKS)('%s serves the jobs: submit, progress, result', async (framework) => {
    const jobs = new JobClient({ baseUrl: server.urls[framework] });
    const { job, location } = await jobs.submit('shout', { text: `hello ${framework}` });
    expect(location.startsWith(server.urls[framework])).toBe(true);
    const done = await pollJob<string>(location, { interval: 20 }).result();
    expect(done.id).toBe(job.id);
    expect(done.result).toBe(`HELLO ${framework.toUpperCase()}!`);
  });

  it('shares one registry: a job submitted through Express is long-polled through Koa', async () => {
    const { job } = await new JobClient({ baseUrl: server.urls.express }).submit('shout', { text: 'across' });
    const viaKoa = new JobClient({ baseUrl: server.urls.koa }).jobUrl(job.id);
    expect((await longPollJob<string>(viaKoa).result())?.result).toBe('ACROSS!');
  });

  it('shares one topic: appended through Hono, held and delivered through Fastify', async () => {
    const reader = new TopicClient({ baseUrl: server.urls.fastify });
    const held = reader.fetch<string>('every.framework', { offset: 0, waitSeconds: 10 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const offset = await new TopicClient({ baseUrl: server.urls.hono }).append('every.framework', 'from hono');
    const batch = await held;
    expect(batch.records.map((record) => [record.offset, record.value])).toEqual([[offset, 'from hono']]);
  });
});
