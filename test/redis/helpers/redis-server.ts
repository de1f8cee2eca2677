/**
 * Private redis-server processes for the Redis tests: each on a free port, in its own temporary
 * directory, so a test can stop and restart it without touching the shared server on 6379.
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { freePort } from '../../helpers/free-port.js';

/** Options for {@link startRedis}. */
export interface RedisServerOptions {
  /** Keep an append-only file, so a restart keeps the data. Default false. */
  readonly persistent?: boolean;
}

/** A redis-server this test started. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** A new client of this server; closed by {@link RedisServer.stop} only if made through here. */
  client(options?: RedisOptions): Redis;
  /** Kills the server (SIGKILL unless `graceful`). */
  kill(graceful?: boolean): Promise<void>;
  /** Starts it again on the same port and directory. */
  restart(): Promise<void>;
  /** Stops the server, closes every client made through {@link RedisServer.client}, removes the directory. */
  stop(): Promise<void>;
}

async function waitForPing(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      if ((await probe.ping()) === 'PONG') return;
    } catch {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      probe.disconnect();
    }
  }
}

/** Starts a redis-server on a free port. */
export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'pollkit-redis-'));
  const clients = new Set<Redis>();
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir];
    args.push(
      ...(options.persistent === true ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
    );
    const started = spawn('redis-server', args, { stdio: 'ignore' });
    child = started;
    await waitForPing(port);
  };

  const kill = async (graceful = false): Promise<void> => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill(graceful ? 'SIGTERM' : 'SIGKILL');
    await exited;
  };

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    client(clientOptions: RedisOptions = {}): Redis {
      const client = new Redis(port, '127.0.0.1', clientOptions as never);
      client.on('error', () => undefined);
      clients.add(client);
      return client;
    },
    kill,
    async restart(): Promise<void> {
      await kill(true);
      await launch();
    },
    async stop(): Promise<void> {
      for (const client of clients) client.disconnect();
      clients.clear();
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
