import { describe, expect, it } from 'vitest';
import { createFetchHandler } from '../../src/adapters/fetch.js';
import { PollkitHandler } from '../../src/server/http/handler.js';
import { JobRegistry } from '../../src/server/jobs/job-registry.js';
import { DelayedOperationPurgatory } from '../../src/server/purgatory/purgatory.js';
import { TopicRegistry } from '../../src/server/topics/topic-registry.js';
import { describeClientConformance } from '../conformance/clients.js';
import { describeConformance } from '../conformance/suite.js';
import { startFetchServer } from '../helpers/http-server.js';

describeConformance('fetch handler on @hono/node-server', startFetchServer);
describeClientConformance('fetch handler on @hono/node-server', startFetchServer);

describe('fetch handler specifics', () => {
  it('answers 413 to a streamed body over the limit, and 404 outside the prefix', async () => {
    const jobs = new JobRegistry().define('echo', ({ input }) => input);
    const handle = createFetchHandler(new PollkitHandler({ jobs, bodyLimitBytes: 1000 }));
    const chunk = new TextEncoder().encode('x'.repeat(400));
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        if (pulled > 100) controller.close();
        else controller.enqueue(chunk);
      },
    });
    const response = await handle(
      new Request('http://local/pollkit/jobs', {
        method: 'POST',
        body,
        duplex: 'half',
        headers: { 'content-type': 'application/json' },
      } as RequestInit),
    );
    expect(response.status).toBe(413);
    expect(pulled).toBeLessThan(10);
    expect((await handle(new Request('http://local/other'))).status).toBe(404);
    await jobs.close();
  });

  it('cancelling the response stream ends an SSE stream and its purgatory wait', async () => {
    const purgatory = new DelayedOperationPurgatory();
    const topics = new TopicRegistry({ purgatory });
    topics.topic('t');
    const handler = new PollkitHandler({ topics });
    const handle = createFetchHandler(handler);
    // A request whose signal never aborts: only the stream cancel tells the handler the client left.
    const response = await handle(new Request('http://local/pollkit/topics/t/events?offset=0'));
    expect(response.headers.get('x-accel-buffering')).toBe('no');
    const reader = response.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('retry: 3000\n\n');
    const next = reader.read();
    const started = Date.now();
    while (purgatory.watched() === 0 && Date.now() - started < 2000)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(handler.heldRequests).toBe(1);
    await reader.cancel();
    await next.catch(() => undefined);
    while ((purgatory.watched() > 0 || handler.heldRequests > 0) && Date.now() - started < 2000) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(handler.heldRequests).toBe(0);
    expect(purgatory.watched()).toBe(0);
    await topics.close();
  });
});
