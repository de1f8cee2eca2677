import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock, seededRandom, systemClock } from '../../../src/core/clock.js';
import { InvalidArgumentError, PollkitError } from '../../../src/core/errors.js';
import { PollkitHandler, type PollkitHandlerOptions } from '../../../src/server/http/handler.js';
import type { PollkitRequest, PollkitResponse } from '../../../src/server/http/types.js';
import { JobRegistry } from '../../../src/server/jobs/job-registry.js';
import { DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';
import { TopicRegistry } from '../../../src/server/topics/topic-registry.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

function setup(
  options: Omit<PollkitHandlerOptions, 'jobs' | 'topics' | 'clock'> = {},
  clock = new ManualClock({ seed: 7 }),
) {
  const purgatory = new DelayedOperationPurgatory({ clock });
  const jobs = new JobRegistry({ clock, purgatory, progressIntervalMs: 0 }).define('echo', ({ input }) => input);
  const topics = new TopicRegistry({ clock, purgatory });
  const handler = new PollkitHandler({ clock, jobs, topics, publicAppends: true, ...options });
  closers.push(async () => {
    await handler.close();
    await jobs.close();
    await topics.close();
  });
  return { clock, purgatory, jobs, topics, handler };
}

function request(
  url: string,
  init: Partial<Omit<PollkitRequest, 'url'>> & { body?: string } = {},
): PollkitRequest & { abort(): void } {
  const controller = new AbortController();
  const { body, ...rest } = init;
  return {
    method: 'GET',
    url,
    headers: {},
    signal: controller.signal,
    ...(body === undefined ? {} : { readBody: async () => body }),
    ...rest,
    abort: () => controller.abort(),
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Answered = PollkitResponse & { json: any };

async function answer(handler: PollkitHandler, req: PollkitRequest): Promise<Answered> {
  const response = await handler.handle(req);
  if (response === null) throw new Error('not handled');
  const json = typeof response.body === 'string' && response.body !== '' ? JSON.parse(response.body) : undefined;
  return { ...response, json };
}

describe('PollkitHandler options', () => {
  it.each([
    [{ prefix: 'pollkit' }, 'prefix'],
    [{ prefix: '/pollkit/' }, 'prefix'],
    [{ maxWaitSeconds: -1 }, 'maxWaitSeconds'],
    [{ waitJitter: 0.1 }, 'waitJitter'],
    [{ heartbeatMs: Number.NaN }, 'heartbeatMs'],
    [{ bodyLimitBytes: 1.5 }, 'bodyLimitBytes'],
    [{ maxHeldRequests: -1 }, 'maxHeldRequests'],
    [{ maxHeldPerCaller: 0.5 }, 'maxHeldPerCaller'],
    [{ baseUrl: 'not a url' }, 'baseUrl'],
    [{ baseUrl: 'ftp://example.com' }, 'baseUrl'],
    [{ maxRecordsPerFetch: 0 }, 'maxRecordsPerFetch'],
  ] as [PollkitHandlerOptions, string][])('rejects %j naming %s', (options, name) => {
    let thrown: unknown;
    try {
      new PollkitHandler(options);
    } catch (error) {
      thrown = error;
    }
    expect(InvalidArgumentError.is(thrown)).toBe(true);
    expect((thrown as InvalidArgumentError).argument).toBe(name);
  });

  it('leaves requests outside the prefix to the caller and serves a custom or empty prefix', async () => {
    const { handler } = setup();
    expect(await handler.handle(request('/other/jobs'))).toBeNull();
    expect(await handler.handle(request('/pollkitx/jobs'))).toBeNull();
    expect((await answer(handler, request('/pollkit/jobs'))).status).toBe(200);
    const custom = new PollkitHandler({ prefix: '/api/v1/poll', jobs: new JobRegistry() });
    expect(await custom.handle(request('/pollkit/jobs'))).toBeNull();
    expect((await answer(custom, request('/api/v1/poll/jobs'))).status).toBe(200);
    const root = new PollkitHandler({ prefix: '', jobs: new JobRegistry() });
    expect((await answer(root, request('/jobs?pageSize=5'))).status).toBe(200);
    expect((await answer(root, request('http://example.com/jobs'))).status).toBe(200);
  });

  it('routes without registries answer 404', async () => {
    const handler = new PollkitHandler();
    expect((await answer(handler, request('/pollkit/jobs'))).status).toBe(404);
    expect((await answer(handler, request('/pollkit/topics/a/records?offset=0'))).status).toBe(404);
  });
});

describe('absolute URLs', () => {
  const submit = (headers: Record<string, string>, extra: Partial<PollkitRequest> = {}) =>
    request('/pollkit/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: '{"type":"echo","input":1}',
      ...extra,
    });

  it('uses baseUrl when set, else the Host header and the request scheme', async () => {
    const withBase = setup({ baseUrl: 'https://api.example.com/base/' }).handler;
    const a = await answer(withBase, submit({ host: 'ignored' }));
    expect(a.headers['operation-location']).toBe(`https://api.example.com/base/pollkit/jobs/${a.json.id}`);
    const { handler } = setup();
    const b = await answer(handler, submit({ host: 'localhost:8080' }, { secure: true }));
    expect(b.headers['location']).toBe(`https://localhost:8080/pollkit/jobs/${b.json.id}`);
    const c = await answer(handler, submit({ host: 'evil"host' }));
    expect(c.headers['location']).toBe(`/pollkit/jobs/${c.json.id}`);
  });
});

describe('waiting', () => {
  it('holds exactly the applied wait on the injected clock, then answers 304', async () => {
    const { handler, jobs, clock, purgatory } = setup({ waitJitter: 0 });
    const job = await jobs.create('external', {});
    const pending = answer(
      handler,
      request(`/pollkit/jobs/${job.id}`, { headers: { 'if-none-match': `"${job.version}"`, prefer: 'wait=5' } }),
    );
    let settled = false;
    void pending.then(() => (settled = true));
    await clock.advanceAsync(4999);
    expect(settled).toBe(false);
    expect(handler.heldRequests).toBe(1);
    await clock.advanceAsync(1);
    const response = await pending;
    expect(response.status).toBe(304);
    expect(response.headers['preference-applied']).toBe('wait=5');
    expect(handler.heldRequests).toBe(0);
    expect(purgatory.watched()).toBe(0);
  });

  it('adds seeded jitter of at most wait/16, never beyond the cap', async () => {
    const clock = new ManualClock({ random: seededRandom(42) });
    const { handler, jobs } = setup({ maxWaitSeconds: 30 }, clock);
    const job = await jobs.create('external', {});
    const applied: number[] = [];
    for (let i = 0; i < 200; i++) {
      // A version the job is not at is answered at once, but the applied wait is still reported.
      const wait = i % 2 === 0 ? 16 : 29.5;
      const response = await answer(handler, request(`/pollkit/jobs/${job.id}?version=999&wait=${wait}`));
      const value = Number(/^wait=([\d.]+)$/.exec(response.headers['preference-applied']!)![1]);
      expect(value).toBeGreaterThanOrEqual(wait);
      expect(value).toBeLessThanOrEqual(Math.min(30, wait + wait / 16));
      applied.push(value);
    }
    expect(new Set(applied).size).toBeGreaterThan(50);
    expect(applied.filter((value) => value === 30).length).toBeGreaterThan(0);
  });

  it('does not hold a wait with nothing to compare, nor If-None-Match: *', async () => {
    const { handler, jobs } = setup();
    const job = await jobs.create('external', {});
    const bare = await answer(handler, request(`/pollkit/jobs/${job.id}?wait=20`));
    expect(bare.status).toBe(200);
    expect(bare.headers['preference-applied']).toBeUndefined();
    const star = await answer(
      handler,
      request(`/pollkit/jobs/${job.id}`, { headers: { 'if-none-match': '*', prefer: 'wait=20' } }),
    );
    expect(star.status).toBe(304);
    expect(handler.heldRequests).toBe(0);
  });

  it('answers a held topic read the moment enough records exist', async () => {
    const { handler, topics, clock } = setup();
    const topic = topics.topic('t');
    const pending = answer(handler, request('/pollkit/topics/t/records?offset=0&minRecords=2&wait=20'));
    await clock.advanceAsync(10);
    expect(handler.heldRequests).toBe(1);
    await topic.append('a');
    await clock.advanceAsync(10);
    expect(handler.heldRequests).toBe(1);
    await topic.append('b');
    const response = await pending;
    expect(response.json.records.map((r: { value: string }) => r.value)).toEqual(['a', 'b']);
  });
});

describe('server-sent events', () => {
  async function next(iterator: AsyncIterator<string>): Promise<string | undefined> {
    const result = await iterator.next();
    return result.done === true ? undefined : result.value;
  }

  it('sends retry first, a heartbeat after each quiet interval, and id on every event', async () => {
    const { handler, topics, clock } = setup({ heartbeatMs: 15_000, sseRetryMs: 2500 });
    const topic = topics.topic('t');
    await topic.append({ n: 0 });
    const response = await answer(handler, request('/pollkit/topics/t/events?offset=0'));
    expect(response.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const iterator = (response.body as AsyncIterable<string>)[Symbol.asyncIterator]();
    expect(await next(iterator)).toBe('retry: 2500\n\n');
    const first = await next(iterator);
    expect(first).toMatch(/^id: 0@[^\n]+\ndata: \{.*"offset":0.*\}\n\n$/);
    const quiet = next(iterator);
    await clock.advanceAsync(14_999);
    let heartbeat: string | undefined;
    void quiet.then((chunk) => (heartbeat = chunk));
    await clock.advanceAsync(0);
    expect(heartbeat).toBeUndefined();
    await clock.advanceAsync(1);
    expect(await quiet).toBe(': hb\n\n');
    const data = next(iterator);
    await topic.append({ n: 1 });
    expect(await data).toMatch(/^id: 1@[^\n]+\n/);
    await iterator.return?.();
    expect(handler.heldRequests).toBe(0);
  });

  it('names job events state or progress and ends after the terminal state', async () => {
    const { handler, jobs, clock } = setup();
    const job = await jobs.create('external', {});
    const response = await answer(handler, request(`/pollkit/jobs/${job.id}/events`));
    const iterator = (response.body as AsyncIterable<string>)[Symbol.asyncIterator]();
    const chunks: string[] = [];
    const collecting = (async () => {
      for (let chunk = await next(iterator); chunk !== undefined; chunk = await next(iterator)) chunks.push(chunk);
    })();
    await clock.advanceAsync(1);
    await jobs.start(job.id);
    await clock.advanceAsync(1);
    await jobs.progress(job.id, { percent: 50 });
    await clock.advanceAsync(1);
    await jobs.succeed(job.id, 'r');
    await collecting;
    const names = chunks.filter((c) => c.startsWith('event:')).map((c) => /^event: (\w+)/.exec(c)![1]);
    expect(chunks[0]).toBe('retry: 3000\n\n');
    expect(names).toEqual(['state', 'state', 'progress', 'state']);
    expect(handler.heldRequests).toBe(0);
  });

  it('rejects a malformed Last-Event-ID with 400', async () => {
    const { handler, jobs } = setup();
    const job = await jobs.create('external', {});
    const response = await answer(
      handler,
      request(`/pollkit/jobs/${job.id}/events`, { headers: { 'last-event-id': 'abc' } }),
    );
    expect(response.status).toBe(400);
    expect(response.json.parameter).toBe('Last-Event-ID');
  });
});

describe('close()', () => {
  it('cuts streams whose client stopped reading after closeGraceMs', async () => {
    const { handler, topics, clock } = setup({ closeGraceMs: 1000 });
    topics.topic('t');
    const response = await answer(handler, request('/pollkit/topics/t/events?offset=0'));
    expect(handler.heldRequests).toBe(1);
    let closed = false;
    const closing = handler.close().then(() => (closed = true));
    await clock.advanceAsync(999);
    expect(closed).toBe(false);
    await clock.advanceAsync(1);
    await closing;
    expect(handler.heldRequests).toBe(0);
    expect((await (response.body as AsyncIterable<string>)[Symbol.asyncIterator]().next()).done).toBe(true);
    const after = await answer(handler, request('/pollkit/jobs'));
    expect(after.status).toBe(503);
    expect(after.json.code).toBe('shutting-down');
  });
});

describe('failures', () => {
  it('maps authorize failures: unauthorized is 401, a bug is a 500 reported to onError', async () => {
    const onError = vi.fn();
    const refusing = setup({
      authorize: () => {
        throw new PollkitError('who are you?', 'unauthorized');
      },
    }).handler;
    const refused = await answer(refusing, request('/pollkit/jobs'));
    expect(refused.status).toBe(401);
    expect(refused.json.code).toBe('unauthorized');
    const broken = setup({
      onError,
      authorize: () => {
        throw new Error('secret internals');
      },
    }).handler;
    const failed = await answer(broken, request('/pollkit/jobs'));
    expect(failed.status).toBe(500);
    expect(failed.json.code).toBe('internal-error');
    expect(JSON.stringify(failed.json)).not.toContain('secret');
    expect(onError).toHaveBeenCalledOnce();
  });

  it('answers a client that hung up mid-body with nothing and reports nothing', async () => {
    const onError = vi.fn();
    const { handler } = setup({ onError });
    const req = request('/pollkit/jobs', {
      method: 'POST',
      readBody: async () => {
        req.abort();
        throw new Error('socket hang up');
      },
    });
    const response = await handler.handle(req);
    expect(response?.status).toBeLessThan(500);
    expect(onError).not.toHaveBeenCalled();
  });

  it('works with the system clock by default', () => {
    expect(() => new PollkitHandler({ clock: systemClock })).not.toThrow();
  });
});

describe('edge cases', () => {
  it('ends a topic stream that fell behind retention with an in-band problem event', async () => {
    const clock = new ManualClock();
    const purgatory = new DelayedOperationPurgatory({ clock });
    const topics = new TopicRegistry({ clock, purgatory, retention: { maxRecords: 2 } });
    const handler = new PollkitHandler({ clock, topics });
    closers.push(async () => {
      await handler.close();
      await topics.close();
    });
    const topic = topics.topic('t');
    await topic.append('a');
    await topic.append('b');
    const response = await answer(handler, request('/pollkit/topics/t/events?offset=0'));
    const iterator = (response.body as AsyncIterable<string>)[Symbol.asyncIterator]();
    const chunks: string[] = [];
    chunks.push((await iterator.next()).value as string, (await iterator.next()).value as string);
    for (const value of ['c', 'd', 'e', 'f']) await topic.append(value);
    for (let result = await iterator.next(); result.done !== true; result = await iterator.next())
      chunks.push(result.value);
    expect(chunks[1]).toMatch(/^id: 0@[^\n]+\n/);
    const problem = chunks.at(-1)!;
    expect(problem).toMatch(/^event: problem\ndata: /);
    expect(JSON.parse(problem.slice(problem.indexOf('data: ') + 6))).toMatchObject({
      code: 'offset-gone',
      status: 410,
      earliestOffset: 4,
    });
    expect(handler.heldRequests).toBe(0);
  });

  it('holds a long poll on a finished job until the job is forgotten, then 404', async () => {
    const { handler, jobs, clock } = setup();
    const job = await jobs.create('external', {});
    const done = (await jobs.cancel(job.id))!;
    const pending = answer(
      handler,
      request(`/pollkit/jobs/${job.id}`, { headers: { 'if-none-match': `"${done.version}"`, prefer: 'wait=10' } }),
    );
    await clock.advanceAsync(100);
    expect(handler.heldRequests).toBe(1);
    await jobs.forget(job.id);
    expect((await pending).status).toBe(404);
  });

  it('answers an offset above the high watermark with 400 even when no slot is free', async () => {
    const { handler, topics } = setup({ maxHeldRequests: 0 });
    await topics.topic('t').append(1);
    const response = await answer(handler, request('/pollkit/topics/t/records?offset=5&wait=10'));
    expect(response.status).toBe(400);
    expect(response.json.code).toBe('offset-out-of-range');
    const held = await answer(handler, request('/pollkit/topics/t/records?offset=1&wait=10'));
    expect(held.status).toBe(503);
    expect(held.headers['retry-after']).toBe('1');
  });
});

describe('SSE formatting', () => {
  it('splits data on every line break and strips them from id and event', async () => {
    const { formatSseEvent, formatSseComment } = await import('../../../src/server/http/sse.js');
    expect(formatSseEvent({ data: 'a\r\nb\rc\nd' })).toBe('data: a\ndata: b\ndata: c\ndata: d\n\n');
    expect(formatSseEvent({ id: '1\n2', event: 'x\ry', data: '' })).toBe('event: xy\nid: 12\ndata: \n\n');
    expect(formatSseComment('a\nb')).toBe(': a b\n\n');
  });
});

describe('JSON bodies', () => {
  it('rejects bodies nested deeper than maxJsonDepth before storing them', async () => {
    const { handler } = setup({ maxJsonDepth: 10 });
    const nested = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const submit = (input: string) =>
      answer(handler, request('/pollkit/jobs', { method: 'POST', body: `{"type":"echo","input":${input}}` }));
    expect((await submit(nested(9))).status).toBe(202);
    const deep = await submit(nested(10));
    expect(deep.status).toBe(400);
    expect(deep.json.parameter).toBe('body');
    // Brackets inside strings do not count.
    expect((await submit(JSON.stringify('[[[[[[[[[[[[[[[[[[[[\\"{{{{{{{{{{{{{{{{'))).status).toBe(202);
    const append = await answer(
      handler,
      request('/pollkit/topics/t/records', { method: 'POST', body: `{"value":${nested(20_000)}}` }),
    );
    expect(append.status).toBe(400);
  });
});
