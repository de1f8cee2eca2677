/**
 * The pollers against a real pollkit server on port 0 (node:http adapter): jobs that progress and
 * succeed, fail, or are canceled; a topic consumed across a server restart; a trimmed offset.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { JobCanceledError, JobClient, JobFailedError, OffsetGoneError, backoff } from '../../src/client/index.js';
import { consumeTopic, longPollJob, pollJob } from '../../src/client/protocol-pollers.js';
import { PollkitHandler } from '../../src/server/http/handler.js';
import { JobRegistry } from '../../src/server/jobs/job-registry.js';
import { MemoryTopicStore } from '../../src/server/topics/stores/memory-topic-store.js';
import { TopicRegistry } from '../../src/server/topics/topic-registry.js';
import { sleep } from '../../src/core/abort.js';
import { startNodeServer, type TestServer } from '../helpers/http-server.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function jobRegistry(): JobRegistry {
  const jobs = new JobRegistry({ progressIntervalMs: 0 })
    .define<{ steps: number }, { steps: number }>('count', async ({ input, reportProgress, signal }) => {
      for (let step = 1; step <= input.steps; step++) {
        await sleep(15, { signal });
        reportProgress({ percent: Math.round((step / input.steps) * 100), message: `step ${step}` });
      }
      return { steps: input.steps };
    })
    .define('explode', async () => {
      await sleep(20);
      throw new Error('the transcoder caught fire');
    })
    .define('forever', async ({ signal }) => {
      await sleep(60_000, { signal });
    });
  cleanups.push(() => jobs.close());
  return jobs;
}

async function serve(handler: PollkitHandler): Promise<TestServer> {
  const server = await startNodeServer(handler);
  cleanups.push(async () => {
    await handler.close();
    await server.close();
  });
  return server;
}

const fastPolls = { interval: 20, retry: backoff({ initial: 10, max: 50 }) } as const;

describe('ShortPoller and LongPoller against a real server', () => {
  it('follow a job that reports progress and succeeds', async () => {
    const server = await serve(new PollkitHandler({ jobs: jobRegistry(), topics: new TopicRegistry() }));
    const client = new JobClient({ baseUrl: server.url });

    const short = await client.submit('count', { steps: 5 });
    const poller = pollJob<{ steps: number }>(short.location, fastPolls);
    const percents: number[] = [];
    poller.on('update', (job) => percents.push(job.progress?.percent ?? 0));
    const job = await poller.result();
    expect(job.status).toBe('succeeded');
    expect(job.result).toEqual({ steps: 5 });
    expect(percents.at(-1)).toBe(100);
    expect([...percents].sort((a, b) => a - b)).toEqual(percents); // progress never goes back

    const long = await client.submit('count', { steps: 5 });
    const longPoller = longPollJob<{ steps: number }>(long.location, { waitMs: 2000 });
    const versions: number[] = [];
    longPoller.on('data', (jobs) => versions.push(...jobs.map((j) => j.version)));
    const longJob = await longPoller.result();
    expect(longJob?.result).toEqual({ steps: 5 });
    expect(versions).toEqual([...new Set(versions)].sort((a, b) => a - b)); // each version once, in order
    expect(versions.length).toBeGreaterThanOrEqual(3);
  });

  it('end with JobFailedError carrying the problem, and JobCanceledError on cancel', async () => {
    const server = await serve(new PollkitHandler({ jobs: jobRegistry(), topics: new TopicRegistry() }));
    const client = new JobClient({ baseUrl: server.url });

    const failing = await client.submit('explode', {});
    const failure = await pollJob(failing.location, fastPolls)
      .result()
      .catch((error: unknown) => error);
    expect(JobFailedError.is(failure)).toBe(true);
    expect((failure as JobFailedError).problem.detail).toContain('caught fire');

    const endless = await client.submit('forever', {});
    const watching = longPollJob(endless.location, { waitMs: 5000 }).result();
    await sleep(50);
    await client.cancel(endless.job.id);
    const canceled = await watching.catch((error: unknown) => error);
    expect(JobCanceledError.is(canceled)).toBe(true);
  });

  it('consume a topic across a server restart with nothing lost and nothing repeated', async () => {
    // The log outlives the process that serves it (as a Redis or file store would); the HTTP server,
    // the handler and the registry are all replaced.
    const store = new MemoryTopicStore();
    const startServing = async (): Promise<{ server: TestServer; topics: TopicRegistry; stop(): Promise<void> }> => {
      const topics = new TopicRegistry({ store });
      topics.topic('orders');
      const handler = new PollkitHandler({ jobs: new JobRegistry(), topics, publicAppends: true });
      const server = await startNodeServer(handler);
      return {
        server,
        topics,
        stop: async () => {
          await handler.close();
          await server.close();
          await topics.close();
        },
      };
    };
    const serving = await startServing();
    const port = new URL(serving.server.url).port;
    const producer = serving.topics.topic<number>('orders');
    for (let n = 0; n < 50; n++) await producer.append(n);

    const consumer = consumeTopic<number>(`${serving.server.url}/pollkit/topics/orders`, {
      offset: 0,
      waitMs: 1000,
      retry: backoff({ initial: 20, max: 100 }),
    });
    cleanups.push(async () => consumer.stop());
    const seen: number[] = [];
    const done = (async () => {
      for await (const record of consumer) {
        seen.push(record.value);
        if (seen.length === 100) break;
      }
    })();

    while (seen.length < 50) await sleep(10);
    await serving.stop();
    // Same port, new process state: the consumer's retries find the new server.
    const { createServer } = await import('node:http');
    const { createNodeListener } = await import('../../src/adapters/node.js');
    const topics = new TopicRegistry({ store });
    const handler = new PollkitHandler({ jobs: new JobRegistry(), topics, publicAppends: true });
    const restarted = createServer(createNodeListener(handler));
    await new Promise<void>((resolve) => restarted.listen(Number(port), '127.0.0.1', resolve));
    cleanups.push(async () => {
      await handler.close();
      restarted.closeAllConnections();
      await new Promise((resolve) => restarted.close(resolve));
      await topics.close();
    });
    const producerAfter = topics.topic<number>('orders');
    for (let n = 50; n < 100; n++) await producerAfter.append(n);
    await done;
    expect(seen).toEqual(Array.from({ length: 100 }, (_, n) => n));
  });

  it('surface a trimmed offset as a typed gone event with the new earliest offset', async () => {
    const topics = new TopicRegistry({ retention: { maxRecords: 10 } });
    const server = await serve(new PollkitHandler({ jobs: new JobRegistry(), topics }));
    const topic = topics.topic<number>('feed');
    for (let n = 0; n < 30; n++) await topic.append(n);

    const consumer = consumeTopic<number>(`${server.url}/pollkit/topics/feed`, { offset: 3, waitMs: 500 });
    const gone = new Promise<OffsetGoneError>((resolve) => consumer.on('gone', (error) => resolve(error)));
    const ended = consumer.result().catch((error: unknown) => error);
    const error = await gone;
    expect(error.earliestOffset).toBe(20);
    expect(OffsetGoneError.is(await ended)).toBe(true);
  });
});
