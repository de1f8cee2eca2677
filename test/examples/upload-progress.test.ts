import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { JobClient, type JobSnapshot, SseTransport, Subscriber, pollJob } from 'pollkit/client';
import { type UploadProgressServer, type UploadResult, start } from '../../examples/upload-progress/server.js';

let server: UploadProgressServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function upload(
  base: string,
  bytes: Buffer,
  name = 'file.bin',
): Promise<{ job: JobSnapshot; location: string; response: Response }> {
  const response = await fetch(new URL(`/upload?name=${name}`, base), { method: 'POST', body: new Uint8Array(bytes) });
  const job = (await response.json()) as JobSnapshot;
  return { job, location: response.headers.get('operation-location') ?? '', response };
}

describe('examples/upload-progress', () => {
  it('answers an upload with 202 and a job that short polling follows to 100 %', async () => {
    server = await start({ chunkBytes: 64 * 1024, stepDelayMs: 20 });
    const bytes = randomBytes(300 * 1024);
    const { job, location, response } = await upload(server.url, bytes);
    expect(response.status).toBe(202);
    expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(response.headers.get('location')).toBe(location);
    expect(location).toBe(new URL(`/pollkit/jobs/${job.id}`, server.url).toString());
    expect(['queued', 'running']).toContain(job.status);

    const poller = pollJob<UploadResult>(location);
    const percents: number[] = [];
    poller.on('progress', (progress) => percents.push((progress as { percent: number }).percent));
    const done = await poller.result();
    expect(done.status).toBe('succeeded');
    expect(done.result).toEqual({
      name: 'file.bin',
      size: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    });
    expect(percents.at(-1)).toBe(100);
    expect([...percents].sort((a, b) => a - b)).toEqual(percents); // never goes backwards
  });

  it("streams the job's changes as server-sent events until the terminal one", async () => {
    server = await start({ chunkBytes: 32 * 1024, stepDelayMs: 20 });
    const { location } = await upload(server.url, randomBytes(200 * 1024));
    const subscriber = new Subscriber<JobSnapshot>({
      transports: new SseTransport({ url: `${location}/events`, decode: (data) => JSON.parse(data) as JobSnapshot }),
    });
    const seen: JobSnapshot[] = [];
    await new Promise<void>((resolve) => {
      subscriber.on('message', ({ data }) => {
        seen.push(data);
        if (data.done) resolve();
      });
      subscriber.start();
    });
    subscriber.close();
    expect(seen.at(-1)?.status).toBe('succeeded');
    const versions = seen.map((job) => job.version);
    expect(new Set(versions).size).toBe(versions.length);
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
  });

  it('cancels a running job, which the poller then sees', async () => {
    server = await start({ chunkBytes: 16 * 1024, stepDelayMs: 50 });
    const { job, location } = await upload(server.url, randomBytes(1024 * 1024));
    const poller = pollJob(location, { rejectOnFailure: false, interval: 50 });
    const running = new Promise<void>((resolve) =>
      poller.on('update', (value) => value.status === 'running' && resolve()),
    );
    poller.start();
    await running;
    const canceled = await new JobClient({ baseUrl: server.url }).cancel(job.id);
    expect(canceled.status).toBe('canceled');
    const final = await poller.result();
    expect(final.status).toBe('canceled');
    expect(final.error?.code).toBe('canceled');
  });

  it('serves the page and its bundled module', async () => {
    server = await start();
    const page = await fetch(server.url);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('<progress id="bar"');
    const script = await fetch(new URL('/app.js', server.url));
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toContain('javascript');
    expect(await script.text()).toContain('operation-location');
    expect((await fetch(new URL('/nope', server.url))).status).toBe(404);
  });
});
