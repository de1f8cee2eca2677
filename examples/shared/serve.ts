/**
 * What every example server shares and none of them is about: listening on a port (0 by default) with
 * a `close()` that also ends held requests, and serving a page whose TypeScript module is bundled with
 * esbuild when it is first asked for — so the browser examples need no build step.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/** Options every example's `start()` accepts. */
export interface ListenOptions {
  /** The port to listen on; `0` picks a free one. Default `0`. */
  readonly port?: number;
  /** The interface to listen on. Default `'127.0.0.1'`. */
  readonly host?: string;
}

/** A running example: where it listens, and how to stop it. */
export interface Running {
  /** The server's base URL, ending in `/`. */
  readonly url: string;
  /** Stops the server; held requests and open streams are ended. */
  close(): Promise<void>;
}

/** A listening `node:http` server whose `close()` also destroys idle and held connections. */
export interface Listening extends Running {
  readonly server: Server;
  readonly port: number;
  /** Destroys every open connection without stopping the server, as a network cut would; returns how many. */
  dropConnections(): number;
}

/**
 * Creates a `node:http` server for `listener` and listens; `close()` waits for the sockets to go.
 *
 * @example
 * ```ts
 * const { url, close } = await listen((req, res) => res.end('hi'), { port: 0 });
 * ```
 */
export async function listen(listener: RequestListener | Server, options: ListenOptions = {}): Promise<Listening> {
  const server = typeof listener === 'function' ? createServer(listener) : listener;
  // A held long poll keeps its socket busy, and server.close() would wait for it: track sockets.
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    server,
    port,
    url: `http://${shown}:${port}/`,
    dropConnections: () => {
      const count = sockets.size;
      for (const socket of sockets) socket.destroy();
      return count;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/**
 * Serves one browser page: `GET /` answers `index.html` from `dir`, `GET /app.js` the bundle of
 * `app.ts` from `dir` (built once, on first request). Returns true when it answered.
 *
 * @example
 * ```ts
 * const page = pageRoute(new URL('.', import.meta.url));
 * createServer((req, res) => void page(req, res).then((done) => done || res.writeHead(404).end()));
 * ```
 */
export function pageRoute(dir: URL): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  let bundled: Promise<string> | undefined;
  return async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    if (path === '/' || path === '/index.html') {
      const html = await readFile(new URL('index.html', dir), 'utf8');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
      return true;
    }
    if (path === '/app.js') {
      bundled ??= bundle(new URL('app.ts', dir));
      let code: string;
      try {
        code = await bundled;
      } catch (error) {
        bundled = undefined; // let a fixed file be bundled again
        throw error;
      }
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' }).end(code);
      return true;
    }
    return false;
  };
}

/** Bundles a browser module; `pollkit/client` resolves through the package (or tsconfig `paths` here). */
async function bundle(entry: URL): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(entry)],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

/**
 * Reads a request body up to `limit` bytes; rejects with a `RangeError` beyond it.
 *
 * @example
 * ```ts
 * const bytes = await readBody(req, 10 * 1024 * 1024);
 * ```
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new RangeError(`body larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * True when this module is the script Node was started with (`node --import tsx examples/x/server.ts`).
 *
 * @example
 * ```ts
 * if (isMain(import.meta.url)) await main();
 * ```
 */
export function isMain(moduleUrl: string): boolean {
  const script = process.argv[1];
  return script !== undefined && fileURLToPath(moduleUrl) === resolve(script);
}
