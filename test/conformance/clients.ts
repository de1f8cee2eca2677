/**
 * Conformance with clients nobody here wrote: the `eventsource` npm package (WHATWG EventSource)
 * resuming both SSE endpoints with `Last-Event-ID` across a server-forced disconnect, and `curl`
 * performing submit → conditional long poll → 304 → change → 200.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { EventSource, type FetchLike } from 'eventsource';
import { describe, expect, it } from 'vitest';
import type { StartServer } from '../helpers/http-server.js';
import { type Fixture, eventually, post, startFixture } from './fixture.js';

const run = promisify(execFile);

interface Recorded {
  readonly source: EventSource;
  readonly messages: MessageEvent[];
  /** The Last-Event-ID sent by each connection attempt (undefined for the first). */
  readonly attempts: (string | undefined)[];
  /** The status of each connection attempt. */
  readonly statuses: number[];
}

/** An EventSource whose connection attempts are observed through its `fetch` option. */
function record(url: string, events: readonly string[]): Recorded {
  const attempts: (string | undefined)[] = [];
  const statuses: number[] = [];
  const observingFetch: FetchLike = async (input, init) => {
    const headers = new Headers(init.headers as Record<string, string>);
    attempts.push(headers.get('last-event-id') ?? undefined);
    const response = await fetch(input, init as RequestInit);
    statuses.push(response.status);
    return response as unknown as Awaited<ReturnType<FetchLike>>;
  };
  const source = new EventSource(url, { fetch: observingFetch });
  const messages: MessageEvent[] = [];
  for (const type of events) source.addEventListener(type, (event) => messages.push(event));
  return { source, messages, attempts, statuses };
}

async function untilRunning(fixture: Fixture, id: string): Promise<number> {
  for (;;) {
    const job = await fixture.jobs.get(id);
    if (job?.status === 'running' && job.progress !== null) return job.version;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Registers the third-party client tests for one adapter. */
export function describeClientConformance(name: string, start: StartServer): void {
  describe(`third-party clients: ${name}`, () => {
    it('EventSource resumes a topic stream from Last-Event-ID after the server drops it', async () => {
      const f = await startFixture(start, { sseRetryMs: 20 });
      for (const value of ['a', 'b', 'c']) await post(`${f.base}/topics/feed/records`, { value });
      const es = record(`${f.base}/topics/feed/events?offset=0`, ['message']);
      try {
        await eventually(() => es.messages.length === 3, 3000, 'three messages');
        const { epoch } = await f.topics.topic('feed').position();
        expect(es.messages.map((m) => m.lastEventId)).toEqual(['0', '1', '2'].map((o) => `${o}@${epoch}`));
        for (const socket of f.server.sockets) socket.destroy();
        // Appended in-process: the test's own keep-alive sockets were just destroyed too.
        await f.topics.topic('feed').append('d');
        await f.topics.topic('feed').append('e');
        await eventually(() => es.messages.length === 5, 5000, 'the resumed messages');
        expect(es.messages.map((m) => JSON.parse(m.data as string).value)).toEqual(['a', 'b', 'c', 'd', 'e']);
        expect(es.attempts[0]).toBeUndefined();
        expect(es.attempts.at(-1)).toBe(`2@${epoch}`);
        expect(es.statuses.every((status) => status === 200)).toBe(true);
      } finally {
        es.source.close();
      }
      await eventually(() => f.handler.heldRequests === 0 && f.purgatory.watched() === 0);
    });

    it('EventSource that reconnects across a log reset sees a reset event, then the new log from its start', async () => {
      const f = await startFixture(start, { sseRetryMs: 20 });
      for (const value of ['a', 'b', 'c']) await post(`${f.base}/topics/feed/records`, { value });
      const es = record(`${f.base}/topics/feed/events?offset=0`, ['message', 'reset']);
      try {
        await eventually(() => es.messages.length === 3, 3000, 'three messages');
        const before = (await f.topics.topic('feed').position()).epoch;
        for (const socket of f.server.sockets) socket.destroy();
        // While it is away the log starts over: offsets 0.. again, in a new epoch.
        await f.topics.topic('feed').reset();
        await f.topics.topic('feed').append('x');
        await f.topics.topic('feed').append('y');
        await eventually(() => es.messages.length === 6, 5000, 'the reset and the new log');
        const after = (await f.topics.topic('feed').position()).epoch;
        expect(after).not.toBe(before);
        const [reset, x, y] = es.messages.slice(3);
        expect(reset!.type).toBe('reset');
        expect(JSON.parse(reset!.data as string)).toMatchObject({
          code: 'offset-gone',
          epoch: after,
          earliestOffset: 0,
          previousEpoch: before,
          requestedOffset: 3,
        });
        expect([x!.lastEventId, JSON.parse(x!.data as string).value]).toEqual([`0@${after}`, 'x']);
        expect([y!.lastEventId, JSON.parse(y!.data as string).value]).toEqual([`1@${after}`, 'y']);
        expect(es.statuses.every((status) => status === 200)).toBe(true);
      } finally {
        es.source.close();
      }
      await eventually(() => f.handler.heldRequests === 0 && f.purgatory.watched() === 0);
    });

    it('EventSource follows a job across a dropped connection and stops at 204 after the terminal event', async () => {
      const f = await startFixture(start, { sseRetryMs: 20 });
      const submitted = await post(`${f.base}/jobs`, { type: 'hold', input: {} });
      const id = submitted.body.id as string;
      const version = await untilRunning(f, id);
      const es = record(`${f.base}/jobs/${id}/events`, ['state', 'progress']);
      const closed = new Promise<void>((resolve) => {
        es.source.addEventListener('error', () => {
          if (es.source.readyState === EventSource.CLOSED) resolve();
        });
      });
      try {
        await eventually(() => es.messages.length === 1, 3000, 'the first state');
        expect(es.messages[0]!.lastEventId).toBe(String(version));
        for (const socket of f.server.sockets) socket.destroy();
        f.release(id, 'finished');
        await closed;
        const last = es.messages.at(-1)!;
        expect(last.type).toBe('state');
        expect(JSON.parse(last.data as string)).toMatchObject({ status: 'succeeded', result: 'finished' });
        expect(es.attempts[1]).toBe(String(version));
        expect(es.attempts.at(-1)).toBe(last.lastEventId);
        expect(es.statuses.at(-1)).toBe(204);
      } finally {
        es.source.close();
      }
      await eventually(() => f.handler.heldRequests === 0 && f.purgatory.watched() === 0);
    });

    it('curl: submit, conditional long poll, 304, change, 200', async () => {
      const f = await startFixture(start);
      const curl = async (
        ...args: string[]
      ): Promise<{ status: number; headers: Record<string, string>; body: string }> => {
        const { stdout } = await run('curl', ['-s', '-i', '--max-time', '20', ...args]);
        const [head = '', ...rest] = stdout.split('\r\n\r\n');
        const [statusLine = '', ...lines] = head.split('\r\n');
        const headers: Record<string, string> = {};
        for (const line of lines) {
          const colon = line.indexOf(':');
          headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
        }
        return { status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') };
      };
      const submitted = await curl(
        '-X',
        'POST',
        '-H',
        'content-type: application/json',
        '--data',
        '{"type":"hold","input":{"x":1}}',
        `${f.base}/jobs`,
      );
      expect(submitted.status).toBe(202);
      const location = submitted.headers['operation-location']!;
      expect(location).toBe(submitted.headers['location']);
      const id = (JSON.parse(submitted.body) as { id: string }).id;
      const version = await untilRunning(f, id);
      const etag = `"${version}"`;
      const notModified = await curl('-H', `If-None-Match: ${etag}`, '-H', 'Prefer: wait=0.2', location);
      expect(notModified.status).toBe(304);
      expect(notModified.headers['etag']).toBe(etag);
      expect(notModified.headers['preference-applied']).toBe('wait=0.2');
      const held = curl('-H', `If-None-Match: ${etag}`, '-H', 'Prefer: wait=15', location);
      await eventually(() => f.handler.heldRequests === 1, 5000, 'curl to be held');
      f.release(id, 'done');
      const changed = await held;
      expect(changed.status).toBe(200);
      expect(JSON.parse(changed.body)).toMatchObject({ id, status: 'succeeded', result: 'done' });
      expect(changed.headers['etag']).not.toBe(etag);
    });
  });
}
