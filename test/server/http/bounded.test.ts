/**
 * Bounded under abuse, by default: topics keep a bounded log, one tenant cannot use up the topics of
 * all, topics can be deleted (by their creator, or whom the authorize hook names), and owners have a
 * cap on retained jobs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import type { PollkitCaller } from '../../../src/server/http/caller.js';
import { PollkitHandler, type PollkitHandlerOptions } from '../../../src/server/http/handler.js';
import type { PollkitRequest, PollkitResponse } from '../../../src/server/http/types.js';
import { JobRegistry, type JobRegistryOptions } from '../../../src/server/jobs/job-registry.js';
import { DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';
import { TopicRegistry, type TopicRegistryOptions } from '../../../src/server/topics/topic-registry.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

interface Setup {
  readonly handler?: Omit<PollkitHandlerOptions, 'jobs' | 'topics' | 'clock'>;
  readonly topics?: Omit<TopicRegistryOptions, 'clock' | 'purgatory'>;
  readonly jobs?: Omit<JobRegistryOptions, 'clock' | 'purgatory'>;
}

/** Callers name themselves in `x-user`; each is its own owner and may append to topics it names. */
const byUser = (request: PollkitRequest): PollkitCaller | undefined => {
  const headers = request.headers as Record<string, string | undefined>;
  const user = headers['x-user'];
  return user === undefined ? undefined : { id: user, owner: user, canAppendTopic: () => true };
};

function setup(options: Setup = {}) {
  const clock = new ManualClock({ seed: 3 });
  const purgatory = new DelayedOperationPurgatory({ clock });
  const jobs = new JobRegistry({ clock, purgatory, ...options.jobs }).define('echo', ({ input }) => input);
  const topics = new TopicRegistry({ clock, purgatory, ...options.topics });
  const handler = new PollkitHandler({ clock, jobs, topics, authorize: byUser, ...options.handler });
  closers.push(async () => {
    await handler.close();
    await jobs.close();
    await topics.close();
  });
  return { clock, jobs, topics, handler };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Answered = PollkitResponse & { json: any };

async function send(
  handler: PollkitHandler,
  method: string,
  url: string,
  user?: string,
  body?: unknown,
  signal = new AbortController().signal,
): Promise<Answered> {
  const request: PollkitRequest = {
    method,
    url,
    headers: {
      ...(user === undefined ? {} : { 'x-user': user }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    signal,
    remoteAddress: '10.0.0.1',
    ...(body === undefined ? {} : { readBody: async () => JSON.stringify(body) }),
  };
  const response = await handler.handle(request);
  if (response === null) throw new Error('not handled');
  const json = typeof response.body === 'string' && response.body !== '' ? JSON.parse(response.body) : undefined;
  return { ...response, json };
}

const append = (handler: PollkitHandler, topic: string, user: string, value: unknown = 1) =>
  send(handler, 'POST', `/pollkit/topics/${topic}/records`, user, { value });

describe('topic retention by default', () => {
  it('keeps at most 10,000 records of a topic however many are appended', async () => {
    const { topics } = setup();
    const topic = topics.topic('firehose');
    for (let n = 0; n < 25_000; n++) await topic.append(n);
    const position = await topic.position();
    expect(position).toMatchObject({ earliestOffset: 15_000, highWatermark: 25_000 });
  });

  it('drops records older than a day', async () => {
    const { topics, clock } = setup();
    const topic = topics.topic('daily');
    await topic.append('old');
    clock.advance(86_400_000 + 1);
    await topic.append('new');
    const batch = await topic.read(0, { limit: 10 }).catch((error: unknown) => error);
    expect(batch).toMatchObject({ code: 'offset-gone', earliestOffset: 1 });
  });

  it('lifts a limit set to Infinity', async () => {
    const { topics } = setup({ topics: { retention: { maxRecords: Infinity } } });
    const topic = topics.topic('all');
    for (let n = 0; n < 10_050; n++) await topic.append(n);
    expect((await topic.position()).earliestOffset).toBe(0);
  });
});

describe('topics per owner', () => {
  it('stops one tenant at maxTopicsPerOwner (403) while others keep creating', async () => {
    const { handler } = setup({ topics: { maxTopics: 50, maxTopicsPerOwner: 10 } });
    const statuses: number[] = [];
    for (let n = 0; n < 40; n++) statuses.push((await append(handler, `bob.t${n}`, 'bob')).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(201));
    expect(new Set(statuses.slice(10))).toEqual(new Set([403]));
    const refused = await append(handler, 'bob.more', 'bob');
    expect(refused.json).toMatchObject({ status: 403, code: 'too-many-topics' });
    // Existing topics stay writable; other tenants are not affected.
    expect((await append(handler, 'bob.t3', 'bob')).status).toBe(201);
    for (let n = 0; n < 10; n++) expect((await append(handler, `alice.t${n}`, 'alice')).status).toBe(201);
  });

  it('frees a place when the tenant deletes one of its topics', async () => {
    const { handler, topics } = setup({ topics: { maxTopicsPerOwner: 2 } });
    await append(handler, 'bob.a', 'bob');
    await append(handler, 'bob.b', 'bob');
    expect((await append(handler, 'bob.c', 'bob')).status).toBe(403);
    expect((await send(handler, 'DELETE', '/pollkit/topics/bob.a', 'bob')).status).toBe(204);
    expect(topics.get('bob.a')).toBeUndefined();
    expect((await append(handler, 'bob.c', 'bob')).status).toBe(201);
  });
});

describe('DELETE {p}/topics/{t}', () => {
  const admin = (request: PollkitRequest): PollkitCaller | undefined => {
    const caller = byUser(request);
    return caller?.id === 'admin' ? { ...caller, canDeleteTopic: () => true } : caller;
  };

  it('lets the creator delete, and whoever the authorize hook names; nobody else', async () => {
    const { handler, topics } = setup({ handler: { authorize: admin } });
    await append(handler, 'bob.x', 'bob');
    await append(handler, 'bob.y', 'bob');
    const stranger = await send(handler, 'DELETE', '/pollkit/topics/bob.x', 'alice');
    expect(stranger.status).toBe(403);
    expect(stranger.json.code).toBe('forbidden');
    expect((await send(handler, 'DELETE', '/pollkit/topics/bob.x')).status).toBe(403);
    expect(topics.get('bob.x')).toBeDefined();
    expect((await send(handler, 'DELETE', '/pollkit/topics/bob.x', 'bob')).status).toBe(204);
    expect((await send(handler, 'DELETE', '/pollkit/topics/bob.y', 'admin')).status).toBe(204);
    expect(topics.names()).toEqual([]);
    const missing = await send(handler, 'DELETE', '/pollkit/topics/nothing', 'admin');
    expect(missing.status).toBe(404);
    expect(missing.json.code).toBe('topic-not-found');
    const get = await send(handler, 'GET', '/pollkit/topics/bob.x', 'bob');
    expect(get.status).toBe(405);
    expect(get.headers['allow']).toBe('DELETE, OPTIONS');
  });

  it('answers held reads and streams of a deleted topic with topic-not-found', async () => {
    const { handler, topics } = setup({ handler: { authorize: admin } });
    await append(handler, 'room', 'admin', 'first');
    const held = send(handler, 'GET', '/pollkit/topics/room/records?offset=1&wait=30', 'alice');
    const stream = await handler.handle({
      method: 'GET',
      url: '/pollkit/topics/room/events?offset=0',
      headers: {},
      signal: new AbortController().signal,
    });
    const chunks: string[] = [];
    const reading = (async () => {
      for await (const chunk of stream!.body as AsyncIterable<string>) chunks.push(chunk);
    })();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect((await send(handler, 'DELETE', '/pollkit/topics/room', 'admin')).status).toBe(204);
    const answer = await held;
    expect(answer.status).toBe(404);
    expect(answer.json.code).toBe('topic-not-found');
    await reading;
    const text = chunks.join('');
    expect(text).toContain('"value":"first"');
    expect(text).toContain('event: problem');
    expect(text).toContain('"code":"topic-not-found"');
    // The name is free again: a new, empty log in a new epoch.
    await append(handler, 'room', 'admin', 'again');
    const fresh = await topics.topic('room').read(0);
    expect(fresh.records.map((record) => record.value)).toEqual(['again']);
  });
});

describe('jobs per owner', () => {
  it('answers 429 with Retry-After past maxJobsPerOwner, and frees a place when a job is forgotten', async () => {
    const { handler, clock } = setup({ jobs: { maxJobsPerOwner: 3, retentionMs: 30_000 } });
    const submit = (user: string) => send(handler, 'POST', '/pollkit/jobs', user, { type: 'echo', input: 1 });
    const ids: string[] = [];
    for (let n = 0; n < 3; n++) {
      const accepted = await submit('bob');
      expect(accepted.status).toBe(202);
      ids.push(accepted.json.id);
    }
    const refused = await submit('bob');
    expect(refused.status).toBe(429);
    expect(refused.json.code).toBe('too-many-jobs');
    expect(refused.headers['retry-after']).toBe('30');
    expect((await submit('alice')).status).toBe(202);
    await clock.advanceAsync(0);
    expect((await send(handler, 'DELETE', `/pollkit/jobs/${ids[0]}`, 'bob')).status).toBe(204);
    expect((await submit('bob')).status).toBe(202);
    // Expiry frees places too.
    await clock.advanceAsync(31_000);
    for (let n = 0; n < 3; n++) expect((await submit('bob')).status).toBe(202);
  });
});

describe('load shedding', () => {
  const handlerWith = (loadShedding: NonNullable<PollkitHandlerOptions['loadShedding']>) => {
    const jobs = new JobRegistry().define('echo', ({ input }) => input);
    const handler = new PollkitHandler({ jobs, loadShedding });
    closers.push(async () => {
      await handler.close();
      await jobs.close();
    });
    return handler;
  };
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('answers 503 with Retry-After while the event loop runs late, and serves again once it recovers', async () => {
    const handler = handlerWith({ maxEventLoopDelayMs: 150, sampleIntervalMs: 20, retryAfterSeconds: 2 });
    expect((await send(handler, 'GET', '/pollkit/jobs')).status).toBe(200);
    const until = Date.now() + 400;
    while (Date.now() < until) {
      // A handler stuck in synchronous work: every timer fires late.
    }
    await sleep(5);
    expect(handler.load?.shedding).toBe(true);
    expect(handler.load?.eventLoopDelayMs).toBeGreaterThan(150);
    const shed = await send(handler, 'GET', '/pollkit/jobs');
    expect(shed.status).toBe(503);
    expect(shed.json.code).toBe('overloaded');
    expect(shed.headers['retry-after']).toBe('2');
    for (let waited = 0; handler.load?.shedding === true && waited < 3000; waited += 20) await sleep(20);
    expect(handler.load?.shedding).toBe(false);
    expect((await send(handler, 'GET', '/pollkit/jobs')).status).toBe(200);
  });

  it('sheds while the heap is above its limit', async () => {
    const handler = handlerWith({ maxHeapUsedBytes: 1, sampleIntervalMs: 10 });
    await sleep(40);
    expect(handler.load).toMatchObject({ shedding: true, heapUsedBytes: expect.any(Number) });
    expect((await send(handler, 'POST', '/pollkit/jobs', undefined, { type: 'echo' })).status).toBe(503);
  });

  it('is off by default', () => {
    expect(new PollkitHandler().load).toBeUndefined();
  });
});
