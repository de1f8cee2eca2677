/**
 * followJob and subscribeTopic in headless Chromium, from a page on one origin against a pollkit server
 * on another (CORS), over each transport and through the fallbacks (WebSocket refused → SSE; SSE cut
 * again and again → long polling), while the server restarts under them: every record arrives once, in
 * order, and the job is followed to its result.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { createNodeListener } from '../../src/adapters/node.js';
import { PollkitWebSocketServer } from '../../src/adapters/ws.js';
import { sleep } from '../../src/core/abort.js';
import { JobRegistry, PollkitHandler, TopicRegistry } from '../../src/server/index.js';
import { bundle, launchBrowser, servePage } from './harness.js';
import type { Report } from './pages/cross-origin-page.js';

let browser: Browser;
let script: string;
beforeAll(async () => {
  browser = await launchBrowser();
  script = await bundle(new URL('./pages/cross-origin-page.ts', import.meta.url).pathname);
});
afterAll(async () => {
  await browser?.close();
});

interface Api {
  readonly url: string;
  restart(): Promise<void>;
  close(): Promise<void>;
  readonly topics: TopicRegistry;
}

/** pollkit on its own origin, allowing `pageOrigin`; `refuseWebSockets` and `cutSse` break a transport. */
async function startApi(
  pageOrigin: string,
  options: { refuseWebSockets?: boolean; cutSse?: boolean } = {},
): Promise<Api> {
  const jobs = new JobRegistry({ progressIntervalMs: 0 }).define<{ steps: number }, { steps: number }>(
    'count',
    async ({ input, reportProgress, signal }) => {
      for (let step = 1; step <= input.steps; step++) {
        await sleep(150, { signal });
        reportProgress({ percent: (step / input.steps) * 100 });
      }
      return { steps: input.steps };
    },
  );
  const topics = new TopicRegistry();
  const handler = new PollkitHandler({
    jobs,
    topics,
    autoCreateTopics: true,
    sseRetryMs: 100,
    heartbeatMs: 1000,
    cors: { origins: [pageOrigin] },
  });
  const listener = createNodeListener(handler);
  const server: Server = createServer((req, res) => {
    if (options.cutSse === true && req.url?.includes('/topics/') && req.url.includes('/events')) {
      // The stream opens, then the connection dies a moment later: a proxy that breaks streaming.
      setTimeout(() => req.socket.destroy(), 150);
    }
    listener(req, res);
  });
  const wss = new WebSocketServer({ noServer: true });
  const sockets = new PollkitWebSocketServer(wss, handler);
  server.on('upgrade', (request, socket, head) => {
    if (options.refuseWebSockets === true || !sockets.handleUpgrade(request, socket, head)) socket.destroy();
  });
  const open = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const down = (): Promise<void> =>
    new Promise((resolve) => {
      for (const client of wss.clients) client.terminate();
      for (const socket of open) socket.destroy();
      server.close(() => resolve());
    });
  return {
    // "localhost" against the page's 127.0.0.1: another origin.
    url: `http://localhost:${port}`,
    topics,
    async restart() {
      await down();
      await sleep(300);
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    },
    async close() {
      await down();
      wss.close();
      await handler.close();
      await jobs.close();
      await topics.close();
    },
  };
}

const read = (tab: Page): Promise<Report> => tab.evaluate(() => (window as unknown as { __pollkit: Report }).__pollkit);

async function until(tab: Page, check: (report: Report) => boolean, what: string, timeoutMs = 20_000): Promise<Report> {
  const started = Date.now();
  for (;;) {
    const report = await read(tab);
    if (report.error !== undefined) throw new Error(`the page failed: ${report.error}`);
    if (check(report)) return report;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(report)}`);
    await sleep(50);
  }
}

async function scenario(
  topic: 'auto' | readonly string[],
  job: 'auto' | readonly string[],
  options: { refuseWebSockets?: boolean; cutSse?: boolean } = {},
  settled: (report: Report) => boolean = () => true,
): Promise<Report> {
  const page = await servePage(script);
  const api = await startApi(new URL(page.url).origin, options);
  const tab = await browser.newPage();
  try {
    const log = api.topics.topic<number>('t');
    await log.append(0);
    const query = new URLSearchParams({ api: api.url, topic: JSON.stringify(topic), job: JSON.stringify(job) });
    await tab.goto(`${page.url}?${query.toString()}`);
    await until(tab, (r) => r.ready === true && r.values.length === 1, 'the first record and the submit');
    let next = 1;
    for (let restart = 0; restart < 2; restart++) {
      for (let i = 0; i < 5; i++) await log.append(next++);
      await sleep(200);
      await api.restart();
      for (let i = 0; i < 5; i++) await log.append(next++);
    }
    // Where the transports should end up (a fallback done), then a last record over it.
    await until(tab, settled, 'the transports to settle');
    await log.append(next++);
    return await until(tab, (r) => r.values.length >= next && r.job !== undefined, `${next} records and the job`);
  } finally {
    await tab.close();
    await api.close();
    await page.close();
  }
}

function expectExactlyOnceInOrder(report: Report): void {
  expect(report.values).toEqual(Array.from({ length: 22 }, (_, i) => i));
  expect(report.job).toEqual({ steps: 8 });
  expect(report.progress.at(-1)).toBe(100);
}

describe('a page on another origin, across server restarts', () => {
  it('over WebSocket (auto), with the job over SSE (auto)', async () => {
    const report = await scenario('auto', 'auto');
    expectExactlyOnceInOrder(report);
    expect(new Set(report.transports)).toEqual(new Set(['websocket']));
    expect(report.jobTransport).toBe('sse');
  });

  it('over SSE, with the job over long polling', async () => {
    const report = await scenario(['sse'], ['long-poll']);
    expectExactlyOnceInOrder(report);
    expect(new Set(report.transports)).toEqual(new Set(['sse']));
    expect(report.jobTransport).toBe('long-poll');
  });

  it('over long polling, with the job over short polling', async () => {
    const report = await scenario(['long-poll'], ['poll']);
    expectExactlyOnceInOrder(report);
    expect(new Set(report.transports)).toEqual(new Set(['long-poll']));
    expect(report.jobTransport).toBe('poll');
  });

  it('falls back from a refused WebSocket to SSE', async () => {
    const report = await scenario('auto', 'auto', { refuseWebSockets: true }, (r) => r.fallbacks.length > 0);
    expectExactlyOnceInOrder(report);
    expect(report.fallbacks[0]).toBe('websocket>sse');
    expect(report.transports.at(-1)).toBe('sse');
  });

  it('falls back from an SSE stream cut again and again to long polling', async () => {
    const report = await scenario(['sse', 'long-poll'], 'auto', { cutSse: true }, (r) =>
      r.fallbacks.includes('sse>long-poll'),
    );
    expectExactlyOnceInOrder(report);
    expect(report.fallbacks).toContain('sse>long-poll');
    expect(report.transports.at(-1)).toBe('long-poll');
  });
});
