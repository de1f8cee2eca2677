/**
 * The small request/reply protocol between a test and the processes it forks (pollkit servers and
 * BullMQ workers), over Node's IPC channel.
 *
 * @module
 */
import { type ChildProcess, fork } from 'node:child_process';

/** How long {@link Child.stop} waits for a graceful close before it kills the process. */
const CLOSE_GRACE_MS = 15_000;

/** A request from the test process. */
export interface Request {
  readonly seq: number;
  readonly cmd: string;
  readonly args: readonly unknown[];
}

/** The answer to a {@link Request}; `seq: 0` is the process saying it is ready, with its details. */
export type Reply =
  | { readonly seq: number; readonly ok: true; readonly value: unknown }
  | { readonly seq: number; readonly ok: false; readonly message: string };

/** In a child: answers each request with what `handle` resolves to. */
export function onRequests(handle: (request: Request) => Promise<unknown>): void {
  process.on('message', (request: Request) => {
    handle(request).then(
      (value) => process.send?.({ seq: request.seq, ok: true, value } satisfies Reply),
      (error: Error) => process.send?.({ seq: request.seq, ok: false, message: String(error.message) } satisfies Reply),
    );
  });
}

/** A forked process of the multi-process tests. */
export interface Child {
  readonly name: string;
  readonly child: ChildProcess;
  /** What the process sent when it was ready. */
  readonly ready: unknown;
  /** Runs a command in the process. */
  call(cmd: string, ...args: unknown[]): Promise<unknown>;
  /** SIGKILL: the process dies with whatever it was doing. */
  kill(): Promise<void>;
  /** Closes it gracefully, then waits for it to exit. */
  stop(): Promise<void>;
}

/** Forks `script` under tsx with `env` and waits until it says it is ready. */
export async function forkChild(name: string, script: string, env: Record<string, string>): Promise<Child> {
  const child = fork(script, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, ...env, NAME: name },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  let seq = 0;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = await new Promise<unknown>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${name} exited with ${String(code)} before it was ready`)));
    child.on('message', (reply: Reply) => {
      if (reply.seq === 0 && reply.ok) {
        resolve(reply.value);
        return;
      }
      const waiter = pending.get(reply.seq);
      if (waiter === undefined) return;
      pending.delete(reply.seq);
      if (reply.ok) waiter.resolve(reply.value);
      else waiter.reject(new Error(reply.message));
    });
  });
  const handle: Child = {
    name,
    child,
    ready,
    call(cmd, ...args) {
      const id = ++seq;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ seq: id, cmd, args } satisfies Request);
      });
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // After a Redis restart, BullMQ's QueueEvents.close() sometimes never returns (caught in a process
      // running only BullMQ code: its Worker closed, its QueueEvents did not); cut short and said.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const closed = await Promise.race([
        handle.call('close').then(
          () => true,
          () => true,
        ),
        new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), CLOSE_GRACE_MS))),
      ]);
      clearTimeout(timer);
      if (!closed) console.warn(`${name} did not close within ${CLOSE_GRACE_MS} ms; killing it`);
      child.kill(closed ? 'SIGTERM' : 'SIGKILL');
      await exited;
    },
  };
  return handle;
}
