/**
 * The protocol conformance suite: every endpoint, status, header and error of PROTOCOL.md, over a
 * real HTTP server on port 0. Each adapter runs it with one line:
 *
 * ```ts
 * describeConformance('node:http', startNodeServer);
 * ```
 *
 * where the second argument serves a `PollkitHandler` and returns the server's URL (see
 * `test/helpers/http-server.ts` for the node and fetch versions), and an optional third one puts the
 * jobs on another backend (`test/bullmq/conformance.test.ts` runs the suite on a BullMQ queue).
 */
import { describe, expect, it } from 'vitest';
import type { StartServer } from '../helpers/http-server.js';
import { RawConnection, listenerCounts } from '../helpers/raw-http.js';
import { openSse } from '../helpers/sse-client.js';
import {
  type Fixture,
  type FixtureOptions,
  type JobBackend,
  bearerAuthorize,
  call,
  eventually,
  idle,
  post,
  startFixture,
} from './fixture.js';

const bearer = (name: string): Record<string, string> => ({ authorization: `Bearer ${name}` });

/** Submits a `hold` job over HTTP and waits until its handler runs and has reported progress. */
async function submitHold(
  fixture: Fixture,
  headers: Record<string, string> = {},
): Promise<{ id: string; version: number }> {
  const answer = await post(`${fixture.base}/jobs`, { type: 'hold', input: {} }, headers);
  expect(answer.status).toBe(202);
  const id = answer.body.id as string;
  const started = Date.now();
  for (;;) {
    const job = await fixture.jobs.get(id);
    if (job?.status === 'running' && job.progress !== null) return { id, version: job.version };
    if (Date.now() - started > 3000) throw new Error(`job ${id} did not start`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Registers the conformance tests for one adapter.
 *
 * @param name - shown in the test report.
 * @param start - serves a handler on a real server on port 0.
 */
export function describeConformance(name: string, start: StartServer, backend?: JobBackend): void {
  const fixture = (options: FixtureOptions = {}): Promise<Fixture> =>
    startFixture(start, backend === undefined ? options : { ...options, backend });
  describe(`protocol conformance: ${name}`, () => {
    describe('submit', () => {
      it('answers 202 with Location, Operation-Location, Retry-After, ETag and no-store', async () => {
        const f = await fixture();
        const answer = await post(`${f.base}/jobs`, { type: 'echo', input: { n: 1 } });
        expect(answer.status).toBe(202);
        const job = answer.body;
        expect(job).toMatchObject({ type: 'echo', done: false, version: expect.any(Number) });
        expect(typeof job.id).toBe('string');
        const url = `${f.base}/jobs/${job.id}`;
        expect(answer.headers.get('location')).toBe(url);
        expect(answer.headers.get('operation-location')).toBe(url);
        expect(answer.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(answer.headers.get('etag')).toBe(`"${job.version}"`);
        expect(answer.headers.get('cache-control')).toBe('no-store');
        expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
        const followed = await call(url);
        expect(followed.status).toBe(200);
        expect(followed.body.id).toBe(job.id);
      });

      it('rejects bad submissions with 400 problems naming the parameter', async () => {
        const f = await fixture();
        const cases: [unknown, string, string | undefined][] = [
          [{ type: 'nope', input: 1 }, 'unknown-job-type', undefined],
          [{ type: 'number', input: 'x' }, 'invalid-input', undefined],
          [{ input: 1 }, 'invalid-parameter', 'type'],
          [[1, 2], 'invalid-parameter', 'body'],
        ];
        for (const [body, code, parameter] of cases) {
          const answer = await post(`${f.base}/jobs`, body);
          expect(answer.status, JSON.stringify(body)).toBe(400);
          expect(answer.headers.get('content-type')).toBe('application/problem+json');
          expect(answer.body).toMatchObject({ status: 400, code, type: `urn:pollkit:problem:${code}` });
          expect(answer.body.message).toBe(answer.body.detail);
          if (parameter !== undefined) expect(answer.body.parameter).toBe(parameter);
        }
        const malformed = await call(`${f.base}/jobs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"type":',
        });
        expect(malformed.status).toBe(400);
        expect(malformed.body.parameter).toBe('body');
        const xml = await call(`${f.base}/jobs`, {
          method: 'POST',
          headers: { 'content-type': 'application/xml' },
          body: '<a/>',
        });
        expect(xml.status).toBe(415);
        expect(xml.body.code).toBe('unsupported-media-type');
      });

      it('answers 413 for a body over the limit', async () => {
        const f = await fixture({ bodyLimitBytes: 1024 });
        const answer = await post(`${f.base}/jobs`, { type: 'echo', input: 'x'.repeat(2000) });
        expect(answer.status).toBe(413);
        expect(answer.body.code).toBe('payload-too-large');
        const small = await post(`${f.base}/jobs`, { type: 'echo', input: 'x'.repeat(100) });
        expect(small.status).toBe(202);
      });

      it('honours Idempotency-Key: same body same job, different body 400', async () => {
        const f = await fixture();
        const key = { 'idempotency-key': 'order-42' };
        const first = await post(`${f.base}/jobs`, { type: 'echo', input: { a: 1 } }, key);
        const again = await post(`${f.base}/jobs`, { type: 'echo', input: { a: 1 } }, key);
        expect(first.status).toBe(202);
        expect(again.status).toBe(202);
        expect(again.body.id).toBe(first.body.id);
        const reused = await post(`${f.base}/jobs`, { type: 'echo', input: { a: 2 } }, key);
        expect(reused.status).toBe(400);
        expect(reused.body.code).toBe('idempotency-key-reused');
        const bad = await post(`${f.base}/jobs`, { type: 'echo', input: 1 }, { 'idempotency-key': 'x'.repeat(300) });
        expect(bad.status).toBe(400);
        expect(bad.body.parameter).toBe('Idempotency-Key');
      });
    });

    describe('status and long polls', () => {
      it('serves status with ETag, Retry-After while running, Expires once finished', async () => {
        const f = await fixture();
        const { id, version } = await submitHold(f);
        const running = await call(`${f.base}/jobs/${id}`);
        expect(running.status).toBe(200);
        expect(running.body).toMatchObject({ id, status: 'running', done: false, version });
        expect(running.headers.get('etag')).toBe(`"${version}"`);
        expect(running.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(running.headers.get('cache-control')).toBe('no-store');
        f.release(id, { answer: 42 });
        const done = await f.jobs.wait(id, { sinceVersion: version, timeoutMs: 2000 });
        const finished = await call(`${f.base}/jobs/${id}`);
        expect(finished.body).toMatchObject({ status: 'succeeded', done: true, result: { answer: 42 }, error: null });
        expect(finished.headers.get('retry-after')).toBeNull();
        expect(finished.headers.get('expires')).toBe(new Date(done!.expiresAt!).toUTCString());
      });

      it('answers a matching If-None-Match with 304 and a stale one with 200', async () => {
        const f = await fixture();
        const { id, version } = await submitHold(f);
        const same = await call(`${f.base}/jobs/${id}`, { headers: { 'if-none-match': `"${version}"` } });
        expect(same.status).toBe(304);
        expect(same.text).toBe('');
        expect(same.headers.get('etag')).toBe(`"${version}"`);
        expect(same.headers.get('cache-control')).toBe('no-store');
        const weak = await call(`${f.base}/jobs/${id}`, { headers: { 'if-none-match': `"0", W/"${version}"` } });
        expect(weak.status).toBe(304);
        const stale = await call(`${f.base}/jobs/${id}`, { headers: { 'if-none-match': `"${version - 1}"` } });
        expect(stale.status).toBe(200);
      });

      it('holds If-None-Match + Prefer: wait until the version changes, then 200', async () => {
        const f = await fixture();
        const { id, version } = await submitHold(f);
        const poll = call(`${f.base}/jobs/${id}`, { headers: { 'if-none-match': `"${version}"`, prefer: 'wait=10' } });
        await eventually(() => f.handler.heldRequests === 1, 3000, 'the poll to be held');
        f.release(id, 'done');
        const answer = await poll;
        expect(answer.status).toBe(200);
        expect(answer.body).toMatchObject({ status: 'succeeded', result: 'done' });
        expect(answer.headers.get('preference-applied')).toBe('wait=10');
        expect(answer.headers.get('vary')).toMatch(/prefer/i);
        expect(answer.headers.get('etag')).toBe(`"${answer.body.version}"`);
        await eventually(() => idle(f), 3000, 'the purgatory to empty');
      });

      it('answers a long poll that times out with 304', async () => {
        const f = await fixture();
        const { id, version } = await submitHold(f);
        const started = Date.now();
        const answer = await call(`${f.base}/jobs/${id}`, {
          headers: { 'if-none-match': `"${version}"`, prefer: 'wait=0.3' },
        });
        expect(answer.status).toBe(304);
        expect(Date.now() - started).toBeGreaterThanOrEqual(250);
        expect(answer.headers.get('preference-applied')).toBe('wait=0.3');
        expect(answer.headers.get('vary')).toMatch(/prefer/i);
        expect(answer.headers.get('etag')).toBe(`"${version}"`);
        await eventually(() => idle(f));
      });

      it('holds ?version=&wait= and answers 200 at change and at timeout', async () => {
        const f = await fixture();
        const { id, version } = await submitHold(f);
        const timedOut = await call(`${f.base}/jobs/${id}?version=${version}&wait=0.2`);
        expect(timedOut.status).toBe(200);
        expect(timedOut.body.version).toBe(version);
        expect(timedOut.headers.get('preference-applied')).toBe('wait=0.2');
        const poll = call(`${f.base}/jobs/${id}?version=${version}&wait=10`);
        await eventually(() => f.handler.heldRequests === 1);
        f.release(id);
        const changed = await poll;
        expect(changed.status).toBe(200);
        expect(changed.body.status).toBe('succeeded');
        const behind = await call(`${f.base}/jobs/${id}?version=0&wait=10`);
        expect(behind.status).toBe(200);
        expect(behind.body.status).toBe('succeeded');
      });

      it('caps wait at the server maximum and reports it', async () => {
        const f = await fixture({ maxWaitSeconds: 0.25 });
        const { id, version } = await submitHold(f);
        const answer = await call(`${f.base}/jobs/${id}`, {
          headers: { 'if-none-match': `"${version}"`, prefer: 'wait=600' },
        });
        expect(answer.status).toBe(304);
        expect(answer.headers.get('preference-applied')).toBe('wait=0.25');
      });

      it('rejects malformed parameters and headers with 400 naming them', async () => {
        const f = await fixture();
        const { id } = await submitHold(f);
        const cases: [string, Record<string, string>, string][] = [
          [`?wait=soon`, {}, 'wait'],
          [`?wait=-1`, {}, 'wait'],
          [`?version=1.5`, {}, 'version'],
          [`?version=1&version=2`, {}, 'version'],
          ['', { prefer: 'wait=abc' }, 'Prefer'],
          ['', { 'if-none-match': '7' }, 'If-None-Match'],
        ];
        for (const [query, headers, parameter] of cases) {
          const answer = await call(`${f.base}/jobs/${id}${query}`, { headers });
          expect(answer.status, `${query} ${JSON.stringify(headers)}`).toBe(400);
          expect(answer.body).toMatchObject({ code: 'invalid-parameter', parameter });
        }
      });

      it('answers unknown jobs, paths and methods with 404 and 405 problems', async () => {
        const f = await fixture();
        const missing = await call(`${f.base}/jobs/does-not-exist`);
        expect(missing.status).toBe(404);
        expect(missing.body.code).toBe('job-not-found');
        expect(missing.headers.get('content-type')).toBe('application/problem+json');
        const nowhere = await call(`${f.base}/nowhere`);
        expect(nowhere.status).toBe(404);
        expect(nowhere.body.code).toBe('not-found');
        const method = await call(`${f.base}/jobs`, { method: 'PUT' });
        expect(method.status).toBe(405);
        expect(method.headers.get('allow')).toBe('GET, POST, HEAD, OPTIONS');
      });
    });

    describe('browsers on other origins: HEAD, OPTIONS and CORS', () => {
      it("answers HEAD wherever GET is allowed, with GET's status and headers and no body", async () => {
        const f = await fixture();
        const submitted = await post(`${f.base}/jobs`, { type: 'echo', input: 1 });
        const url = `${f.base}/jobs/${submitted.body.id}`;
        let get = await call(url);
        while (get.body.done !== true) get = await call(url);
        const head = await call(url, { method: 'HEAD' });
        expect(head.status).toBe(200);
        expect(head.text).toBe('');
        expect(head.headers.get('etag')).toBe(get.headers.get('etag'));
        expect((await call(`${f.base}/jobs/nope`, { method: 'HEAD' })).status).toBe(404);
        expect((await post(`${f.base}/topics/t/records`, { value: 1 })).status).toBe(201);
        expect((await call(`${f.base}/topics/t/records?offset=0`, { method: 'HEAD' })).status).toBe(200);
        // A stream is not opened for HEAD: the answer comes at once and holds no slot.
        const events = await call(`${f.base}/topics/t/events?offset=0`, { method: 'HEAD' });
        expect(events.status).toBe(200);
        expect(events.headers.get('content-type')).toMatch(/^text\/event-stream/);
        await eventually(() => f.handler.heldRequests === 0, 3000, 'the HEAD stream to release its slot');
        const cancelHead = await call(`${f.base}/jobs/x:cancel`, { method: 'HEAD' });
        expect(cancelHead.status).toBe(405);
        expect(cancelHead.headers.get('allow')).toBe('POST, OPTIONS');
      });

      it('answers OPTIONS with Allow, and sends no CORS headers unless configured', async () => {
        const f = await fixture();
        const options = await call(`${f.base}/jobs`, {
          method: 'OPTIONS',
          headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
        });
        expect(options.status).toBe(204);
        expect(options.headers.get('allow')).toBe('GET, POST, HEAD, OPTIONS');
        expect(options.headers.get('access-control-allow-origin')).toBeNull();
        const get = await call(`${f.base}/jobs`, { headers: { origin: 'https://app.example' } });
        expect(get.headers.get('access-control-allow-origin')).toBeNull();
      });

      it('answers preflights and exposes the protocol headers to allowed origins, with credentials', async () => {
        const f = await fixture({ cors: { origins: ['https://app.example'], credentials: true } });
        const preflight = await call(`${f.base}/jobs`, {
          method: 'OPTIONS',
          headers: {
            origin: 'https://app.example',
            'access-control-request-method': 'POST',
            'access-control-request-headers': 'content-type, idempotency-key, x-unknown',
          },
        });
        expect(preflight.status).toBe(204);
        expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example');
        expect(preflight.headers.get('access-control-allow-credentials')).toBe('true');
        expect(preflight.headers.get('access-control-allow-methods')).toBe('GET, POST, HEAD, OPTIONS');
        expect(preflight.headers.get('access-control-allow-headers')).toBe('content-type, idempotency-key');
        expect(preflight.headers.get('access-control-max-age')).toBe('600');
        const submitted = await post(`${f.base}/jobs`, { type: 'echo', input: 2 }, { origin: 'https://app.example' });
        expect(submitted.status).toBe(202);
        expect(submitted.headers.get('access-control-allow-origin')).toBe('https://app.example');
        expect(submitted.headers.get('access-control-allow-credentials')).toBe('true');
        const exposed = submitted.headers.get('access-control-expose-headers')!.split(', ');
        for (const name of ['etag', 'location', 'operation-location', 'retry-after', 'preference-applied']) {
          expect(exposed).toContain(name);
        }
        expect(submitted.headers.get('vary')).toMatch(/Origin/);
        // Problems carry the headers too, so a page can read why it failed.
        const missing = await call(`${f.base}/jobs/nope`, { headers: { origin: 'https://app.example' } });
        expect(missing.status).toBe(404);
        expect(missing.headers.get('access-control-allow-origin')).toBe('https://app.example');
        // Another origin gets nothing, preflight or not.
        const other = await call(`${f.base}/jobs`, {
          method: 'OPTIONS',
          headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
        });
        expect(other.headers.get('access-control-allow-origin')).toBeNull();
        const otherGet = await call(`${f.base}/jobs`, { headers: { origin: 'https://evil.example' } });
        expect(otherGet.headers.get('access-control-allow-origin')).toBeNull();
      });
    });

    describe('cancel, forget and list', () => {
      it('cancels with :cancel and /cancel, idempotently', async () => {
        const f = await fixture();
        const { id } = await submitHold(f);
        const canceled = await call(`${f.base}/jobs/${id}:cancel`, { method: 'POST' });
        expect(canceled.status).toBe(200);
        expect(canceled.body).toMatchObject({ id, status: 'canceled', done: true, error: { code: 'canceled' } });
        const again = await call(`${f.base}/jobs/${id}/cancel`, { method: 'POST' });
        expect(again.status).toBe(200);
        expect(again.body.version).toBe(canceled.body.version);
        const encoded = await call(`${f.base}/jobs/${id}%3Acancel`, { method: 'POST' });
        expect(encoded.status).toBe(200);
        const unknown = await call(`${f.base}/jobs/nope:cancel`, { method: 'POST' });
        expect(unknown.status).toBe(404);
      });

      it('forgets finished jobs with 204, refuses running ones with 409', async () => {
        const f = await fixture();
        const { id } = await submitHold(f);
        const running = await call(`${f.base}/jobs/${id}`, { method: 'DELETE' });
        expect(running.status).toBe(409);
        expect(running.body.code).toBe('job-not-finished');
        await call(`${f.base}/jobs/${id}:cancel`, { method: 'POST' });
        const forgotten = await call(`${f.base}/jobs/${id}`, { method: 'DELETE' });
        expect(forgotten.status).toBe(204);
        expect(forgotten.text).toBe('');
        expect((await call(`${f.base}/jobs/${id}`)).status).toBe(404);
        expect((await call(`${f.base}/jobs/${id}`, { method: 'DELETE' })).status).toBe(404);
      });

      it('lists jobs newest first with pageSize, pageToken and status', async () => {
        const f = await fixture();
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push((await post(`${f.base}/jobs`, { type: 'echo', input: i })).body.id);
        await f.drained();
        const seen: string[] = [];
        let token: string | undefined;
        do {
          const answer = await call(
            `${f.base}/jobs?pageSize=2${token === undefined ? '' : `&pageToken=${encodeURIComponent(token)}`}`,
          );
          expect(answer.status).toBe(200);
          expect(answer.headers.get('cache-control')).toBe('no-store');
          expect(answer.body.jobs.length).toBeLessThanOrEqual(2);
          seen.push(...answer.body.jobs.map((job: { id: string }) => job.id));
          token = answer.body.nextPageToken;
        } while (token !== undefined);
        expect(seen).toEqual([...ids].reverse());
        const succeeded = await call(`${f.base}/jobs?status=succeeded`);
        expect(succeeded.body.jobs).toHaveLength(5);
        expect((await call(`${f.base}/jobs?status=running`)).body.jobs).toHaveLength(0);
        expect((await call(`${f.base}/jobs?status=weird`)).body.parameter).toBe('status');
        expect((await call(`${f.base}/jobs?pageSize=0`)).status).toBe(400);
        expect((await call(`${f.base}/jobs?pageToken=garbage!!`)).status).toBe(400);
      });
    });

    describe('job events (SSE)', () => {
      it('streams retry, state and progress events with ids, closing after the terminal one', async () => {
        const f = await fixture();
        const { id, version } = await submitHold(f);
        const stream = await openSse(`${f.base}/jobs/${id}/events`);
        expect(stream.status).toBe(200);
        expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
        expect(stream.headers.get('cache-control')).toBe('no-store');
        expect(stream.headers.get('x-accel-buffering')).toBe('no');
        await stream.waitForEvents(1);
        expect(stream.retries).toEqual([1000]);
        expect(stream.events[0]).toMatchObject({ id: String(version), event: 'state' });
        expect(JSON.parse(stream.events[0]!.data)).toMatchObject({ id, status: 'running' });
        await f.jobs.progress(id, { percent: 50 }).catch(() => {});
        f.release(id, 'ok');
        await stream.ended;
        const last = stream.events.at(-1)!;
        expect(last.event).toBe('state');
        expect(JSON.parse(last.data)).toMatchObject({ status: 'succeeded', result: 'ok' });
        for (const event of stream.events) expect(event.id).toBe(String(JSON.parse(event.data).version));
        expect(stream.events.slice(1, -1).every((event) => event.event === 'progress')).toBe(true);
        const reconnect = await call(`${f.base}/jobs/${id}/events`, { headers: { 'last-event-id': last.id! } });
        expect(reconnect.status).toBe(204);
        const fresh = await openSse(`${f.base}/jobs/${id}/events`);
        await fresh.ended;
        expect(fresh.events.map((event) => event.event)).toEqual(['state']);
        await eventually(() => idle(f));
      });

      it('sends progress events when only progress changes', async () => {
        const f = await fixture();
        const created = await f.jobs.create('external', {});
        await f.jobs.start(created.id);
        const stream = await openSse(`${f.base}/jobs/${created.id}/events`);
        await stream.waitForEvents(1);
        await f.jobs.progress(created.id, { percent: 30 });
        await stream.waitForEvents(2);
        await f.jobs.succeed(created.id, 1);
        await stream.ended;
        expect(stream.events.map((event) => event.event)).toEqual(['state', 'progress', 'state']);
      });

      it('404s a job the caller cannot see', async () => {
        const f = await fixture();
        expect((await call(`${f.base}/jobs/missing/events`)).status).toBe(404);
      });
    });

    describe('topics', () => {
      it('appends with 201 and reads records from an offset', async () => {
        const f = await fixture();
        const first = await post(`${f.base}/topics/orders/records`, { value: { n: 1 } });
        expect(first.status).toBe(201);
        expect(first.body).toEqual({ offset: 0 });
        expect((await post(`${f.base}/topics/orders/records`, { key: 'k', value: { n: 2 } })).body).toEqual({
          offset: 1,
        });
        const read = await call(`${f.base}/topics/orders/records?offset=0&limit=10`);
        expect(read.status).toBe(200);
        expect(read.headers.get('cache-control')).toBe('no-store');
        expect(read.body).toMatchObject({ topic: 'orders', nextOffset: 2, highWatermark: 2, earliestOffset: 0 });
        expect(typeof read.body.epoch).toBe('string');
        expect(
          read.body.records.map((r: { offset: number; key: string | null; value: unknown }) => [
            r.offset,
            r.key,
            r.value,
          ]),
        ).toEqual([
          [0, null, { n: 1 }],
          [1, 'k', { n: 2 }],
        ]);
        expect(typeof read.body.records[0].timestamp).toBe('string');
        const limited = await call(`${f.base}/topics/orders/records?offset=1&limit=1`);
        expect(limited.body.records).toHaveLength(1);
        expect(limited.body.nextOffset).toBe(2);
      });

      it('validates append bodies and read parameters', async () => {
        const f = await fixture();
        await post(`${f.base}/topics/orders/records`, { value: 1 });
        expect((await post(`${f.base}/topics/orders/records`, { key: 1 })).body.parameter).toBe('value');
        expect((await post(`${f.base}/topics/orders/records`, { key: 5, value: 1 })).body.parameter).toBe('key');
        expect((await call(`${f.base}/topics/orders/records`)).body.parameter).toBe('offset');
        expect((await call(`${f.base}/topics/orders/records?offset=x`)).body.parameter).toBe('offset');
        expect((await call(`${f.base}/topics/orders/records?offset=0&limit=0`)).body.parameter).toBe('limit');
        expect((await call(`${f.base}/topics/orders/records?offset=0&minRecords=-1`)).body.parameter).toBe(
          'minRecords',
        );
        expect((await call(`${f.base}/topics/unknown/records?offset=0`)).status).toBe(404);
      });

      it('holds a read until minRecords exist, and answers an empty page at timeout', async () => {
        const f = await fixture();
        await post(`${f.base}/topics/chat/records`, { value: 'a' });
        const empty = await call(`${f.base}/topics/chat/records?offset=1&wait=0.2`);
        expect(empty.status).toBe(200);
        expect(empty.body.records).toEqual([]);
        expect(empty.body.nextOffset).toBe(1);
        expect(empty.headers.get('preference-applied')).toBe('wait=0.2');
        const held = call(`${f.base}/topics/chat/records?offset=1&minRecords=2&wait=10`);
        await eventually(() => f.handler.heldRequests === 1);
        await post(`${f.base}/topics/chat/records`, { value: 'b' });
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(f.handler.heldRequests).toBe(1);
        await post(`${f.base}/topics/chat/records`, { value: 'c' });
        const answer = await held;
        expect(answer.body.records.map((r: { value: string }) => r.value)).toEqual(['b', 'c']);
        const viaPrefer = await call(`${f.base}/topics/chat/records?offset=3`, { headers: { prefer: 'wait=0.1' } });
        expect(viaPrefer.headers.get('preference-applied')).toBe('wait=0.1');
        await eventually(() => idle(f));
      });

      it('answers 410 with earliestOffset and epoch for trimmed offsets and stale epochs, 400 above the high watermark', async () => {
        const f = await fixture({ maxRecords: 2 });
        for (let i = 0; i < 5; i++) await post(`${f.base}/topics/log/records`, { value: i });
        const position = await f.topics.get('log')!.position();
        const gone = await call(`${f.base}/topics/log/records?offset=0`);
        expect(gone.status).toBe(410);
        expect(gone.body).toMatchObject({
          code: 'offset-gone',
          earliestOffset: position.earliestOffset,
          epoch: position.epoch,
        });
        const stale = await call(`${f.base}/topics/log/records?offset=4&epoch=not-the-epoch`);
        expect(stale.status).toBe(410);
        expect(stale.body.epoch).toBe(position.epoch);
        const current = await call(`${f.base}/topics/log/records?offset=4&epoch=${encodeURIComponent(position.epoch)}`);
        expect(current.status).toBe(200);
        const beyond = await call(`${f.base}/topics/log/records?offset=99`);
        expect(beyond.status).toBe(400);
        expect(beyond.body.code).toBe('offset-out-of-range');
      });

      it('streams records as SSE with id = offset@epoch, resuming from Last-Event-ID over ?offset', async () => {
        const f = await fixture();
        for (const value of ['a', 'b', 'c']) await post(`${f.base}/topics/feed/records`, { value });
        const stream = await openSse(`${f.base}/topics/feed/events?offset=0`);
        expect(stream.status).toBe(200);
        await stream.waitForEvents(3);
        await post(`${f.base}/topics/feed/records`, { value: 'd' });
        await stream.waitForEvents(4);
        const epoch =
          JSON.parse(stream.events[0]!.data).offset === 0
            ? (await call(`${f.base}/topics/feed/records?offset=0`)).body.epoch
            : '';
        expect(stream.events.map((event) => [event.id, JSON.parse(event.data).value])).toEqual([
          [`0@${epoch}`, 'a'],
          [`1@${epoch}`, 'b'],
          [`2@${epoch}`, 'c'],
          [`3@${epoch}`, 'd'],
        ]);
        stream.abort();
        // A bare offset (an older client) still resumes; so does the epoch-carrying id.
        const resumed = await openSse(`${f.base}/topics/feed/events?offset=0`, { 'last-event-id': '1' });
        await resumed.waitForEvents(2);
        expect(resumed.events.map((event) => event.id)).toEqual([`2@${epoch}`, `3@${epoch}`]);
        resumed.abort();
        const again = await openSse(`${f.base}/topics/feed/events`, { 'last-event-id': `2@${epoch}` });
        await again.waitForEvents(1);
        expect(again.events.map((event) => event.id)).toEqual([`3@${epoch}`]);
        again.abort();
        const tail = await openSse(`${f.base}/topics/feed/events`);
        await post(`${f.base}/topics/feed/records`, { value: 'e' });
        await tail.waitForEvents(1);
        expect(tail.events[0]!.id).toBe(`4@${epoch}`);
        expect((await call(`${f.base}/topics/feed/events`, { headers: { 'last-event-id': 'x@y@' } })).status).toBe(400);
        tail.abort();
        expect((await call(`${f.base}/topics/feed/events?offset=99`)).status).toBe(400);
        await eventually(() => idle(f));
      });

      it('refuses appends when public appends are disabled', async () => {
        const f = await fixture({ publicAppends: false, autoCreateTopics: true });
        const refused = await post(`${f.base}/topics/orders/records`, { value: 1 });
        expect(refused.status).toBe(403);
        expect(refused.body.code).toBe('appends-disabled');
        expect((await call(`${f.base}/topics/orders/records?offset=0`)).status).toBe(200);
      });
    });

    describe('limits and shutdown', () => {
      it('answers 503 with Retry-After past the total held limit and 429 past the per-caller limit', async () => {
        const f = await fixture({
          maxHeldRequests: 2,
          maxHeldPerCaller: 1,
          authorize: bearerAuthorize,
          heldRetryAfterSeconds: 3,
        });
        const { id, version } = await submitHold(f, bearer('alice'));
        const hold = (who: string): Promise<Response> =>
          fetch(`${f.base}/jobs/${id}?version=${version}&wait=10`, { headers: bearer(who) });
        const first = hold('alice');
        await eventually(() => f.handler.heldRequests === 1);
        const perCaller = await call(`${f.base}/jobs/${id}?version=${version}&wait=10`, { headers: bearer('alice') });
        expect(perCaller.status).toBe(429);
        expect(perCaller.body.code).toBe('too-many-held-requests');
        expect(perCaller.headers.get('retry-after')).toBe('3');
        // bob cannot see alice's job, so hold bob on a topic instead.
        await post(`${f.base}/topics/t/records`, { value: 1 });
        const second = fetch(`${f.base}/topics/t/records?offset=1&wait=10`, { headers: bearer('bob') });
        await eventually(() => f.handler.heldRequests === 2);
        const total = await call(`${f.base}/topics/t/records?offset=1&wait=10`, { headers: bearer('carol') });
        expect(total.status).toBe(503);
        expect(total.body.code).toBe('overloaded');
        expect(total.headers.get('retry-after')).toBe('3');
        // A request that need not be held is still served.
        expect((await call(`${f.base}/topics/t/records?offset=0&wait=10`, { headers: bearer('carol') })).status).toBe(
          200,
        );
        f.release(id);
        await post(`${f.base}/topics/t/records`, { value: 2 });
        expect((await first).status).toBe(200);
        expect((await second).status).toBe(200);
      });

      it('close() answers every held request and stream with the current state, then 503s', async () => {
        const f = await fixture();
        const { id, version } = await submitHold(f);
        await post(`${f.base}/topics/t/records`, { value: 1 });
        const polls = [
          call(`${f.base}/jobs/${id}`, { headers: { 'if-none-match': `"${version}"`, prefer: 'wait=20' } }),
          call(`${f.base}/jobs/${id}?version=${version}&wait=20`),
          call(`${f.base}/topics/t/records?offset=1&wait=20`),
        ];
        const jobStream = await openSse(`${f.base}/jobs/${id}/events`);
        const topicStream = await openSse(`${f.base}/topics/t/events?offset=0`);
        await jobStream.waitForEvents(1);
        await topicStream.waitForEvents(1);
        await eventually(() => f.handler.heldRequests === 5);
        const started = Date.now();
        await f.handler.close();
        const [notModified, current, records] = await Promise.all(polls);
        expect(Date.now() - started).toBeLessThan(2000);
        expect(notModified!.status).toBe(304);
        expect(current!.status).toBe(200);
        expect(current!.body.version).toBe(version);
        expect(records!.status).toBe(200);
        expect(records!.body.records).toEqual([]);
        await jobStream.ended;
        await topicStream.ended;
        const after = await call(`${f.base}/jobs/${id}`);
        expect(after.status).toBe(503);
        expect(after.body.code).toBe('shutting-down');
        expect(after.headers.get('retry-after')).toMatch(/^\d+$/);
        await eventually(() => idle(f));
      });
    });

    describe('disconnects', () => {
      it('a client hanging up on a held job poll leaves nothing in the purgatory', async () => {
        const f = await fixture();
        const { id, version } = await submitHold(f);
        const controller = new AbortController();
        const poll = fetch(`${f.base}/jobs/${id}?version=${version}&wait=20`, { signal: controller.signal }).catch(
          () => undefined,
        );
        await eventually(() => f.handler.heldRequests === 1 && f.purgatory.watched() > 0);
        controller.abort();
        await poll;
        await eventually(() => idle(f), 3000, 'the purgatory to empty');
        expect(f.purgatory.metrics().pending).toBe(0);
      });

      it('a client hanging up on a held topic read leaves nothing in the purgatory', async () => {
        const f = await fixture();
        await post(`${f.base}/topics/t/records`, { value: 1 });
        const controller = new AbortController();
        const poll = fetch(`${f.base}/topics/t/records?offset=1&wait=20`, { signal: controller.signal }).catch(
          () => undefined,
        );
        await eventually(() => f.handler.heldRequests === 1 && f.purgatory.watched() > 0);
        controller.abort();
        await poll;
        await eventually(() => idle(f), 3000, 'the purgatory to empty');
      });

      it('held polls add no listener to their connection, and one whose client hangs up leaves nothing behind', async () => {
        const f = await startFixture(start);
        f.topics.topic('quiet');
        const base = new URL(f.base);
        const path = `${base.pathname}/topics/quiet/records`;
        const connection = new RawConnection(base.hostname, Number(base.port));
        const get = (target: string) => connection.get(base.host, target);
        try {
          // A short answer first, so the connection's server side is at rest before anything is held.
          expect((await get(`${path}?offset=0`)).status).toBe(200);
          expect(f.server.sockets.size).toBe(1);
          const [socket] = f.server.sockets;
          const resting = listenerCounts(socket!);
          // While a response is in flight node:http (and some frameworks: Koa's on-finished) keep
          // listeners of their own on the socket; every held poll must find the same ones, and
          // leave the socket as it was once answered: nothing accumulates on a keep-alive connection.
          let inFlight: Record<string, number> | undefined;
          for (let offset = 0; offset < 5; offset++) {
            const poll = get(`${path}?offset=${offset}&wait=20`);
            await eventually(() => f.handler.heldRequests === 1 && f.purgatory.watched() === 1);
            inFlight ??= listenerCounts(socket!);
            expect(listenerCounts(socket!)).toEqual(inFlight);
            await f.topics.topic('quiet').append(offset);
            expect((await poll).status).toBe(200);
            await eventually(() => f.handler.heldRequests === 0);
          }
          expect(listenerCounts(socket!)).toEqual(resting);
          // Then the client hangs up on a held poll.
          const abandoned = get(`${path}?offset=5&wait=20`).catch(() => undefined);
          await eventually(() => f.handler.heldRequests === 1 && f.purgatory.watched() === 1);
          connection.destroy();
          await abandoned;
          await eventually(() => idle(f), 3000, 'the purgatory to empty');
          expect(f.handler.heldRequests).toBe(0);
          expect(f.purgatory.metrics()).toMatchObject({ pending: 0, watched: 0, watchedKeys: 0 });
        } finally {
          connection.destroy();
        }
      });

      it('a client hanging up on SSE streams leaves nothing in the purgatory', async () => {
        const f = await fixture();
        const { id } = await submitHold(f);
        await post(`${f.base}/topics/t/records`, { value: 1 });
        const jobStream = await openSse(`${f.base}/jobs/${id}/events`);
        const topicStream = await openSse(`${f.base}/topics/t/events?offset=0`);
        await jobStream.waitForEvents(1);
        await topicStream.waitForEvents(1);
        await eventually(() => f.handler.heldRequests === 2 && f.purgatory.watched() >= 2);
        jobStream.abort();
        topicStream.abort();
        await eventually(() => idle(f), 3000, 'the purgatory to empty');
      });
    });

    describe('authorization', () => {
      it('hides one caller’s jobs from another: get, wait, cancel, forget, events and list', async () => {
        const f = await fixture({ authorize: bearerAuthorize });
        const { id, version } = await submitHold(f, bearer('alice'));
        const url = `${f.base}/jobs/${id}`;
        expect((await call(url, { headers: bearer('alice') })).status).toBe(200);
        expect((await call(url, { headers: bearer('bob') })).status).toBe(404);
        expect((await call(`${url}?version=${version}&wait=5`, { headers: bearer('bob') })).status).toBe(404);
        expect((await call(`${url}:cancel`, { method: 'POST', headers: bearer('bob') })).status).toBe(404);
        expect((await call(url, { method: 'DELETE', headers: bearer('bob') })).status).toBe(404);
        expect((await call(`${url}/events`, { headers: bearer('bob') })).status).toBe(404);
        expect((await call(`${f.base}/jobs`, { headers: bearer('bob') })).body.jobs).toEqual([]);
        expect(
          (await call(`${f.base}/jobs`, { headers: bearer('alice') })).body.jobs.map((j: { id: string }) => j.id),
        ).toEqual([id]);
        expect((await call(url, { headers: bearer('alice') })).body.status).toBe('running');
      });

      it('hides topics a caller may not read (404, never 403) and limits appends', async () => {
        const f = await fixture({ authorize: bearerAuthorize, publicAppends: false });
        f.topics.topic('secret.plans');
        f.topics.topic('news');
        expect(
          (await call(`${f.base}/topics/secret.plans/records?offset=0`, { headers: bearer('carol') })).status,
        ).toBe(404);
        expect((await call(`${f.base}/topics/secret.plans/events`, { headers: bearer('carol') })).status).toBe(404);
        expect((await post(`${f.base}/topics/secret.plans/records`, { value: 1 }, bearer('carol'))).status).toBe(404);
        expect(
          (await call(`${f.base}/topics/secret.plans/records?offset=0`, { headers: bearer('alice') })).status,
        ).toBe(200);
        expect((await post(`${f.base}/topics/news/records`, { value: 1 }, bearer('carol'))).status).toBe(403);
        expect((await post(`${f.base}/topics/chat.room/records`, { value: 1 }, bearer('carol'))).status).toBe(201);
        expect((await post(`${f.base}/topics/news/records`, { value: 1 }, bearer('alice'))).status).toBe(403);
      });
    });
  });
}
