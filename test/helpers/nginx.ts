/**
 * Debian's nginx in front of a pollkit origin, for the shared-cache suite (`vitest.cdn.config.ts`)
 * and `npm run bench:cdn`: {@link pollkitNginxHttp} writes the configuration docs/cdn.md shows (a
 * default-suite test keeps the two identical), {@link startNginx} runs it in a temporary directory on a
 * free port, as test/redis/helpers start redis-server.
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';

/** What the `http {}` part of the configuration depends on. */
export interface PollkitNginxOptions {
  /** `host:port` of the pollkit origin (one `server` line of the upstream). */
  readonly origin: string;
  /** The `listen` parameter, e.g. `80` or `127.0.0.1:8081`. */
  readonly listen: string;
  /** The directory of the cache. */
  readonly cachePath: string;
  /** The handler's `prefix`. Default `/pollkit`. */
  readonly prefix?: string;
  /** The handler's `maxWaitSeconds`, which the lock and read timeouts must outlast. Default 30. */
  readonly maxWaitSeconds?: number;
}

/**
 * The `http {}` directives that put nginx in front of a pollkit origin: fetches of topics through a
 * cache that collapses identical requests, everything else straight through.
 */
export function pollkitNginxHttp(options: PollkitNginxOptions): string {
  const prefix = options.prefix ?? '/pollkit';
  const maxWait = options.maxWaitSeconds ?? 30;
  // The longest a held read can take: the wait cap plus the handler's jitter of up to 1/16.
  const hold = Math.ceil((maxWait * 17) / 16);
  const lock = hold + 5;
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return `# Topic fetches go through this cache; nginx decides from the origin's Cache-Control alone.
proxy_cache_path ${options.cachePath} levels=1:2 keys_zone=pollkit:10m max_size=1g inactive=10m use_temp_path=off;

# A held read without a cursor comes from a client that asks again with the same URL after an empty
# answer (written before cursors): it must neither be cached nor wait behind another's lock.
map "$arg_cursor|$arg_wait" $pollkit_skip_cache {
    default 0;
    "~^\\|." 1;
}

upstream pollkit_origin {
    server ${options.origin};
    keepalive 64;
}

server {
    listen ${options.listen};

    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    # A held read sends nothing for up to ${hold} s.
    proxy_read_timeout ${lock + 20}s;

    location ${prefix}/ {
        proxy_pass http://pollkit_origin;
    }

    location ~ ^${escaped}/topics/[^/]+/records$ {
        proxy_pass http://pollkit_origin;
        proxy_cache pollkit;
        # One request per URL goes to the origin; the others wait for its answer in the cache. They
        # must wait out a whole held read, and so must the lock itself.
        proxy_cache_lock on;
        proxy_cache_lock_timeout ${lock}s;
        proxy_cache_lock_age ${lock}s;
        proxy_cache_use_stale updating;
        proxy_cache_revalidate on;
        # A wait in Prefer is not in the URL. Private answers are no-store and never kept; skipping
        # requests with credentials also spares them the lock. Add $http_cookie if your authorize
        # hook reads cookies.
        proxy_cache_bypass $pollkit_skip_cache $http_prefer $http_authorization;
        proxy_no_cache $pollkit_skip_cache $http_prefer $http_authorization;
        add_header X-Cache-Status $upstream_cache_status always;
    }
}
`;
}

/** The parameters docs/cdn.md shows {@link pollkitNginxHttp} with. */
export const DOCUMENTED_NGINX: PollkitNginxOptions = Object.freeze({
  origin: '127.0.0.1:8080',
  listen: '80',
  cachePath: '/var/cache/nginx/pollkit',
});

/** Options for {@link startNginx}. */
export interface StartNginxOptions extends Omit<PollkitNginxOptions, 'listen' | 'cachePath'> {
  /** Worker processes. Default 1. */
  readonly workers?: number;
  /** Connections per worker, clients and upstream together (each is a file). Default 4096. */
  readonly workerConnections?: number;
  /** Log every request with its cache status (see {@link NginxServer.accessLog}). Default `false`. */
  readonly accessLog?: boolean;
}

/** A running nginx. */
export interface NginxServer {
  readonly port: number;
  /** The master process. */
  readonly pid: number;
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** The configuration it runs. */
  readonly config: string;
  /** What nginx wrote to its error log so far. */
  errorLog(): string;
  /** Lines `<msec> <cache status> <status> <upstream ms> <request>` when started with `accessLog`. */
  accessLog(): string;
  /** Stops nginx (fast shutdown) and removes its directory. */
  stop(): Promise<void>;
}

/** The nginx binary: `NGINX_PATH`, else Debian's. */
export function nginxPath(): string {
  return process.env['NGINX_PATH'] ?? '/usr/sbin/nginx';
}

/** Whether nginx is installed here. */
export function hasNginx(): boolean {
  return existsSync(nginxPath());
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Starts nginx on a free port in front of `options.origin`, with a fresh cache. */
export async function startNginx(options: StartNginxOptions): Promise<NginxServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'pollkit-nginx-'));
  const workerConnections = options.workerConnections ?? 4096;
  const http = pollkitNginxHttp({
    ...options,
    listen: `127.0.0.1:${port} backlog=4096`,
    cachePath: join(dir, 'cache'),
  });
  // Workers of a root master drop to nobody, who could not write this directory.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  const config = `${user}daemon off;
worker_processes ${options.workers ?? 1};
worker_rlimit_nofile ${Math.min(19_000, workerConnections + 64)};
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} ${process.env['NGINX_LOG_LEVEL'] ?? 'warn'};
events {
    worker_connections ${workerConnections};
}
http {
    ${
      options.accessLog === true
        ? `log_format pollkit '$msec $request_time $upstream_cache_status $status $upstream_response_time $connection $connection_requests "$request"';\n    access_log ${join(dir, 'access.log')} pollkit;`
        : 'access_log off;'
    }
    keepalive_requests 1000000;
    client_body_temp_path ${join(dir, 'client_body')};
    proxy_temp_path ${join(dir, 'proxy')};
    fastcgi_temp_path ${join(dir, 'fastcgi')};
    uwsgi_temp_path ${join(dir, 'uwsgi')};
    scgi_temp_path ${join(dir, 'scgi')};

${http
  .split('\n')
  .map((line) => (line === '' ? '' : `    ${line}`))
  .join('\n')}}
`;
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, config);
  const child = spawn(nginxPath(), ['-p', dir, '-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const errorLog = (): string => {
    const path = join(dir, 'error.log');
    return stderr + (existsSync(path) ? readFileSync(path, 'utf8') : '');
  };
  try {
    await waitForPort(port, child);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    const log = errorLog();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`nginx did not start: ${String(error)}\n${log}`);
  }
  return {
    port,
    pid: child.pid!,
    url: `http://127.0.0.1:${port}`,
    config,
    errorLog,
    accessLog: () => {
      const path = join(dir, 'access.log');
      return existsSync(path) ? readFileSync(path, 'utf8') : '';
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
