/**
 * Servers as child processes, run the way production runs them: `--unhandled-rejections=strict`, so
 * anything that escapes (a throwing hook, an unhandled rejection in background work) ends the process
 * with a non-zero code instead of a warning, and the test sees it. The child picks its scenario from
 * `scenarios.ts` by name and reports its port over IPC.
 *
 * @module
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./child-main.ts', import.meta.url));

/** A running child server. */
export interface ChildServer {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything the child wrote to stderr so far. */
  readonly stderr: () => string;
  /** True while the process has not exited. */
  readonly alive: () => boolean;
  /** The child's memory and the scenario's figures; with `gc`, after a full garbage collection. */
  stats<T = Record<string, unknown>>(gc?: boolean): Promise<T>;
  /** Runs one of the scenario's commands in the child and resolves with its answer. */
  command<T = unknown>(name: string, ...args: unknown[]): Promise<T>;
  /** SIGTERM, then wait for the exit; resolves with the exit code (null after a signal). */
  stop(): Promise<number | null>;
}

/** Starts `scenario` in a child process; `env` reaches the child's environment. */
export async function startChild(scenario: string, env: Record<string, string> = {}): Promise<ChildServer> {
  const child = fork(script, [], {
    execArgv: ['--import', 'tsx', '--unhandled-rejections=strict', '--expose-gc'],
    env: { ...process.env, ...env, SCENARIO: scenario },
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const pending = new Map<number, (value: unknown) => void>();
  let seq = 0;
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`child ${scenario} exited with ${String(code)}: ${stderr}`)));
    child.on('message', (message: { seq: number; value: unknown }) => {
      if (message.seq === 0) resolve((message.value as { port: number }).port);
      else pending.get(message.seq)?.(message.value);
      pending.delete(message.seq);
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    stderr: () => stderr,
    alive: () => child.exitCode === null && child.signalCode === null,
    stats<T>(gc = false) {
      const id = ++seq;
      return new Promise<T>((resolve) => {
        pending.set(id, resolve as (value: unknown) => void);
        child.send({ seq: id, cmd: 'stats', gc });
      });
    },
    command<T>(name: string, ...args: unknown[]) {
      const id = ++seq;
      return new Promise<T>((resolve) => {
        pending.set(id, resolve as (value: unknown) => void);
        child.send({ seq: id, cmd: name, args });
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      return await exited;
    },
  };
}
