/**
 * The same pollers as test/client/pollers.integration.test.ts, in headless Chromium, against a real
 * pollkit server that also serves the page (same origin).
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeListener } from '../../src/adapters/node.js';
import { sleep } from '../../src/core/abort.js';
import { PollkitHandler } from '../../src/server/http/handler.js';
import { JobRegistry } from '../../src/server/jobs/job-registry.js';
import { TopicRegistry } from '../../src/server/topics/topic-registry.js';
import { bundle, launchBrowser, pageResult, servePage } from './harness.js';

let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
});

describe('pollers in a browser', () => {
  it('follow jobs to success, failure and cancel, and consume a trimmed topic knowingly', async () => {
    const jobs = new JobRegistry({ progressIntervalMs: 0 })
      .define<{ steps: number }, { steps: number }>('count', async ({ input, reportProgress, signal }) => {
        for (let step = 1; step <= input.steps; step++) {
          await sleep(15, { signal });
          reportProgress({ percent: (step / input.steps) * 100 });
        }
        return { steps: input.steps };
      })
      .define('explode', async () => {
        await sleep(20);
        throw new Error('the transcoder caught fire');
      })
      .define('forever', ({ signal }) => sleep(60_000, { signal }));
    const topics = new TopicRegistry({ retention: { maxRecords: 10 } });
    const feed = topics.topic<number>('feed');
    for (let n = 0; n < 15; n++) await feed.append(n);
    const handler = new PollkitHandler({ jobs, topics });
    const listener = createNodeListener(handler);
    const page = await servePage(
      await bundle(new URL('./pages/pollers-page.ts', import.meta.url).pathname),
      (req, res) => {
        if (!req.url?.startsWith('/pollkit/')) return false;
        listener(req, res);
        return true;
      },
    );
    try {
      const tab = await browser.newPage();
      await tab.goto(page.url);
      const result = await pageResult<Record<string, unknown>>(tab, 30_000);
      expect(result['error']).toBeUndefined();
      expect(result['succeeded']).toEqual({ steps: 4 });
      expect((result['percents'] as number[]).at(-1)).toBe(100);
      expect(result['failed']).toContain('caught fire');
      expect(result['canceled']).toBe(true);
      expect(result['goneEarliest']).toBe(5);
      expect(result['records']).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
      await tab.close();
    } finally {
      await handler.close();
      await page.close();
      await jobs.close();
      await topics.close();
    }
  });
});
