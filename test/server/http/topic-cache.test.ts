import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { InvalidArgumentError } from '../../../src/core/errors.js';
import type { PollkitCaller } from '../../../src/server/http/caller.js';
import { PollkitHandler, type PollkitHandlerOptions } from '../../../src/server/http/handler.js';
import { resolveTopicCache } from '../../../src/server/http/topic-cache.js';
import type { PollkitRequest, PollkitResponse } from '../../../src/server/http/types.js';
import { JobRegistry } from '../../../src/server/jobs/job-registry.js';
import { DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';
import { MemoryTopicStore } from '../../../src/server/topics/stores/memory-topic-store.js';
import { TopicRegistry } from '../../../src/server/topics/topic-registry.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** Topics named `public.*` are public; `private.<user>` only for that user (header `x-user`). */
const caller = (request: PollkitRequest): PollkitCaller => {
  const user = (request.headers as Record<string, string | undefined>)['x-user'];
  return {
    ...(user === undefined ? {} : { id: user }),
    canReadTopic: (topic) => topic.startsWith('public.') || topic === `private.${user}`,
    isPublicTopic: (topic) => topic.startsWith('public.'),
  };
};

function setup(options: Omit<PollkitHandlerOptions, 'topics' | 'clock'> = {}) {
  const clock = new ManualClock({ seed: 3 });
  const purgatory = new DelayedOperationPurgatory({ clock });
  const store = new MemoryTopicStore({ generateEpoch: () => 'e1' });
  const topics = new TopicRegistry({ clock, purgatory, store, maxLimit: 1000 });
  const jobs = new JobRegistry({ clock, purgatory }).define('echo', ({ input }) => input);
  const handler = new PollkitHandler({ clock, topics, jobs, authorize: caller, waitJitter: 0, ...options });
  closers.push(async () => {
    await handler.close();
    await topics.close();
    await jobs.close();
  });
  return { clock, topics, handler };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Answered = PollkitResponse & { json: any };

async function get(handler: PollkitHandler, url: string, headers: Record<string, string> = {}): Promise<Answered> {
  const response = await handler.handle({ method: 'GET', url, headers, signal: new AbortController().signal });
  if (response === null) throw new Error('not handled');
  const json = typeof response.body === 'string' && response.body !== '' ? JSON.parse(response.body) : undefined;
  return { ...response, json };
}

async function fill(topics: TopicRegistry, name: string, count: number): Promise<void> {
  const topic = topics.topic(name);
  for (let i = 0; i < count; i++) await topic.append(i);
}

describe('topic answers for shared caches', () => {
  it('keeps private topics, held reads without cursor and waits in Prefer no-store, as before', async () => {
    const { handler, topics, clock } = setup();
    await fill(topics, 'private.alice', 3);
    await fill(topics, 'public.news', 3);
    const own = await get(handler, '/pollkit/topics/private.alice/records?offset=0&epoch=e1&cursor=0', {
      'x-user': 'alice',
    });
    expect(own.status).toBe(200);
    expect(own.headers['cache-control']).toBe('no-store');
    expect(own.headers['etag']).toBeUndefined();
    expect(own.json.cursor).toBeUndefined();

    // An old client's held read asks again with the same URL after an empty answer.
    const legacy = get(handler, '/pollkit/topics/public.news/records?offset=3&wait=5');
    await clock.advanceAsync(5000);
    const legacyAnswer = await legacy;
    expect(legacyAnswer.json.records).toEqual([]);
    expect(legacyAnswer.headers['cache-control']).toBe('no-store');
    expect(legacyAnswer.json.cursor).toBeUndefined();

    // The wait lives in a header the URL does not show: a cache could not tell the reads apart.
    const preferred = get(handler, '/pollkit/topics/public.news/records?offset=3&cursor=0', { prefer: 'wait=5' });
    await clock.advanceAsync(5000);
    expect((await preferred).headers['cache-control']).toBe('no-store');
  });

  it('makes a full range of a named epoch immutable, other ranges short-lived', async () => {
    const { handler, topics } = setup();
    await fill(topics, 'public.news', 150);
    const full = await get(handler, '/pollkit/topics/public.news/records?offset=0&limit=100&epoch=e1');
    expect(full.status).toBe(200);
    expect(full.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(full.headers['etag']).toBe('W/"e1:0:100:0"');
    expect(full.headers['vary']).toBe('Prefer');
    expect(full.json.records).toHaveLength(100);
    expect(full.json.cursor).toBe('0');

    // Without the epoch in the URL the same URL may mean other records after a reset.
    const noEpoch = await get(handler, '/pollkit/topics/public.news/records?offset=0&limit=100');
    expect(noEpoch.headers['cache-control']).toBe('public, max-age=60');

    // A range that reached the high watermark grows if asked again later.
    const tail = await get(handler, '/pollkit/topics/public.news/records?offset=100&limit=100&epoch=e1');
    expect(tail.json.records).toHaveLength(50);
    expect(tail.headers['cache-control']).toBe('public, max-age=60');

    // At the head with nothing to say and no cursor: cached a second at most (short pollers ask again).
    const probe = await get(handler, '/pollkit/topics/public.news/records?offset=150&epoch=e1');
    expect(probe.json.records).toEqual([]);
    expect(probe.headers['cache-control']).toBe('public, max-age=1');
    expect(probe.json.cursor).toBe('0');
  });

  it('counts empty live answers in the cursor and starts again at 0 after records', async () => {
    const { handler, topics, clock } = setup({ topicCache: { headMaxAgeSeconds: 45 } });
    await fill(topics, 'public.news', 2);
    const live = (cursor: string): Promise<Answered> =>
      get(handler, `/pollkit/topics/public.news/records?offset=2&wait=10&epoch=e1&cursor=${cursor}`);

    const first = live('0');
    await clock.advanceAsync(9_999);
    expect(handler.heldRequests).toBe(1);
    await clock.advanceAsync(1);
    const timeout = await first;
    expect(timeout.json.records).toEqual([]);
    expect(timeout.json.cursor).toBe('1');
    expect(timeout.headers['cache-control']).toBe('public, max-age=45');
    expect(timeout.headers['etag']).toBe('W/"e1:2:2:1"');
    expect(timeout.headers['preference-applied']).toBe('wait=10');

    const second = live('1');
    await clock.advanceAsync(100);
    await topics.topic('public.news').append('late');
    const records = await second;
    expect(records.json.records.map((r: { value: unknown }) => r.value)).toEqual(['late']);
    expect(records.json.cursor).toBe('0');
    expect(records.headers['cache-control']).toBe('public, max-age=45');
  });

  it('answers a revalidation that names the same answer with 304', async () => {
    const { handler, topics } = setup();
    await fill(topics, 'public.news', 10);
    const url = '/pollkit/topics/public.news/records?offset=0&limit=5&epoch=e1';
    const first = await get(handler, url);
    const again = await get(handler, url, { 'if-none-match': first.headers['etag']! });
    expect(again.status).toBe(304);
    expect(again.body).toBeNull();
    expect(again.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    const other = await get(handler, url, { 'if-none-match': 'W/"e0:0:5:0"' });
    expect(other.status).toBe(200);
  });

  it('rejects a malformed cursor on public topics, answers errors no-store', async () => {
    const { handler, topics } = setup();
    await fill(topics, 'public.news', 1);
    const bad = await get(handler, '/pollkit/topics/public.news/records?offset=0&cursor=-1');
    expect(bad.status).toBe(400);
    expect(bad.json.parameter).toBe('cursor');
    expect(bad.headers['cache-control']).toBe('no-store');
    const gone = await get(handler, '/pollkit/topics/public.news/records?offset=0&epoch=old&cursor=0');
    expect(gone.status).toBe(410);
    expect(gone.headers['cache-control']).toBe('no-store');
    const hidden = await get(handler, '/pollkit/topics/private.bob/records?offset=0&cursor=0', { 'x-user': 'alice' });
    expect(hidden.status).toBe(404);
    expect(hidden.headers['cache-control']).toBe('no-store');
  });

  it('hands out next URLs that only move forward, the same for everyone at the same position', async () => {
    // Whatever mix of appends and timeouts happens, a client's (offset, cursor) rises strictly, so a
    // cached answer can never send it back to a URL it already asked for.
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 12 }), async (steps) => {
        const { handler, topics, clock } = setup();
        const topic = topics.topic('public.p');
        let position = { offset: 0, cursor: '0' };
        const seen = new Set<string>();
        for (const appends of steps) {
          const url = `/pollkit/topics/public.p/records?offset=${position.offset}&wait=1&epoch=e1&cursor=${position.cursor}`;
          expect(seen.has(url)).toBe(false);
          seen.add(url);
          const pending = get(handler, url);
          await clock.advanceAsync(1);
          for (let i = 0; i < appends; i++) await topic.append(i);
          await clock.advanceAsync(1000);
          const answer = await pending;
          const next = { offset: answer.json.nextOffset as number, cursor: answer.json.cursor as string };
          const moved =
            next.offset > position.offset ||
            (next.offset === position.offset && Number(next.cursor) > Number(position.cursor));
          expect(moved).toBe(true);
          // Another client at the same position asking now gets the same next position.
          if (appends === 0) {
            const twin = get(handler, url);
            await clock.advanceAsync(1000);
            expect((await twin).json.cursor).toBe(next.cursor);
          }
          position = next;
        }
        await handler.close();
      }),
      { numRuns: 25, seed: 17 },
    );
  });

  it('leaves jobs no-store whatever the hook says about topics', async () => {
    const { handler } = setup();
    const submitted = await handler.handle({
      method: 'POST',
      url: '/pollkit/jobs',
      headers: {},
      signal: new AbortController().signal,
      readBody: async () => '{"type":"echo","input":1}',
    });
    expect(submitted?.headers['cache-control']).toBe('no-store');
  });
});

describe('resolveTopicCache', () => {
  it('defaults the head max-age to twice the wait cap', () => {
    expect(resolveTopicCache(undefined, 30_000)).toEqual({ headMaxAgeSeconds: 60, rangeMaxAgeSeconds: 31_536_000 });
    expect(resolveTopicCache({}, 200)).toEqual({ headMaxAgeSeconds: 1, rangeMaxAgeSeconds: 31_536_000 });
  });

  it.each([{ headMaxAgeSeconds: 0 }, { headMaxAgeSeconds: 1.5 }, { rangeMaxAgeSeconds: Number.NaN }])(
    'rejects %j',
    (options) => {
      expect(() => new PollkitHandler({ topicCache: options })).toThrow(InvalidArgumentError);
    },
  );
});
