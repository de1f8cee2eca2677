import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { bundle, launchBrowser, pageResult, servePage } from './harness.js';

let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
});

describe('the core in a browser', () => {
  it('backs off with jitter, sleeps, aborts and retries with browser timers and fetch', async () => {
    const script = await bundle(new URL('./pages/core-page.ts', import.meta.url).pathname);
    let calls = 0;
    const page = await servePage(script, (req, res) => {
      if (req.url !== '/flaky') return false;
      calls++;
      res.writeHead(calls < 3 ? 503 : 200, { 'content-type': 'text/plain' }).end(calls < 3 ? 'busy' : 'ok');
      return true;
    });
    try {
      const tab = await browser.newPage();
      await tab.goto(page.url);
      const result = await pageResult<{ firstDelays: number[]; aborted: string; retried: string; attempts: number }>(
        tab,
      );
      expect(new Set(result.firstDelays).size).toBeGreaterThan(990);
      expect(result.aborted).toBe('AbortError');
      expect(result.retried).toBe('ok');
      expect(result.attempts).toBe(3);
      await tab.close();
    } finally {
      await page.close();
    }
  });
});
