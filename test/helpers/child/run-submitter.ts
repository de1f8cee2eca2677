/**
 * Runs `submitter.ts` as a child process under `--unhandled-rejections=strict` and returns its report.
 *
 * @module
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** What the submitter reports. */
export interface SubmitReport {
  readonly submitted: number;
  readonly refused: number;
  /** Submits per second achieved. */
  readonly rate: number;
  /** The most jobs the store held at any 100 ms sample. */
  readonly most: number;
  /** Jobs left 2.5 s after the last one finished. */
  readonly left: number;
}

export async function runSubmitter(env: Record<string, string>): Promise<SubmitReport> {
  const child = fork(fileURLToPath(new URL('./submitter.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx', '--unhandled-rejections=strict'],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let report: SubmitReport | undefined;
  child.on('message', (message: SubmitReport) => {
    report = message;
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (exit) => resolve(exit)));
  if (code !== 0 || report === undefined) throw new Error(`the submitter exited with ${String(code)}`);
  return report;
}
