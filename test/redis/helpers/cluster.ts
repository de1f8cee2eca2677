/**
 * Starts and drives pollkit server processes (helpers/server-process.ts) sharing one Redis.
 *
 * @module
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command, Reply } from './server-process.js';

const script = fileURLToPath(new URL('./server-process.ts', import.meta.url));

/** A running server process. */
export interface ServerProcess {
  readonly name: string;
  readonly base: string;
  readonly child: ChildProcess;
  /** Runs a command in the process; rejects with an Error carrying the pollkit `code` on failure. */
  call(cmd: Command['cmd'], ...args: unknown[]): Promise<unknown>;
  /** SIGKILL: the process dies with whatever it held. */
  kill(): Promise<void>;
  /** Closes it gracefully, then waits for it to exit. */
  stop(): Promise<void>;
}

/** Starts one server process. */
export async function startServer(
  name: string,
  redisUrl: string,
  keyPrefix: string,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  const child = fork(script, [], {
    // Strict: a rejection that escaped (an outage surfacing as an exception) ends the process.
    execArgv: ['--import', 'tsx', '--unhandled-rejections=strict'],
    env: { ...process.env, ...env, REDIS_URL: redisUrl, KEY_PREFIX: keyPrefix, NAME: name },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  let seq = 0;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server ${name} exited with ${String(code)} before listening`)));
    child.on('message', (reply: Reply) => {
      if (reply.seq === 0 && reply.ok) {
        resolve((reply.value as { port: number }).port);
        return;
      }
      const waiter = pending.get(reply.seq);
      if (waiter === undefined) return;
      pending.delete(reply.seq);
      if (reply.ok) waiter.resolve(reply.value);
      else waiter.reject(Object.assign(new Error(reply.message), { code: reply.code }));
    });
  });
  const server: ServerProcess = {
    name,
    base: `http://127.0.0.1:${port}/pollkit`,
    child,
    call(cmd, ...args) {
      const id = ++seq;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ seq: id, cmd, args } satisfies Command);
      });
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      await server.call('close').catch(() => undefined);
      child.kill('SIGTERM');
      await exited;
    },
  };
  return server;
}
