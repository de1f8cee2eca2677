/**
 * Runs the setup of docs/scaling-out.md exactly as the guide prints it: the first code block that
 * builds a `RedisChangeFeed` is copied into a module beside this one, with only its `pollkit/*`
 * imports pointed at the source (a test run has no build) and one import added for the `render` the
 * guide leaves to the reader. Each server is a child process under `--unhandled-rejections=strict`:
 * an outage that escaped as an exception would end it.
 *
 * @module
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../helpers/free-port.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const target = fileURLToPath(new URL('./docs-example.generated.ts', import.meta.url));

/** The guide's example, as a module; returns its path. Remove it with {@link removeDocsExample}. */
export function writeDocsExample(): string {
  const guide = readFileSync(`${root}docs/scaling-out.md`, 'utf8');
  const blocks = [...guide.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
  const example = blocks.find((block) => block.includes('new RedisChangeFeed'));
  if (example === undefined) throw new Error('docs/scaling-out.md has no RedisChangeFeed example');
  const source = example
    .replaceAll("'pollkit/server'", "'../../../src/server/index.js'")
    .replaceAll("'pollkit/node'", "'../../../src/adapters/node.js'")
    .replaceAll("'pollkit/redis'", "'../../../src/redis/index.js'");
  writeFileSync(target, `import { render } from './docs-harness.js';\n${source}`);
  return target;
}

/** Deletes the generated module. */
export function removeDocsExample(): void {
  rmSync(target, { force: true });
}

/** One server running the guide's example. */
export interface DocsServer {
  readonly url: string;
  readonly child: ChildProcess;
  readonly stderr: () => string;
  readonly alive: () => boolean;
  /** Resolves when the next `render` call starts, with its input. */
  rendering(): Promise<unknown>;
  /** Lets every `render` in progress return `result`. */
  release(result: unknown): void;
  kill(): Promise<void>;
}

/** Starts the generated example in a child process and waits until it answers HTTP. */
export async function startDocsServer(redisUrl: string): Promise<DocsServer> {
  const port = await freePort();
  const child = fork(target, [], {
    execArgv: ['--import', 'tsx', '--unhandled-rejections=strict'],
    env: { ...process.env, REDIS_URL: redisUrl, PORT: String(port) },
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const renders: ((input: unknown) => void)[] = [];
  child.on('message', (message: { rendering?: unknown }) => {
    if ('rendering' in message) renders.shift()?.(message.rendering);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}/pollkit`;
  for (let tries = 0; ; tries++) {
    if (child.exitCode !== null) throw new Error(`the docs example exited with ${child.exitCode}: ${stderr}`);
    try {
      if ((await fetch(`${url}/jobs`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (tries > 200) throw new Error(`the docs example did not listen: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    child,
    stderr: () => stderr,
    alive: () => child.exitCode === null && child.signalCode === null,
    rendering: () => new Promise((resolve) => renders.push(resolve)),
    release: (result) => child.send({ release: true, result }),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
