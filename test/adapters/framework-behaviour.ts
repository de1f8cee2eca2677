/**
 * Behaviour every framework adapter must show beyond the protocol itself: server-sent events leave the
 * framework one by one (nothing buffers them), many clients hanging up at once leave nothing held, and
 * methods the framework would normally answer itself still reach the handler.
 */
import { describe, expect, it } from 'vitest';
import { call, eventually, idle, post, startFixture } from '../conformance/fixture.js';
import type { StartServer } from '../helpers/http-server.js';
import { openSse } from '../helpers/sse-client.js';

/** Registers the shared adapter tests for one framework. */
export function describeFrameworkBehaviour(name: string, start: StartServer): void {
  describe(`framework behaviour: ${name}`, () => {
    it('streams each topic event as it happens, unbuffered', async () => {
      const f = await startFixture(start);
      f.topics.topic('live');
      const stream = await openSse(`${f.base}/topics/live/events?offset=0`);
      try {
        expect(stream.status).toBe(200);
        expect(stream.headers.get('x-accel-buffering')).toBe('no');
        expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
        for (let i = 0; i < 3; i++) {
          await f.topics.topic('live').append({ i });
          // Each event must arrive before the next append: nothing may sit in a framework buffer.
          await stream.waitForEvents(i + 1);
          expect(JSON.parse(stream.events[i]!.data)).toMatchObject({ offset: i, value: { i } });
        }
      } finally {
        stream.abort();
      }
      await eventually(() => idle(f), 3000, 'the stream to be released');
    });

    it('releases every held request when 50 clients hang up at once', async () => {
      const f = await startFixture(start);
      f.topics.topic('quiet');
      const controllers = Array.from({ length: 50 }, () => new AbortController());
      const polls = controllers.map((controller) =>
        fetch(`${f.base}/topics/quiet/records?offset=0&wait=20`, { signal: controller.signal }).catch(() => undefined),
      );
      await eventually(() => f.handler.heldRequests === 50, 5000, '50 held requests');
      for (const controller of controllers) controller.abort();
      await Promise.all(polls);
      await eventually(() => idle(f), 5000, 'the purgatory to empty');
      expect(f.purgatory.metrics().pending).toBe(0);
    });

    it('answers a held poll on a kept-alive connection and serves the next request on it', async () => {
      const f = await startFixture(start);
      f.topics.topic('k');
      const held = call(`${f.base}/topics/k/records?offset=0&wait=5`);
      await eventually(() => f.handler.heldRequests === 1);
      await f.topics.topic('k').append('v');
      const answer = await held;
      expect(answer.status).toBe(200);
      expect(answer.body.records).toHaveLength(1);
      const next = await call(`${f.base}/topics/k/records?offset=1`);
      expect(next.status).toBe(200);
      expect(next.body.records).toEqual([]);
    });

    it('lets the handler answer methods and paths the framework would otherwise claim', async () => {
      const f = await startFixture(start);
      const put = await call(`${f.base}/jobs`, { method: 'PUT' });
      expect(put.status).toBe(405);
      expect(put.headers.get('allow')).toBe('GET, POST, HEAD, OPTIONS');
      expect(put.body.code).toBe('method-not-allowed');
      // Methods the framework does not route itself (WebDAV's, QUERY) get pollkit's 405 too, not its 404.
      for (const method of ['PROPFIND', 'PURGE', 'SEARCH']) {
        const other = await call(`${f.base}/jobs`, { method });
        expect({ method, status: other.status, allow: other.headers.get('allow') }).toEqual({
          method,
          status: 405,
          allow: 'GET, POST, HEAD, OPTIONS',
        });
        expect(other.body.code).toBe('method-not-allowed');
      }
      const unknown = await call(`${f.base}/nothing/here`);
      expect(unknown.status).toBe(404);
      expect(unknown.body.code).toBe('not-found');
      const cancel = await post(`${f.base}/jobs/does-not-exist:cancel`, {});
      expect(cancel.status).toBe(404);
      expect(cancel.body.code).toBe('job-not-found');
    });
  });
}
