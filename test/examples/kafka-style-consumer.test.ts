import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Commit, readCommit, runConsumer } from '../../examples/kafka-style-consumer/consumer.js';
import { type OrdersServer, start } from '../../examples/kafka-style-consumer/server.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;
let server: OrdersServer | undefined;
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pollkit-consumer-'));
});
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await server?.close();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function until(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The offsets the consumer process wrote to its output file, in order. */
function handled(file: string): number[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => (JSON.parse(line) as { offset: number }).offset);
}

function consumerProcess(url: string, offsetFile: string, output: string): ChildProcess {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'examples/kafka-style-consumer/consumer.ts', url, offsetFile, output, '5'],
    { cwd: root, stdio: 'ignore' },
  );
  children.push(child);
  return child;
}

describe('examples/kafka-style-consumer', () => {
  it('commits after each record and resumes from the commit', async () => {
    server = await start();
    const offsetFile = join(dir, 'orders.offset');
    await server.produce(30);
    const first: number[] = [];
    const position: Commit = await runConsumer({
      baseUrl: server.url,
      offsetFile,
      until: 30,
      handle: (r) => void first.push(r.offset),
    });
    expect(first).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(position.offset).toBe(30);
    expect(readCommit(offsetFile)).toEqual(position);

    await server.produce(10);
    const second: number[] = [];
    await runConsumer({ baseUrl: server.url, offsetFile, until: 40, handle: (r) => void second.push(r.offset) });
    expect(second).toEqual(Array.from({ length: 10 }, (_, i) => 30 + i));
  });

  it('waits for records that do not exist yet (long polling), then stops on abort', async () => {
    server = await start();
    const offsetFile = join(dir, 'orders.offset');
    const stop = new AbortController();
    const seen: number[] = [];
    const running = runConsumer({
      baseUrl: server.url,
      offsetFile,
      signal: stop.signal,
      handle: (record) => void seen.push(record.offset),
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await server.produce(3);
    await until(() => seen.length === 3);
    stop.abort();
    expect((await running).offset).toBe(3);
  });

  it('resumes after being killed mid-stream: every record handled, at most the one in flight twice', async () => {
    server = await start();
    const offsetFile = join(dir, 'orders.offset');
    const output = join(dir, 'handled.jsonl');
    await server.produce(120);

    const crashing = consumerProcess(server.url, offsetFile, output);
    await until(() => handled(output).length >= 30);
    crashing.kill('SIGKILL'); // no chance to commit anything more
    await new Promise((resolve) => crashing.once('exit', resolve));
    const before = handled(output).length;
    const committed = readCommit(offsetFile)?.offset ?? 0;
    expect(committed === before || committed === before - 1).toBe(true);

    consumerProcess(server.url, offsetFile, output);
    await until(() => readCommit(offsetFile)?.offset === 120);
    const offsets = handled(output);
    expect(new Set(offsets)).toEqual(new Set(Array.from({ length: 120 }, (_, i) => i)));
    expect(offsets.length - 120).toBeLessThanOrEqual(1);
  });

  it('restarts from the earliest retained offset, knowingly, when its commit was trimmed', async () => {
    server = await start({ retainRecords: 10 });
    const offsetFile = join(dir, 'orders.offset');
    await server.produce(30); // offsets 0–19 are trimmed
    const skips: [number, number][] = [];
    const seen: number[] = [];
    await runConsumer({
      baseUrl: server.url,
      offsetFile,
      until: 30,
      onSkip: (from, to) => skips.push([from.offset, to.offset]),
      handle: (record) => void seen.push(record.offset),
    });
    expect(skips).toEqual([[0, 20]]);
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => 20 + i));
  });
});
