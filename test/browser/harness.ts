/**
 * Runs pollkit's client code in headless Chromium (Debian's package, driven by playwright-core)
 * against servers on this machine. A test bundles a browser script with esbuild, serves it beside its
 * own routes on port 0, and reads what the page reports through `window.__pollkit`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { type Browser, chromium, type Page } from 'playwright-core';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Chromium's path: CHROMIUM_PATH, or Debian's package. */
export const chromiumPath = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

/** Flags that keep Chromium quiet on a machine with no network but loopback. */
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath, headless: true, args: FLAGS });
}

/** Bundles a browser script; `pollkit` and its subpaths resolve to the source, as in the unit tests. */
export async function bundle(entry: string): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    logLevel: 'silent',
    alias: {
      pollkit: `${root}src/index.ts`,
      'pollkit/client': `${root}src/client/index.ts`,
    },
  });
  return result.outputFiles[0]!.text;
}

export type Route = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

/** A page server on 127.0.0.1 port 0: `/` is a blank page that loads `/app.js`; other paths go to `route`. */
export async function servePage(
  script: string,
  route?: Route,
): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    void (async () => {
      const path = req.url?.split('?')[0];
      if (path === '/' || path === '/index.html') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(
          '<!doctype html><meta charset="utf-8"><title>pollkit</title><script type="module" src="/app.js"></script>',
        );
        return;
      }
      if (req.url === '/app.js') {
        res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
        res.end(script);
        return;
      }
      if (route && (await route(req, res))) return;
      res.writeHead(404).end();
    })().catch((error: unknown) => {
      res.writeHead(500).end(String(error));
    });
  });
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Waits for the page to set `window.__pollkit.done` and returns what it reported. */
export async function pageResult<T>(page: Page, timeoutMs = 15_000): Promise<T> {
  await page.waitForFunction(
    () => (window as unknown as { __pollkit?: { done?: boolean } }).__pollkit?.done === true,
    undefined,
    {
      timeout: timeoutMs,
    },
  );
  return page.evaluate(() => (window as unknown as { __pollkit: T }).__pollkit);
}
