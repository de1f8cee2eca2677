import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { PollkitHandler } from '../../../src/server/http/handler.js';
import type { PollkitRequest, PollkitResponse } from '../../../src/server/http/types.js';
import { DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';
import { TopicRegistry } from '../../../src/server/topics/topic-registry.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const close of closers.splice(0).reverse()) await close();
});

function setup(resumeBatchSize: number) {
  const clock = new ManualClock({ seed: 3 });
  const purgatory = new DelayedOperationPurgatory({ clock, resumeBatchSize });
  const topics = new TopicRegistry({ clock, purgatory });
  topics.topic('fan');
  const handler = new PollkitHandler({
    clock,
    topics,
    waitJitter: 0,
    maxHeldRequests: 10_000,
    maxHeldPerCaller: 10_000,
  });
  closers.push(async () => {
    await handler.close();
    await topics.close();
  });
  return { topics, handler, purgatory };
}

function heldRead(handler: PollkitHandler, url: string): Promise<PollkitResponse | null> {
  const request: PollkitRequest = { method: 'GET', url, headers: {}, signal: new AbortController().signal };
  return handler.handle(request);
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function holdAll(handler: PollkitHandler, count: number, url: string) {
  const answered: PollkitResponse[] = [];
  const pending = Array.from({ length: count }, () =>
    heldRead(handler, url).then((response) => {
      answered.push(response!);
    }),
  );
  // Each read reaches the purgatory within a few microtask turns.
  await nextTurn();
  expect(handler.heldRequests).toBe(count);
  return { answered, pending };
}

describe('one append answering many held reads', () => {
  it('serializes the shared answer once and gives every reader the same body', async () => {
    const { topics, handler } = setup(100);
    const { answered, pending } = await holdAll(handler, 600, '/pollkit/topics/fan/records?offset=0&wait=30');
    const stringify = vi.spyOn(JSON, 'stringify');
    await topics.topic('fan').append({ n: 1 });
    await Promise.all(pending);
    const fetchResults = stringify.mock.calls.filter(([value]) => (value as { topic?: unknown }).topic === 'fan');
    expect(fetchResults).toHaveLength(1);
    expect(answered).toHaveLength(600);
    const bodies = new Set(answered.map((response) => response.body));
    expect(bodies.size).toBe(1);
    const body = JSON.parse([...bodies][0] as string) as { records: { value: unknown }[]; nextOffset: number };
    expect(body.records.map((record) => record.value)).toEqual([{ n: 1 }]);
    expect(body.nextOffset).toBe(1);
    for (const response of answered) {
      expect(response.status).toBe(200);
      expect(response.headers['preference-applied']).toBe('wait=30');
    }
  });

  it('answers the first batch before the later reads resume, and every read within the same drain', async () => {
    const { topics, handler, purgatory } = setup(50);
    const log: string[] = [];
    // Records when the purgatory resumes each held read, ahead of the read's own continuation.
    const resume = purgatory._resume.bind(purgatory);
    vi.spyOn(purgatory, '_resume').mockImplementation((woken) =>
      resume({
        resume: () => {
          log.push('woken');
          woken.resume();
        },
      }),
    );
    const { answered, pending } = await holdAll(handler, 230, '/pollkit/topics/fan/records?offset=0&wait=30');
    const done = Promise.all(pending.map((answer) => answer.then(() => void log.push('answer'))));
    await topics.topic('fan').append({ n: 1 });
    await nextTurn();
    // All 230 answers exist one event-loop turn after the append (the manual clock never reaches
    // the default 100 ms slice) …
    expect(answered).toHaveLength(230);
    await done;
    // … yet the first batch of 50 was answered before any later read resumed.
    expect(log.indexOf('answer')).toBeLessThanOrEqual(50);
    expect(log.slice(0, log.indexOf('answer')).every((entry) => entry === 'woken')).toBe(true);
    expect(log.filter((entry) => entry === 'woken')).toHaveLength(230);
    // Answers and wake-ups interleave batch by batch rather than all wake-ups first.
    expect(log.lastIndexOf('woken')).toBeGreaterThan(log.indexOf('answer'));
    expect(handler.heldRequests).toBe(0);
  });

  it('does not share bodies between readers at different offsets', async () => {
    const { topics, handler } = setup(256);
    const topic = topics.topic('fan');
    await topic.append('a');
    const atZero = heldRead(handler, '/pollkit/topics/fan/records?offset=0&minRecords=2&wait=30');
    const atOne = heldRead(handler, '/pollkit/topics/fan/records?offset=1&wait=30');
    await nextTurn();
    await topic.append('b');
    const [zero, one] = await Promise.all([atZero, atOne]);
    expect(JSON.parse(zero!.body as string).records).toHaveLength(2);
    expect(JSON.parse(one!.body as string).records.map((r: { value: unknown }) => r.value)).toEqual(['b']);
  });
});
