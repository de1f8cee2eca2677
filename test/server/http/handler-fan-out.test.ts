import { createServer } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createNodeListener } from '../../../src/adapters/node.js';
import { ManualClock } from '../../../src/core/clock.js';
import type { Abortable, Exchange } from '../../../src/server/http/exchange.js';
import { PollkitHandler } from '../../../src/server/http/handler.js';
import type { PollkitRequest, PollkitResponse } from '../../../src/server/http/types.js';
import { DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';
import { TopicRegistry } from '../../../src/server/topics/topic-registry.js';
import { listen } from '../../helpers/http-server.js';

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

/** A held read whose answer costs the adapter `costMs` of CPU, as writing it to a socket would. */
class SlowExchange implements Exchange {
  readonly request: PollkitRequest;
  readonly hangUpSignal = undefined;
  readonly gone = false;
  held: Abortable | undefined;
  readonly #costMs: number;
  readonly #answered: number[];

  constructor(url: string, costMs: number, answered: number[]) {
    this.request = { method: 'GET', url, headers: {}, signal: new AbortController().signal };
    this.#costMs = costMs;
    this.#answered = answered;
  }

  respond(): void {
    const until = performance.now() + this.#costMs;
    while (performance.now() < until);
    this.#answered.push(performance.now());
  }
}

describe('a large wake-up', () => {
  it('yields to the event loop: timers and new connections are served while 10,000 readers are answered', async () => {
    // Real time: 10,000 answers of 0.1 ms each keep the wake busy for about a second, ten of the
    // purgatory's 100 ms slices.
    const purgatory = new DelayedOperationPurgatory();
    const topics = new TopicRegistry({ purgatory });
    topics.topic('fan');
    topics.topic('other');
    const handler = new PollkitHandler({ topics, waitJitter: 0, maxHeldRequests: 20_000, maxHeldPerCaller: 20_000 });
    const server = await listen(createServer(createNodeListener(handler)));
    closers.push(async () => {
      await server.close();
      await handler.close();
      await topics.close();
    });
    const answered: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      handler._serve(new SlowExchange('/pollkit/topics/fan/records?offset=0&wait=30', 0.1, answered));
    }
    await nextTurn();
    expect(handler.heldRequests).toBe(10_000);
    const wake = topics.topic('fan').append('news');
    let timerAt = Number.POSITIVE_INFINITY;
    setTimeout(() => (timerAt = performance.now()), 0);
    // A connection opened after the wake-up began, answered from another topic.
    const served = fetch(`${server.url}/pollkit/topics/other/records?offset=0`).then(async (response) => {
      expect(response.status).toBe(200);
      await response.text();
      return performance.now();
    });
    await wake;
    const servedAt = await served;
    while (answered.length < 10_000) await nextTurn();
    const last = answered.at(-1)!;
    expect(timerAt).toBeLessThan(last);
    expect(servedAt).toBeLessThan(last);
    expect(handler.heldRequests).toBe(0);
  }, 30_000);
});
