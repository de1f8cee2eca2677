/**
 * The browser examples in headless Chromium: each example's own server bundles and serves its page,
 * and the test drives the page as a person would. A screenshot of each lands in test-results/.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { start as startChat } from '../../examples/chat/server.js';
import { start as startNotifications } from '../../examples/notifications/server.js';
import { start as startUploads } from '../../examples/upload-progress/server.js';
import { start as startTranscode } from '../../examples/bullmq-transcode/server.js';
import { startWorker as startTranscodeWorker } from '../../examples/bullmq-transcode/worker.js';
import { startRedis } from '../redis/helpers/redis-server.js';
import { launchBrowser } from './harness.js';

const results = fileURLToPath(new URL('../../test-results/', import.meta.url));
let browser: Browser;
beforeAll(async () => {
  mkdirSync(results, { recursive: true });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
});

/** Uncaught errors per page, which each test expects to be none. */
const errorsOf = new WeakMap<Page, string[]>();

async function openPage(url: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  errorsOf.set(page, errors);
  await page.goto(url);
  return page;
}

const pageErrors = (page: Page): string[] => errorsOf.get(page) ?? [];

describe('browser examples', () => {
  it('upload-progress: the bar reaches 100 % by short polling and by SSE, and cancel works', async () => {
    const server = await startUploads({ chunkBytes: 32 * 1024, stepDelayMs: 30 });
    try {
      const page = await openPage(server.url);
      const file = { name: 'photo.raw', mimeType: 'application/octet-stream', buffer: Buffer.alloc(256 * 1024, 7) };

      for (const mode of ['poll', 'sse'] as const) {
        await page.check(`input[name="mode"][value="${mode}"]`);
        await page.setInputFiles('#file', file);
        await page.click('#upload');
        await page.waitForFunction(() => document.getElementById('status')?.textContent === 'succeeded', undefined, {
          timeout: 20_000,
        });
        expect(await page.$eval('#bar', (bar) => (bar as HTMLProgressElement).value)).toBe(100);
        expect(await page.textContent('#result')).toContain('photo.raw: 262144 bytes');
        if (mode === 'poll') await page.screenshot({ path: join(results, 'example-upload-progress.png') });
      }
      expect(await page.textContent('#log')).toMatch(/short polling: \d+ requests/);
      expect(await page.textContent('#log')).toMatch(/server-sent events: 1 stream/);

      // Cancel: a larger file, canceled once the bar has started moving.
      await page.check('input[name="mode"][value="poll"]');
      await page.setInputFiles('#file', { ...file, buffer: Buffer.alloc(4 * 1024 * 1024, 1) });
      await page.click('#upload');
      await page.waitForFunction(() => (document.getElementById('bar') as HTMLProgressElement).value > 0);
      await page.click('#cancel');
      await page.waitForFunction(() => document.getElementById('status')?.textContent === 'canceled', undefined, {
        timeout: 20_000,
      });
      expect(await page.textContent('#result')).toContain('canceled');
      expect(pageErrors(page)).toEqual([]);
      await page.close();
    } finally {
      await server.close();
    }
  });

  it('bullmq-transcode: the bar reaches 100 % by short polling and by SSE while two BullMQ workers transcode, and cancel works', async () => {
    const redis = await startRedis();
    const queue = 'transcode-browser';
    const server = await startTranscode({ redisUrl: redis.url, queue });
    const workers = await Promise.all(
      ['w1', 'w2'].map((name) => startTranscodeWorker({ redisUrl: redis.url, queue, name, sliceMs: 40 })),
    );
    try {
      const page = await openPage(server.url);
      for (const mode of ['poll', 'sse'] as const) {
        await page.check(`input[name="mode"][value="${mode}"]`);
        await page.click('#start');
        await page.waitForFunction(() => document.getElementById('status')?.textContent === 'succeeded', undefined, {
          timeout: 20_000,
        });
        expect(await page.$eval('#bar', (bar) => (bar as HTMLProgressElement).value)).toBe(100);
        expect(await page.textContent('#result')).toMatch(
          /holiday\.mov\.480p\.mp4, holiday\.mov\.1080p\.mp4 \(by w[12]\)/,
        );
        if (mode === 'sse') await page.screenshot({ path: join(results, 'example-bullmq-transcode.png') });
      }
      await page.fill('#renditions', '2160p, 1440p, 1080p, 720p');
      await page.click('#start');
      await page.waitForFunction(() => (document.getElementById('bar') as HTMLProgressElement).value > 0);
      await page.click('#cancel');
      await page.waitForFunction(() => document.getElementById('status')?.textContent === 'canceled', undefined, {
        timeout: 20_000,
      });
      expect(await page.textContent('#result')).toContain('canceled');
      expect(pageErrors(page)).toEqual([]);
      await page.close();
    } finally {
      await server.close();
      await Promise.all(workers.map((worker) => worker.close()));
      await redis.stop();
    }
  });

  it('chat: a message sent in one tab appears in a second tab, by long polling and by WebSocket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pollkit-chat-browser-'));
    const server = await startChat({ dataFile: join(dir, 'chat.json') });
    try {
      const ada = await openPage(`${server.url}?room=browser&name=ada`);
      const bob = await openPage(`${server.url}?room=browser&name=bob&transport=websocket`);
      expect(await bob.textContent('#transport')).toBe('WebSocket');
      await ada.fill('#text', 'hello from ada');
      await ada.press('#text', 'Enter');
      await bob.waitForSelector('#messages li:has-text("ada: hello from ada")');
      await bob.fill('#text', 'hi ada, bob here');
      await bob.click('button[type="submit"]');
      await ada.waitForSelector('#messages li:has-text("bob: hi ada, bob here")');
      for (const page of [ada, bob]) {
        const items = await page.$$eval('#messages li', (nodes) => nodes.map((node) => node.textContent));
        expect(items).toEqual(['#0ada: hello from ada', '#1bob: hi ada, bob here']);
      }
      await bob.screenshot({ path: join(results, 'example-chat.png') });
      expect([...pageErrors(ada), ...pageErrors(bob)]).toEqual([]);
      await ada.close();
      await bob.close();
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('notifications: EventSource and the Subscriber resume after a forced disconnect', async () => {
    const server = await startNotifications({ heartbeatMs: 1000, retryMs: 200 });
    try {
      const page = await openPage(server.url);
      type Seen = { native: number[]; pollkit: number[]; opens: { native: number; pollkit: number } };
      const seen = (): Promise<Seen> =>
        page.evaluate(() => (window as unknown as { __notifications: Seen }).__notifications);
      await page.waitForFunction(() => {
        const state = (window as unknown as { __notifications?: Seen }).__notifications;
        return state !== undefined && state.opens.native === 1 && state.opens.pollkit === 1;
      });
      for (let i = 0; i < 3; i++) await server.notify({ text: `before the cut ${i}`, level: 'info' });
      await page.waitForFunction(() => {
        const state = (window as unknown as { __notifications: Seen }).__notifications;
        return state.native.length === 3 && state.pollkit.length === 3;
      });

      expect(server.dropConnections()).toBeGreaterThanOrEqual(2);
      for (let i = 0; i < 3; i++) await server.notify({ text: `during the cut ${i}`, level: 'warning' });
      await page.waitForFunction(
        () => {
          const state = (window as unknown as { __notifications: Seen }).__notifications;
          return (
            state.opens.native >= 2 && state.opens.pollkit >= 2 && state.native.length >= 6 && state.pollkit.length >= 6
          );
        },
        undefined,
        { timeout: 20_000 },
      );
      await server.notify({ text: 'after the cut', level: 'info' });
      await page.waitForFunction(() => {
        const state = (window as unknown as { __notifications: Seen }).__notifications;
        return state.native.length >= 7 && state.pollkit.length >= 7;
      });
      const result = await seen();
      expect(result.native).toEqual([0, 1, 2, 3, 4, 5, 6]);
      expect(result.pollkit).toEqual([0, 1, 2, 3, 4, 5, 6]);
      await page.screenshot({ path: join(results, 'example-notifications.png') });
      expect(pageErrors(page)).toEqual([]);
      await page.close();
    } finally {
      await server.close();
    }
  });
});
