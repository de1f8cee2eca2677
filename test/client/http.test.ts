import { afterEach, describe, expect, it, vi } from 'vitest';
import { JobClient, TopicClient } from '../../src/client/http.js';
import { ManualClock } from '../../src/core/clock.js';
import {
  HttpError,
  InvalidArgumentError,
  OffsetGoneError,
  OffsetOutOfRangeError,
  PollkitError,
  ProtocolError,
} from '../../src/core/errors.js';
import { fakeFetch, held, job, json, problemResponse } from './fake-fetch.js';

const BASE = 'https://api.test';

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('JobClient', () => {
  it('submits with the body, the idempotency key and JSON headers, and reads 202 + Operation-Location + Retry-After', async () => {
    const fetch = fakeFetch(() =>
      json(202, job({ id: 'abc', status: 'queued' }), {
        'operation-location': '/pollkit/jobs/abc',
        location: '/elsewhere',
        'retry-after': '2',
        etag: '"1"',
      }),
    );
    const client = new JobClient({ baseUrl: BASE, fetch });
    const answer = await client.submit('video.transcode', { url: 'x' }, { idempotencyKey: 'k-1' });
    expect(answer.job.id).toBe('abc');
    expect(answer.location).toBe('https://api.test/pollkit/jobs/abc');
    expect(answer.retryAfterMs).toBe(2000);
    expect(answer.meta.version).toBe(1);
    const [request] = fetch.requests;
    expect(request?.method).toBe('POST');
    expect(request?.url.pathname).toBe('/pollkit/jobs');
    expect(request?.body).toEqual({ type: 'video.transcode', input: { url: 'x' } });
    expect(request?.headers.get('idempotency-key')).toBe('k-1');
    expect(request?.headers.get('content-type')).toBe('application/json');
    expect(request?.headers.get('accept')).toContain('application/problem+json');
  });

  it('falls back to Location, then to the job URL, for the location', async () => {
    const withLocation = fakeFetch(() => json(202, job({ id: 'a' }), { location: 'https://other.test/x/jobs/a' }));
    expect((await new JobClient({ baseUrl: BASE, fetch: withLocation }).submit('t', 1)).location).toBe(
      'https://other.test/x/jobs/a',
    );
    const bare = fakeFetch(() => json(202, job({ id: 'a b' })));
    expect((await new JobClient({ baseUrl: BASE, fetch: bare }).submit('t', 1)).location).toBe(
      'https://api.test/pollkit/jobs/a%20b',
    );
  });

  it('turns a problem body into an HttpError with the problem code, not retryable for 400', async () => {
    const fetch = fakeFetch(() => problemResponse(400, 'unknown-job-type'));
    const error = await new JobClient({ baseUrl: BASE, fetch }).submit('nope', {}).catch((e: unknown) => e);
    expect(HttpError.is(error)).toBe(true);
    const httpError = error as HttpError;
    expect(httpError.status).toBe(400);
    expect(httpError.code).toBe('unknown-job-type');
    expect(httpError.problem?.detail).toBe('unknown-job-type!');
    expect(httpError.retryable).toBe(false);
  });

  it('reads a job, with the version from the ETag', async () => {
    const fetch = fakeFetch(() => json(200, job({ version: 7 }), { etag: '"7"', 'retry-after': '3' }));
    const answer = await new JobClient({ baseUrl: BASE, fetch }).get('job-1');
    expect(answer.changed).toBe(true);
    expect(answer.job?.version).toBe(7);
    expect(answer.meta.version).toBe(7);
    expect(answer.meta.hintMs).toBe(3000);
    expect(fetch.requests[0]?.headers.get('if-none-match')).toBeNull();
  });

  it('sends If-None-Match and maps 304 to "not changed"', async () => {
    const fetch = fakeFetch(
      () => new Response(null, { status: 304, headers: { etag: '"7"', 'x-poll-interval': '5' } }),
    );
    const answer = await new JobClient({ baseUrl: BASE, fetch }).get('job-1', { ifNoneMatch: 7 });
    expect(answer).toMatchObject({ changed: false, job: undefined });
    expect(answer.meta.pollIntervalMs).toBe(5000);
    expect(answer.meta.hintMs).toBe(5000);
    expect(fetch.requests[0]?.headers.get('if-none-match')).toBe('"7"');
  });

  it('long-polls with If-None-Match and Prefer: wait, 304 at timeout is "not changed"', async () => {
    const fetch = fakeFetch(() => new Response(null, { status: 304, headers: { 'preference-applied': 'wait=25' } }));
    const answer = await new JobClient({ baseUrl: BASE, fetch }).wait('job-1', { version: 3, waitSeconds: 25 });
    expect(answer.changed).toBe(false);
    expect(answer.meta.appliedWaitSeconds).toBe(25);
    const headers = fetch.requests[0]?.headers;
    expect(headers?.get('if-none-match')).toBe('"3"');
    expect(headers?.get('prefer')).toBe('wait=25');
  });

  it('long-polls and returns the changed job', async () => {
    const fetch = fakeFetch(() => json(200, job({ version: 4 }), { etag: '"4"' }));
    const answer = await new JobClient({ baseUrl: BASE, fetch }).wait('job-1', { version: 3, waitSeconds: 25 });
    expect(answer.changed && answer.job.version).toBe(4);
  });

  it('uses the CORS-simple query form when asked, where the same version at timeout means unchanged', async () => {
    const fetch = fakeFetch((request) => json(200, job({ version: Number(request.url.searchParams.get('version')) })));
    const client = new JobClient({ baseUrl: BASE, fetch, simpleRequests: true });
    const answer = await client.wait('job-1', { version: 3, waitSeconds: 2.5 });
    expect(answer.changed).toBe(false);
    const request = fetch.requests[0];
    expect(request?.url.search).toBe('?version=3&wait=2.5');
    expect(request?.headers.get('prefer')).toBeNull();
    expect(request?.headers.get('if-none-match')).toBeNull();
  });

  it('validates wait arguments', async () => {
    const client = new JobClient({ baseUrl: BASE, fetch: fakeFetch(() => json(200, job())) });
    await expect(client.wait('job-1', { version: 1, waitSeconds: 0 })).rejects.toSatisfy(InvalidArgumentError.is);
    await expect(client.wait('job-1', { version: -1, waitSeconds: 1 })).rejects.toSatisfy(InvalidArgumentError.is);
  });

  it('maps 404 to an HttpError with code job-not-found', async () => {
    const fetch = fakeFetch(() => problemResponse(404, 'job-not-found'));
    const error = await new JobClient({ baseUrl: BASE, fetch }).get('x').catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 404, code: 'job-not-found', retryable: false });
  });

  it('makes 429 and 503 retryable with Retry-After in seconds or as an HTTP-date', async () => {
    const clock = new ManualClock({ wallStart: Date.UTC(2026, 0, 1, 12, 0, 0) });
    const seconds = fakeFetch(() => problemResponse(429, 'too-many-held-requests', {}, { 'retry-after': '7' }));
    const error429 = (await new JobClient({ baseUrl: BASE, fetch: seconds, clock })
      .get('x')
      .catch((e: unknown) => e)) as HttpError;
    expect(error429).toMatchObject({
      status: 429,
      retryable: true,
      retryAfterMs: 7000,
      code: 'too-many-held-requests',
    });
    const date = fakeFetch(() =>
      problemResponse(
        503,
        'shutting-down',
        {},
        { 'retry-after': new Date(Date.UTC(2026, 0, 1, 12, 0, 30)).toUTCString() },
      ),
    );
    const error503 = (await new JobClient({ baseUrl: BASE, fetch: date, clock })
      .get('x')
      .catch((e: unknown) => e)) as HttpError;
    expect(error503).toMatchObject({ status: 503, retryable: true, retryAfterMs: 30_000 });
  });

  it('keeps a non-JSON error body (a proxy page) as a plain HttpError, retryable for 502', async () => {
    const fetch = fakeFetch(
      () => new Response('<html>bad gateway</html>', { status: 502, headers: { 'content-type': 'text/html' } }),
    );
    const error = (await new JobClient({ baseUrl: BASE, fetch }).get('x').catch((e: unknown) => e)) as HttpError;
    expect(HttpError.is(error)).toBe(true);
    expect(error).toMatchObject({ status: 502, code: 'http-502', retryable: true, problem: undefined });
  });

  it('treats 408 as retryable and 403 as not', async () => {
    const timeout = fakeFetch(() => new Response('', { status: 408 }));
    await expect(new JobClient({ baseUrl: BASE, fetch: timeout }).get('x')).rejects.toMatchObject({ retryable: true });
    const forbidden = fakeFetch(() => new Response('', { status: 403 }));
    await expect(new JobClient({ baseUrl: BASE, fetch: forbidden }).get('x')).rejects.toMatchObject({
      retryable: false,
    });
  });

  it('raises ProtocolError for unparsable bodies', async () => {
    const notJson = fakeFetch(
      () => new Response('{oops', { status: 200, headers: { 'content-type': 'application/json' } }),
    );
    await expect(new JobClient({ baseUrl: BASE, fetch: notJson }).get('x')).rejects.toSatisfy(ProtocolError.is);
    const notAJob = fakeFetch(() => json(200, { id: 'x' }));
    await expect(new JobClient({ baseUrl: BASE, fetch: notAJob }).get('x')).rejects.toSatisfy(ProtocolError.is);
    const badProblem = fakeFetch(
      () => new Response('{nope', { status: 503, headers: { 'content-type': 'application/problem+json' } }),
    );
    const error = await new JobClient({ baseUrl: BASE, fetch: badProblem }).get('x').catch((e: unknown) => e);
    expect(ProtocolError.is(error)).toBe(true);
    expect((error as ProtocolError).retryable).toBe(true);
    const problemWithoutCode = fakeFetch(() => json(400, { title: 'x' }));
    const error2 = await new JobClient({ baseUrl: BASE, fetch: problemWithoutCode }).get('x').catch((e: unknown) => e);
    expect(ProtocolError.is(error2)).toBe(true);
    expect((error2 as ProtocolError).retryable).toBe(false);
  });

  it('keeps network failures retryable', async () => {
    const fetch = fakeFetch(() => Promise.reject(new TypeError('fetch failed')));
    const error = await new JobClient({ baseUrl: BASE, fetch }).get('x').catch((e: unknown) => e);
    expect(PollkitError.is(error)).toBe(true);
    expect(error).toMatchObject({ code: 'network-error', retryable: true });
    expect((error as Error).cause).toBeInstanceOf(TypeError);
  });

  it('rejects with the signal reason when aborted during the request, and passes the signal to fetch', async () => {
    const fetch = fakeFetch((request) => held(request.signal));
    const controller = new AbortController();
    const pending = new JobClient({ baseUrl: BASE, fetch }).wait('x', {
      version: 1,
      waitSeconds: 25,
      signal: controller.signal,
    });
    await Promise.resolve();
    const reason = new Error('leaving');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    expect(fetch.requests[0]?.signal?.aborted).toBe(true);
  });

  it('does not call fetch for an already aborted signal', async () => {
    const fetch = fakeFetch(() => json(200, job()));
    const controller = new AbortController();
    controller.abort(new Error('early'));
    await expect(new JobClient({ baseUrl: BASE, fetch }).get('x', { signal: controller.signal })).rejects.toThrow(
      'early',
    );
    expect(fetch.requests).toHaveLength(0);
  });

  it('cancels with POST {p}/jobs/{id}:cancel', async () => {
    const fetch = fakeFetch(() => json(200, job({ status: 'canceled' })));
    const canceled = await new JobClient({ baseUrl: BASE, fetch }).cancel('job-1');
    expect(canceled.status).toBe('canceled');
    expect(fetch.requests[0]?.method).toBe('POST');
    expect(fetch.requests[0]?.url.pathname).toBe('/pollkit/jobs/job-1:cancel');
  });

  it('forgets: 204 → true, 404 → false, 409 job-not-finished throws', async () => {
    const statuses = [204, 404, 409];
    const fetch = fakeFetch(() => {
      const status = statuses.shift()!;
      return status === 204
        ? new Response(null, { status })
        : problemResponse(status, status === 404 ? 'job-not-found' : 'job-not-finished');
    });
    const client = new JobClient({ baseUrl: BASE, fetch });
    expect(await client.forget('a')).toBe(true);
    expect(await client.forget('b')).toBe(false);
    await expect(client.forget('c')).rejects.toMatchObject({ code: 'job-not-finished', status: 409 });
    expect(fetch.requests.map((r) => r.method)).toEqual(['DELETE', 'DELETE', 'DELETE']);
  });

  it('lists with query parameters and a page token', async () => {
    const fetch = fakeFetch(() => json(200, { jobs: [job({ id: 'a' }), job({ id: 'b' })], nextPageToken: 'p2' }));
    const page = await new JobClient({ baseUrl: BASE, fetch }).list({ status: 'running', pageSize: 2 });
    expect(page.jobs.map((j) => j.id)).toEqual(['a', 'b']);
    expect(page.nextPageToken).toBe('p2');
    expect(fetch.requests[0]?.url.search).toBe('?status=running&pageSize=2');
    const last = fakeFetch(() => json(200, { jobs: [] }));
    expect(await new JobClient({ baseUrl: BASE, fetch: last }).list()).toEqual({ jobs: [] });
    const broken = fakeFetch(() => json(200, { items: [] }));
    await expect(new JobClient({ baseUrl: BASE, fetch: broken }).list()).rejects.toSatisfy(ProtocolError.is);
  });

  it('honours prefix and base path, and computes headers per request', async () => {
    let token = 0;
    const fetch = fakeFetch(() => json(200, job()));
    const client = new JobClient({
      baseUrl: 'https://api.test/v2/',
      prefix: '/poll',
      fetch,
      headers: async () => ({ authorization: `Bearer ${++token}` }),
    });
    await client.get('a');
    await client.get('a');
    expect(fetch.requests[0]?.url.toString()).toBe('https://api.test/v2/poll/jobs/a');
    expect(fetch.requests.map((r) => r.headers.get('authorization'))).toEqual(['Bearer 1', 'Bearer 2']);
    expect(new JobClient({ baseUrl: BASE, prefix: '' }).jobUrl('z')).toBe('https://api.test/jobs/z');
  });

  it('looks up globalThis.fetch at call time', async () => {
    const client = new JobClient({ baseUrl: BASE });
    const stub = fakeFetch(() => json(200, job({ version: 9 })));
    vi.stubGlobal('fetch', stub);
    const answer = await client.get('a');
    expect(answer.job?.version).toBe(9);
    expect(stub.requests).toHaveLength(1);
  });

  it('validates its options', () => {
    expect(() => new JobClient({ baseUrl: 'not a url' })).toThrow(InvalidArgumentError);
    expect(() => new JobClient({ baseUrl: BASE, prefix: 'pollkit' })).toThrow(InvalidArgumentError);
    // @ts-expect-error a wrong type on purpose
    expect(() => new JobClient({ baseUrl: BASE, fetch: 'x' })).toThrow(InvalidArgumentError);
  });
});

describe('TopicClient', () => {
  const result = {
    topic: 'orders',
    epoch: 'e1',
    records: [{ offset: 5, timestamp: '2026-01-01T00:00:00.000Z', key: null, value: { n: 5 } }],
    nextOffset: 6,
    highWatermark: 6,
    earliestOffset: 0,
  };

  it('fetches with offset, limit, minRecords, wait and epoch in the query', async () => {
    const fetch = fakeFetch(() => json(200, result));
    const answer = await new TopicClient({ baseUrl: BASE, fetch }).fetch('orders', {
      offset: 5,
      limit: 10,
      minRecords: 1,
      waitSeconds: 25,
      epoch: 'e1',
    });
    expect(answer.records[0]?.value).toEqual({ n: 5 });
    expect(answer.nextOffset).toBe(6);
    expect(answer.meta.status).toBe(200);
    const url = fetch.requests[0]?.url;
    expect(url?.pathname).toBe('/pollkit/topics/orders/records');
    expect(Object.fromEntries(url?.searchParams ?? [])).toEqual({
      offset: '5',
      limit: '10',
      minRecords: '1',
      wait: '25',
      epoch: 'e1',
    });
  });

  it('accepts an empty answer at timeout', async () => {
    const fetch = fakeFetch(() => json(200, { ...result, records: [], nextOffset: 6 }));
    const answer = await new TopicClient({ baseUrl: BASE, fetch }).fetch('orders', { offset: 6, waitSeconds: 25 });
    expect(answer.records).toEqual([]);
  });

  it('sends the cursor last, and lets only reads that cannot repeat their URL use HTTP caches', async () => {
    const modes: (RequestCache | undefined)[] = [];
    const urls: string[] = [];
    const fetch = async (input: string, init: RequestInit): Promise<Response> => {
      urls.push(input);
      modes.push(init.cache);
      return json(200, { ...result, records: [], nextOffset: 6, cursor: '4' });
    };
    const client = new TopicClient({ baseUrl: BASE, fetch });
    await client.fetch('orders', { offset: 6, waitSeconds: 20, epoch: 'e1', cursor: '3' });
    await client.fetch('orders', { offset: 6, epoch: 'e1' });
    await client.fetch('orders', { offset: 6, waitSeconds: 20, epoch: 'e1' });
    expect(urls[0]).toBe(`${BASE}/pollkit/topics/orders/records?offset=6&wait=20&epoch=e1&cursor=3`);
    // A held read without cursor asks again with the same URL after an empty answer: never cached.
    expect(modes).toEqual(['default', 'default', 'no-store']);
    await expect(client.fetch('orders', { offset: 6, cursor: 'x1' })).rejects.toSatisfy(InvalidArgumentError.is);
  });

  it.each([
    ['another epoch', { epoch: 'e1' }, { epoch: 'e0' }, 'epoch e0'],
    ['another offset', { epoch: 'e1' }, {}, 'offset 5'],
    [
      'a cursor that did not move',
      { epoch: 'e1', cursor: '4', waitSeconds: 20 },
      { records: [], nextOffset: 7, cursor: '4' },
      'cursor 4',
    ],
  ] as const)('rejects an answer for %s as a retryable ProtocolError', async (_name, options, answer, what) => {
    const fetch = fakeFetch(() => json(200, { ...result, epoch: 'e1', ...answer }));
    const error = await new TopicClient({ baseUrl: BASE, fetch })
      .fetch('orders', { offset: 7, ...options })
      .catch((e: unknown) => e);
    expect(ProtocolError.is(error)).toBe(true);
    expect(error).toMatchObject({ retryable: true });
    expect((error as Error).message).toContain(`a cached answer for another request (${what})`);
  });

  it('maps 410 to OffsetGoneError with earliestOffset and epoch from the problem', async () => {
    const fetch = fakeFetch(() => problemResponse(410, 'offset-gone', { earliestOffset: 120, epoch: 'e2' }));
    const error = await new TopicClient({ baseUrl: BASE, fetch })
      .fetch('orders', { offset: 3 })
      .catch((e: unknown) => e);
    expect(OffsetGoneError.is(error)).toBe(true);
    expect(error).toMatchObject({ topic: 'orders', offset: 3, earliestOffset: 120, epoch: 'e2', retryable: false });
    expect(HttpError.is((error as Error).cause)).toBe(true);
  });

  it('refuses a 410 that does not say where the log starts', async () => {
    const fetch = fakeFetch(() => problemResponse(410, 'offset-gone'));
    await expect(new TopicClient({ baseUrl: BASE, fetch }).fetch('orders', { offset: 3 })).rejects.toSatisfy(
      ProtocolError.is,
    );
  });

  it('maps 400 offset-out-of-range to OffsetOutOfRangeError', async () => {
    const fetch = fakeFetch(() => problemResponse(400, 'offset-out-of-range', { highWatermark: 6 }));
    const error = await new TopicClient({ baseUrl: BASE, fetch })
      .fetch('orders', { offset: 99 })
      .catch((e: unknown) => e);
    expect(OffsetOutOfRangeError.is(error)).toBe(true);
    expect(error).toMatchObject({ offset: 99, highWatermark: 6 });
    const other = fakeFetch(() => problemResponse(400, 'invalid-parameter'));
    await expect(new TopicClient({ baseUrl: BASE, fetch: other }).fetch('orders', { offset: 1 })).rejects.toMatchObject(
      {
        code: 'invalid-parameter',
        status: 400,
      },
    );
  });

  it('rejects malformed fetch results and arguments', async () => {
    const fetch = fakeFetch(() => json(200, { ...result, nextOffset: 'six' }));
    const client = new TopicClient({ baseUrl: BASE, fetch });
    await expect(client.fetch('orders', { offset: 0 })).rejects.toSatisfy(ProtocolError.is);
    await expect(client.fetch('orders', { offset: -1 })).rejects.toSatisfy(InvalidArgumentError.is);
    await expect(client.fetch('orders', { offset: 0, waitSeconds: Number.NaN })).rejects.toSatisfy(
      InvalidArgumentError.is,
    );
  });

  it('appends with key and value and returns the offset', async () => {
    const fetch = fakeFetch(() => json(201, { offset: 120 }));
    const client = new TopicClient({ baseUrl: BASE, fetch });
    expect(await client.append('orders', { n: 1 }, { key: 'k' })).toBe(120);
    expect(fetch.requests[0]?.body).toEqual({ key: 'k', value: { n: 1 } });
    expect(fetch.requests[0]?.method).toBe('POST');
    const disabled = fakeFetch(() => problemResponse(403, 'appends-disabled'));
    await expect(new TopicClient({ baseUrl: BASE, fetch: disabled }).append('orders', 1)).rejects.toMatchObject({
      code: 'appends-disabled',
      retryable: false,
    });
    const broken = fakeFetch(() => json(201, {}));
    await expect(new TopicClient({ baseUrl: BASE, fetch: broken }).append('orders', 1)).rejects.toSatisfy(
      ProtocolError.is,
    );
  });

  it('encodes topic names', () => {
    expect(new TopicClient({ baseUrl: BASE }).topicUrl('a/b')).toBe('https://api.test/pollkit/topics/a%2Fb');
  });
});
