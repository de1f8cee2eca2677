import { describe, expect, it } from 'vitest';
import { consumeTopic, longPollJob, parseResourceUrl, pollJob } from '../../src/client/protocol-pollers.js';
import { ManualClock } from '../../src/core/clock.js';
import {
  InvalidArgumentError,
  JobCanceledError,
  JobFailedError,
  OffsetGoneError,
  ProtocolError,
} from '../../src/core/errors.js';
import type { JobSnapshot, JobStatus } from '../../src/core/protocol.js';
import { fakeFetch, held, job, json, problemResponse, type SeenRequest } from './fake-fetch.js';

const JOB_URL = 'https://api.test/pollkit/jobs/job-1';

/** A job whose version rises on a timeline, served per PROTOCOL.md (conditional GETs and long polls). */
function jobServer(
  clock: ManualClock,
  timeline: readonly (readonly [at: number, patch: Partial<JobSnapshot>])[],
  retryAfter = '1',
) {
  const current = (): JobSnapshot => {
    let snapshot = job({ version: 1, status: 'queued' });
    let version = 1;
    for (const [at, patch] of timeline) {
      if (at > clock.now()) break;
      version++;
      snapshot = job({ ...snapshot, ...patch, version });
    }
    return snapshot;
  };
  const answer = (snapshot: JobSnapshot): Response =>
    json(200, snapshot, { etag: `"${snapshot.version}"`, ...(snapshot.done ? {} : { 'retry-after': retryAfter }) });
  return fakeFetch((request: SeenRequest) => {
    const known = request.headers.get('if-none-match');
    const wait = /wait=(\d+(?:\.\d+)?)/.exec(request.headers.get('prefer') ?? '');
    const snapshot = current();
    if (known === null || known !== `"${snapshot.version}"`) return answer(snapshot);
    if (wait === null) return new Response(null, { status: 304, headers: { etag: known, 'retry-after': retryAfter } });
    // Held: answer at the next change on the timeline or when the wait ends.
    const deadline = clock.now() + Number(wait[1]) * 1000;
    const next = timeline.find(([at]) => at > clock.now())?.[0] ?? Number.POSITIVE_INFINITY;
    return new Promise<Response>((resolve, reject) => {
      const timer = clock.setTimeout(
        () => {
          const later = current();
          resolve(later.version === snapshot.version ? new Response(null, { status: 304 }) : answer(later));
        },
        Math.min(deadline, next) - clock.now(),
      );
      request.signal?.addEventListener('abort', () => {
        clock.clearTimeout(timer);
        reject(request.signal?.reason);
      });
    });
  });
}

describe('parseResourceUrl', () => {
  it('splits job and topic URLs into origin, prefix and name', () => {
    expect(parseResourceUrl('https://h.test/api/pollkit/jobs/a%20b', 'jobs')).toEqual({
      baseUrl: 'https://h.test',
      prefix: '/api/pollkit',
      name: 'a b',
    });
    expect(parseResourceUrl(new URL('https://h.test/topics/orders/'), 'topics')).toEqual({
      baseUrl: 'https://h.test',
      prefix: '',
      name: 'orders',
    });
  });

  it('rejects URLs that are not a job or topic', () => {
    expect(() => parseResourceUrl('https://h.test/pollkit/topics/orders', 'jobs')).toThrow(InvalidArgumentError);
    expect(() => parseResourceUrl('https://h.test/pollkit/jobs/a/events', 'jobs')).toThrow(InvalidArgumentError);
    expect(() => parseResourceUrl('jobs/a', 'jobs')).toThrow(InvalidArgumentError);
  });
});

describe('pollJob', () => {
  it('short-polls with conditional GETs, honours Retry-After and resolves with the succeeded job', async () => {
    const clock = new ManualClock();
    const fetch = jobServer(clock, [
      [2500, { status: 'running', progress: { percent: 10 } }],
      [6000, { status: 'running', progress: { percent: 60 } }],
      [9000, { status: 'succeeded', result: { url: 'done.mp4' } }],
    ]);
    const poller = pollJob(JOB_URL, { fetch, clock, interval: 1000, jitter: 0 });
    const progress: unknown[] = [];
    const statuses: JobStatus[] = [];
    poller.on('progress', (p) => progress.push(p));
    poller.on('update', (snapshot) => statuses.push(snapshot.status));
    const delays: number[] = [];
    poller.on('schedule', (info) => delays.push(info.delayMs));
    const result = poller.result();
    await clock.advanceAsync(20_000);
    const final = await result;
    expect(final.status).toBe('succeeded');
    expect(final.result).toEqual({ url: 'done.mp4' });
    expect(statuses).toEqual(['queued', 'running', 'running', 'succeeded']);
    expect(progress).toEqual([{ percent: 10 }, { percent: 60 }]);
    const conditional = fetch.requests.filter((r) => r.headers.get('if-none-match') !== null);
    expect(conditional.length).toBe(fetch.requests.length - 1);
    // Retry-After: 1 is a floor with up to 20 % jitter above it, over a 1000 ms interval.
    expect(delays.length).toBe(fetch.requests.length - 1);
    for (const delay of delays) {
      expect(delay).toBeGreaterThanOrEqual(1000);
      expect(delay).toBeLessThanOrEqual(1200);
    }
  });

  it('spaces polls by the Retry-After floor in seconds', async () => {
    const clock = new ManualClock();
    const fetch = jobServer(clock, [[30_000, { status: 'succeeded' }]], '5');
    const poller = pollJob(JOB_URL, { fetch, clock, interval: 1000, jitter: 0 });
    const delays: [string, number][] = [];
    poller.on('schedule', (info) => delays.push([info.reason, info.delayMs]));
    poller.start();
    await clock.advanceAsync(20_000);
    poller.stop();
    expect(delays.length).toBeGreaterThan(1);
    for (const [reason, delay] of delays) {
      expect(reason).toBe('hint');
      expect(delay).toBeGreaterThanOrEqual(5000);
      expect(delay).toBeLessThanOrEqual(6000);
    }
  });

  it('spaces polls by a Retry-After HTTP-date', async () => {
    const clock = new ManualClock({ wallStart: Date.UTC(2026, 0, 1) });
    const at = new Date(Date.UTC(2026, 0, 1, 0, 0, 8)).toUTCString();
    const fetch = fakeFetch(() => json(200, job(), { 'retry-after': at }));
    const poller = pollJob(JOB_URL, { fetch, clock, interval: 1000, jitter: 0 });
    const first = poller.waitFor('schedule');
    poller.start();
    await clock.advanceAsync(0);
    const info = await first;
    expect(info.reason).toBe('hint');
    expect(info.delayMs).toBeGreaterThanOrEqual(8000);
    expect(info.delayMs).toBeLessThanOrEqual(9600);
    poller.stop();
  });

  it('rejects with JobFailedError or JobCanceledError, or resolves with them when asked', async () => {
    const clock = new ManualClock();
    const failedProblem = { type: 'urn:x', title: 'Boom', status: 500, code: 'boom', detail: 'it broke' };
    const failed = fakeFetch(() => json(200, job({ status: 'failed', error: failedProblem })));
    const failure = pollJob(JOB_URL, { fetch: failed, clock }).result();
    await clock.advanceAsync(0);
    const error = await failure.catch((e: unknown) => e);
    expect(JobFailedError.is(error)).toBe(true);
    expect((error as JobFailedError).problem.code).toBe('boom');

    const canceled = fakeFetch(() => json(200, job({ status: 'canceled' })));
    const cancellation = pollJob(JOB_URL, { fetch: canceled, clock }).result();
    await clock.advanceAsync(0);
    await expect(cancellation).rejects.toSatisfy(JobCanceledError.is);

    const lenient = pollJob(JOB_URL, { fetch: failed, clock, rejectOnFailure: false }).result();
    await clock.advanceAsync(0);
    expect((await lenient).status).toBe('failed');
  });

  it('ends on 404 and retries 503 with its Retry-After', async () => {
    const clock = new ManualClock();
    const answers = [
      () => problemResponse(503, 'overloaded', {}, { 'retry-after': '3' }),
      () => problemResponse(404, 'job-not-found'),
    ];
    const fetch = fakeFetch(() => answers.shift()!());
    const poller = pollJob(JOB_URL, { fetch, clock });
    const retries: [string, number][] = [];
    poller.on('error', (_error, info) => retries.push([info.reason, info.delayMs]));
    const result = poller.result();
    await clock.advanceAsync(10_000);
    await expect(result).rejects.toMatchObject({ status: 404, code: 'job-not-found' });
    expect(retries).toHaveLength(1);
    expect(retries[0]?.[0]).toBe('retry-after');
    expect(retries[0]?.[1]).toBeGreaterThanOrEqual(3000);
  });
});

describe('longPollJob', () => {
  it('long-polls with If-None-Match and Prefer: wait, delivering each change at once', async () => {
    const clock = new ManualClock();
    const fetch = jobServer(clock, [
      [40_000, { status: 'running' }],
      [41_000, { status: 'succeeded', result: 42 }],
    ]);
    const poller = longPollJob(JOB_URL, { fetch, clock, waitMs: 25_000 });
    const arrivals: [number, JobStatus][] = [];
    poller.on('data', ([snapshot]) => arrivals.push([clock.now(), snapshot!.status]));
    const result = poller.result();
    await clock.advanceAsync(60_000);
    expect((await result)?.result).toBe(42);
    expect(arrivals).toEqual([
      [0, 'queued'],
      [40_000, 'running'],
      [41_000, 'succeeded'],
    ]);
    const waits = fetch.requests.slice(1);
    expect(waits.every((r) => r.headers.get('prefer') === 'wait=25')).toBe(true);
    expect(waits.map((r) => r.headers.get('if-none-match'))).toEqual(['"1"', '"1"', '"2"']);
    // First GET, one wait that timed out at 25 s (304), one that ended at the change at 40 s, one at 41 s.
    expect(fetch.requests).toHaveLength(4);
  });

  it('rejects with JobFailedError when the job fails', async () => {
    const clock = new ManualClock();
    const fetch = fakeFetch(() =>
      json(200, job({ status: 'failed', error: { type: 'x', title: 'x', status: 500, code: 'x' } })),
    );
    const result = longPollJob(JOB_URL, { fetch, clock }).result();
    await clock.advanceAsync(0);
    await expect(result).rejects.toSatisfy(JobFailedError.is);
  });

  it('uses the CORS-simple form when asked', async () => {
    const clock = new ManualClock();
    const fetch = fakeFetch((request) =>
      request.url.searchParams.has('wait')
        ? json(200, job({ version: 2, status: 'succeeded' }))
        : json(200, job({ version: 1 })),
    );
    const result = longPollJob(JOB_URL, { fetch, clock, simpleRequests: true, waitMs: 20_000 }).result();
    await clock.advanceAsync(0);
    expect((await result)?.version).toBe(2);
    expect(fetch.requests[1]?.url.search).toBe('?version=1&wait=20');
  });
});

describe('consumeTopic', () => {
  const TOPIC_URL = 'https://api.test/pollkit/topics/orders';
  const record = (offset: number) => ({ offset, timestamp: '2026-01-01T00:00:00.000Z', key: null, value: offset });

  it('probes the offset at once, then long-polls nextOffset and the epoch from a server without cursors', async () => {
    const clock = new ManualClock();
    const fetch = fakeFetch((request) => {
      const offset = Number(request.url.searchParams.get('offset'));
      if (offset >= 4) return held(request.signal);
      return json(200, {
        topic: 'orders',
        epoch: 'e1',
        records: [record(offset), record(offset + 1)],
        nextOffset: offset + 2,
        highWatermark: 4,
        earliestOffset: 0,
      });
    });
    const consumer = consumeTopic<number>(TOPIC_URL, { offset: 0, fetch, clock, waitMs: 20_000, limit: 2 });
    const seen: number[] = [];
    const reading = (async () => {
      for await (const r of consumer) {
        seen.push(r.value);
        if (r.offset === 3) break;
      }
    })();
    await clock.advanceAsync(0);
    await reading;
    expect(seen).toEqual([0, 1, 2, 3]);
    const params = fetch.requests.map((r) => Object.fromEntries(r.url.searchParams));
    // The first read asks for a range without waiting; the answer has no cursor, so reads are held as before.
    expect(params[0]).toEqual({ offset: '0', limit: '2' });
    expect(params[1]).toEqual({ offset: '2', wait: '20', limit: '2', epoch: 'e1' });
  });

  it('reads ranges while behind and long-polls the head with the cursor the server hands out', async () => {
    const clock = new ManualClock();
    let highWatermark = 5;
    const fetch = fakeFetch((request) => {
      const query = request.url.searchParams;
      const offset = Number(query.get('offset'));
      const cursor = query.get('cursor');
      // The head is reached at 5: an empty live answer, then a record arrives.
      if (cursor === '1') highWatermark = 6;
      const count = Math.max(0, Math.min(2, highWatermark - offset));
      const records = Array.from({ length: count }, (_, i) => record(offset + i));
      const next = count > 0 || cursor === null ? '0' : String(Number(cursor) + 1);
      const body = {
        topic: 'orders',
        epoch: 'e1',
        records,
        nextOffset: offset + count,
        highWatermark,
        earliestOffset: 0,
      };
      return json(200, { ...body, cursor: next });
    });
    const consumer = consumeTopic<number>(TOPIC_URL, { offset: 0, fetch, clock, waitMs: 20_000, limit: 2 });
    const seen: number[] = [];
    const reading = (async () => {
      for await (const r of consumer) {
        seen.push(r.value);
        if (r.offset === 5) break;
      }
    })();
    for (let i = 0; i < 5; i++) await clock.advanceAsync(500);
    await reading;
    expect(seen).toEqual([0, 1, 2, 3, 4, 5]);
    const params = fetch.requests.map((r) => Object.fromEntries(r.url.searchParams));
    expect(params.slice(0, 5)).toEqual([
      { offset: '0', limit: '2' },
      { offset: '2', limit: '2', epoch: 'e1' },
      { offset: '4', limit: '2', epoch: 'e1' },
      // 4 came with highWatermark 5: the head, so a long poll with the cursor handed out, and after
      // its empty answer the next cursor.
      { offset: '5', limit: '2', wait: '20', epoch: 'e1', cursor: '0' },
      { offset: '5', limit: '2', wait: '20', epoch: 'e1', cursor: '1' },
    ]);
  });

  it('rejects a cached answer that does not match its request, and retries', async () => {
    const clock = new ManualClock();
    // A cache that ignores the query: every request gets the answer for offset 0.
    const fetch = fakeFetch(() =>
      json(200, {
        topic: 'orders',
        epoch: 'e1',
        records: [record(0)],
        nextOffset: 1,
        highWatermark: 1,
        earliestOffset: 0,
        cursor: '0',
      }),
    );
    const consumer = consumeTopic<number>(TOPIC_URL, { offset: 0, fetch, clock, maxRetries: 1, budget: false });
    const errors: unknown[] = [];
    consumer.on('error', (error) => errors.push(error));
    const result = consumer.result().catch((error: unknown) => error);
    for (let i = 0; i < 20; i++) await clock.advanceAsync(1000);
    const failure = await result;
    expect(errors[0]).toBeInstanceOf(ProtocolError);
    expect((errors[0] as ProtocolError).message).toContain('cached answer for another request (offset 0)');
    expect(failure).toMatchObject({ code: 'retries-exhausted' });
  });

  it('surfaces 410 as a gone event and an OffsetGoneError with the new earliest offset', async () => {
    const clock = new ManualClock();
    const fetch = fakeFetch(() => problemResponse(410, 'offset-gone', { earliestOffset: 50, epoch: 'e2' }));
    const consumer = consumeTopic(TOPIC_URL, { offset: 3, epoch: 'e1', fetch, clock });
    const gone = consumer.waitFor('gone');
    const result = consumer.result();
    await clock.advanceAsync(0);
    expect((await gone).earliestOffset).toBe(50);
    const error = await result.catch((e: unknown) => e);
    expect(OffsetGoneError.is(error)).toBe(true);
    expect(error).toMatchObject({ earliestOffset: 50, epoch: 'e2', offset: 3 });
    expect(fetch.requests[0]?.url.searchParams.get('epoch')).toBe('e1');
  });

  it('resumes from the new start when onGone says so', async () => {
    const clock = new ManualClock();
    const fetch = fakeFetch((request) => {
      const offset = Number(request.url.searchParams.get('offset'));
      if (offset < 50) return problemResponse(410, 'offset-gone', { earliestOffset: 50, epoch: 'e2' });
      if (offset > 50) return held(request.signal);
      return json(200, {
        topic: 'orders',
        epoch: 'e2',
        records: [record(50)],
        nextOffset: 51,
        highWatermark: 51,
        earliestOffset: 50,
      });
    });
    const consumer = consumeTopic<number>(TOPIC_URL, {
      offset: 3,
      fetch,
      clock,
      onGone: (error) => ({ offset: error.earliestOffset, epoch: error.epoch }),
    });
    const data = consumer.waitFor('data');
    consumer.start();
    await clock.advanceAsync(0);
    expect((await data).map((r) => r.offset)).toEqual([50]);
    expect(fetch.requests[1]?.url.searchParams.get('epoch')).toBe('e2');
    consumer.stop();
  });

  it('validates the offset', () => {
    // @ts-expect-error offset is required
    expect(() => consumeTopic(TOPIC_URL, {})).toThrow(InvalidArgumentError);
    expect(() => consumeTopic(TOPIC_URL, { offset: -1 })).toThrow(InvalidArgumentError);
  });
});
