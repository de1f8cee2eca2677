/**
 * Callers woken together share one answer (body and headers) only where they asked the same thing and
 * may see the same thing: a shared answer never crosses offsets, limits, epochs, owners, conditions or
 * applied waits.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import type { PollkitCaller } from '../../../src/server/http/caller.js';
import { PollkitHandler, type PollkitHandlerOptions } from '../../../src/server/http/handler.js';
import type { PollkitRequest, PollkitResponse } from '../../../src/server/http/types.js';
import { JobRegistry } from '../../../src/server/jobs/job-registry.js';
import { DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';
import { MemoryTopicStore } from '../../../src/server/topics/stores/memory-topic-store.js';
import { TopicRegistry } from '../../../src/server/topics/topic-registry.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** `Authorization: alice | bob | admin`; admin has no owner and sees every job; bob may not read `secret.*`. */
function authorize(request: PollkitRequest): PollkitCaller | undefined {
  const name = (request.headers as Record<string, string | undefined>)['authorization'];
  if (name === 'admin') return { id: 'admin' };
  if (name === 'bob') return { id: 'bob', owner: 'bob', canReadTopic: (topic) => !topic.startsWith('secret.') };
  return name === undefined ? undefined : { id: name, owner: name };
}

function setup(options: Omit<PollkitHandlerOptions, 'jobs' | 'topics' | 'clock'> = {}) {
  const clock = new ManualClock({ seed: 11 });
  const purgatory = new DelayedOperationPurgatory({ clock });
  let epochs = 0;
  const store = new MemoryTopicStore({ generateEpoch: () => `e${++epochs}` });
  const jobs = new JobRegistry({ clock, purgatory });
  const topics = new TopicRegistry({ clock, purgatory, store });
  const handler = new PollkitHandler({ clock, jobs, topics, authorize, maxWaitSeconds: 60, ...options });
  closers.push(async () => {
    await handler.close();
    await jobs.close();
    await topics.close();
  });
  return { clock, jobs, topics, handler };
}

function get(handler: PollkitHandler, url: string, headers: Record<string, string> = {}): Promise<PollkitResponse> {
  const request: PollkitRequest = { method: 'GET', url, headers, signal: new AbortController().signal };
  return handler.handle(request) as Promise<PollkitResponse>;
}

const flush = (clock: ManualClock): Promise<void> => clock.advanceAsync(0);

describe('shared answers: topics', () => {
  it('readers woken by one append share body and headers only at the same offset, limit and applied wait', async () => {
    const { clock, topics, handler } = setup({ waitJitter: 0 });
    const topic = topics.topic('news');
    await topic.append('a');
    const same = [
      get(handler, '/pollkit/topics/news/records?offset=1&wait=30'),
      get(handler, '/pollkit/topics/news/records?offset=1&wait=30'),
    ];
    const limited = get(handler, '/pollkit/topics/news/records?offset=1&limit=1&wait=30');
    const otherWait = get(handler, '/pollkit/topics/news/records?offset=1&wait=20');
    const behind = get(handler, '/pollkit/topics/news/records?offset=0&minRecords=3&wait=30');
    await flush(clock);
    await topic.append('b');
    await topic.append('c');
    const [first, second] = await Promise.all(same);
    expect(first).toBe(second);
    expect(JSON.parse(first!.body as string).records.map((r: { value: string }) => r.value)).toEqual(['b']);
    const limitedAnswer = await limited;
    expect(JSON.parse(limitedAnswer.body as string).records.map((r: { value: string }) => r.value)).toEqual(['b']);
    // Same records as the first two, so the same body; another applied wait, so other headers.
    const otherWaitAnswer = await otherWait;
    expect(otherWaitAnswer.body).toBe(first!.body);
    expect(otherWaitAnswer.headers).not.toBe(first!.headers);
    expect(otherWaitAnswer.headers['preference-applied']).toBe('wait=20');
    expect(first!.headers['preference-applied']).toBe('wait=30');
    const behindAnswer = await behind;
    expect(JSON.parse(behindAnswer.body as string).records.map((r: { value: string }) => r.value)).toEqual([
      'a',
      'b',
      'c',
    ]);
  });

  it('a reader of an old epoch woken with readers of the new one gets 410, they get records', async () => {
    const { clock, topics, handler } = setup();
    const topic = topics.topic('news');
    await topic.append('a');
    const stale = get(handler, '/pollkit/topics/news/records?offset=1&epoch=e1&wait=30');
    await flush(clock);
    await topic.reset();
    const fresh = get(handler, '/pollkit/topics/news/records?offset=0&epoch=e2&wait=30');
    await flush(clock);
    await topic.append('b');
    expect((await stale).status).toBe(410);
    const answer = await fresh;
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body as string)).toMatchObject({ epoch: 'e2', nextOffset: 1 });
  });

  it('a caller who may not read a topic is never held with those who may', async () => {
    const { clock, topics, handler } = setup();
    const topic = topics.topic('secret.plans');
    const alice = get(handler, '/pollkit/topics/secret.plans/records?offset=0&wait=30', { authorization: 'alice' });
    const bob = await get(handler, '/pollkit/topics/secret.plans/records?offset=0&wait=30', { authorization: 'bob' });
    expect(bob.status).toBe(404);
    await flush(clock);
    expect(handler.heldRequests).toBe(1);
    await topic.append('plan');
    expect((await alice).status).toBe(200);
  });
});

describe('shared answers: jobs', () => {
  it('waiters on one version share its body, never across owners, conditions or applied waits', async () => {
    const { clock, jobs, handler } = setup();
    const job = await jobs.create('render', {}, { owner: 'alice' });
    const url = `/pollkit/jobs/${job.id}`;
    const owner = get(handler, `${url}?version=${job.version}&wait=30`, { authorization: 'alice' });
    const admin = get(handler, `${url}?version=${job.version}&wait=30`, { authorization: 'admin' });
    const conditional = get(handler, `${url}?wait=30`, { authorization: 'alice', 'if-none-match': `"${job.version}"` });
    const other = await get(handler, `${url}?version=${job.version}&wait=30`, { authorization: 'bob' });
    expect(other.status).toBe(404);
    await flush(clock);
    expect(handler.heldRequests).toBe(3);
    await jobs.start(job.id);
    const [a, b, c] = await Promise.all([owner, admin, conditional]);
    for (const answer of [a, b, c]) {
      expect(answer!.status).toBe(200);
      expect(JSON.parse(answer!.body as string)).toMatchObject({ id: job.id, status: 'running' });
    }
    // Jitter gives each held poll its own applied wait: one body, headers of their own.
    expect(b!.body).toBe(a!.body);
    expect(c!.body).toBe(a!.body);
    const applied = new Set([a, b, c].map((answer) => answer!.headers['preference-applied']));
    expect(applied.size).toBe(3);
    // The caller of another owner, asking again now, still gets nothing.
    expect((await get(handler, url, { authorization: 'bob' })).status).toBe(404);
  });

  it('at a timeout a conditional poll gets 304 and a versioned one 200, from the same version', async () => {
    const { clock, jobs, handler } = setup({ waitJitter: 0 });
    const job = await jobs.create('render', {});
    const url = `/pollkit/jobs/${job.id}`;
    const conditional = get(handler, `${url}?wait=5`, { 'if-none-match': `"${job.version}"` });
    const versioned = get(handler, `${url}?version=${job.version}&wait=5`);
    await flush(clock);
    await clock.advanceAsync(5000);
    const [notModified, full] = await Promise.all([conditional, versioned]);
    expect(notModified!.status).toBe(304);
    expect(notModified!.body).toBeNull();
    expect(full!.status).toBe(200);
    expect(JSON.parse(full!.body as string)).toMatchObject({ id: job.id, version: job.version });
    expect(full!.headers['etag']).toBe(notModified!.headers['etag']);
  });

  it('a job forgotten under held waiters answers them 404, not the last version they shared', async () => {
    const { clock, jobs, handler } = setup();
    const job = await jobs.create('render', {});
    await jobs.cancel(job.id);
    const done = (await jobs.get(job.id))!;
    const url = `/pollkit/jobs/${job.id}?version=${done.version}&wait=30`;
    const before = await get(handler, `/pollkit/jobs/${job.id}`);
    expect(before.status).toBe(200);
    const held = [get(handler, url), get(handler, url)];
    await flush(clock);
    expect(handler.heldRequests).toBe(2);
    await jobs.forget(job.id);
    for (const answer of await Promise.all(held)) expect(answer!.status).toBe(404);
  });
});

describe('answers of held polls, wherever they come from', () => {
  it('carry the CORS headers, and a held HEAD is answered without a body', async () => {
    const { clock, topics, handler } = setup({ cors: { origins: ['https://app.example'] } });
    const topic = topics.topic('news');
    const origin = { origin: 'https://app.example' };
    const held = get(handler, '/pollkit/topics/news/records?offset=0&wait=30', origin);
    const head = handler.handle({
      method: 'HEAD',
      url: '/pollkit/topics/news/records?offset=0&wait=30',
      headers: origin,
      signal: new AbortController().signal,
    });
    await flush(clock);
    expect(handler.heldRequests).toBe(2);
    await topic.append('x');
    const [answer, headAnswer] = await Promise.all([held, head]);
    expect(answer.status).toBe(200);
    expect(answer.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(headAnswer!.status).toBe(200);
    expect(headAnswer!.body).toBeNull();
    expect(headAnswer!.headers['access-control-allow-origin']).toBe('https://app.example');
  });
});

describe('answers from the latest records', () => {
  it('are given only while retention by age keeps those records', async () => {
    const clock = new ManualClock({ seed: 5 });
    const purgatory = new DelayedOperationPurgatory({ clock });
    const topics = new TopicRegistry({ clock, purgatory, retention: { maxAgeMs: 60_000 } });
    const topic = topics.topic('t');
    // A reader keeps the topic's hint alive while the others come and go.
    const keeper = topic.read(0, { waitMs: 600_000, minRecords: 1000 });
    await clock.advanceAsync(0);
    await topic.append('old');
    expect((await topic.read(0)).records.map((r) => r.value)).toEqual(['old']);
    await clock.advanceAsync(61_000);
    // The record aged out: the hint still holds it, but must not give it.
    await expect(topic.read(0)).rejects.toMatchObject({ code: 'offset-gone' });
    await topics.close();
    await keeper.catch(() => undefined);
  });
});
