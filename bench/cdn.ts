/**
 * Fan-out through a shared cache: what 10,000 clients on one public topic cost the origin when they
 * reach it directly, against through Debian's nginx with the configuration docs/cdn.md gives, in the
 * same run.
 *
 * `node --import tsx bench/cdn.ts [--quick]` forks the origin (`bench/cdn-origin.ts`) and four load
 * generators (`bench/cdn-load.ts`, 2,500 clients each: a process may open at most 20,000 files), lets
 * every client reach the head of the topic, then appends one record every 1.5 s and reports, over
 * those appends: requests held at the origin (sampled every 20 ms), origin CPU per delivered record,
 * origin requests per append, nginx's own CPU, and the delay from append to delivery (p50, p99).
 * Targets: held at the origin ≤ 1 % of the clients, origin CPU per delivered record ≤ 5 % of the
 * direct run's. `--quick` runs 2,000 clients and 5 appends.
 *
 * @module
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type NginxServer, hasNginx, startNginx } from '../test/helpers/nginx.js';
import type { LoadCommand } from './cdn-load.js';
import { type OriginCommand, TOPIC } from './cdn-origin.js';

const quick = process.argv.includes('--quick');
const CLIENTS = quick ? 2_000 : 10_000;
const LOADS = quick ? 2 : 4;
const APPENDS = quick ? 5 : 15;
const APPEND_INTERVAL_MS = 1_500;
const MAX_WAIT_SECONDS = 30;
const CLIENT_WAIT_SECONDS = 20;

type Reply = Record<string, unknown> & { readonly id: number; readonly ok: boolean; readonly error?: string };
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

/** A forked child that answers each command once, matched by id. */
class Child<Command> {
  readonly process: ChildProcess;
  readonly #waiting = new Map<number, (reply: Reply) => void>();
  #nextId = 1;

  constructor(file: string) {
    this.process = fork(fileURLToPath(new URL(file, import.meta.url)), [], {
      execArgv: ['--import', 'tsx'],
      stdio: 'inherit',
    });
    this.process.on('message', (reply: Reply) => {
      this.#waiting.get(reply.id)?.(reply);
      this.#waiting.delete(reply.id);
    });
  }

  async send<T>(command: WithoutId<Command>): Promise<T> {
    const id = this.#nextId++;
    const reply = await new Promise<Reply>((resolve) => {
      this.#waiting.set(id, resolve);
      this.process.send({ ...command, id });
    });
    if (!reply.ok) throw new Error(`${JSON.stringify(command)} failed: ${reply.error}`);
    return reply as T;
  }

  async exit(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.process.once('exit', () => resolve()));
    await this.send({ cmd: 'exit' } as unknown as WithoutId<Command>);
    await exited;
  }
}

interface OriginStats {
  readonly cpuMicros: number;
  readonly fetches: number;
  readonly held: number;
  readonly heldMax: number;
  readonly heldMean: number;
}

interface LoadReport {
  readonly delivered: number;
  readonly outOfOrder: number;
  readonly failures: number;
  readonly requests: number;
  readonly latencies: number[];
  readonly positions: (number | null)[];
}

interface Figures {
  readonly mode: string;
  readonly heldMax: number;
  readonly heldMean: number;
  readonly delivered: number;
  readonly originCpuMs: number;
  readonly cpuPerRecordUs: number;
  readonly originRequestsPerAppend: number;
  readonly nginxCpuMs: number | undefined;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly outOfOrder: number;
  readonly failures: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** CPU time of a process and its children (nginx's workers), in milliseconds, from /proc. */
function processTreeCpuMs(pid: number): number {
  const ticks = (id: number): number => {
    const fields = readFileSync(`/proc/${id}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime are fields 14 and 15 of the stat line, 12 and 13 after the command.
    return Number(fields[11]) + Number(fields[12]);
  };
  let total = ticks(pid);
  for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)) {
    if (child !== '') total += ticks(Number(child));
  }
  return total * 10; // USER_HZ is 100 on Linux
}

async function run(mode: 'direct' | 'nginx'): Promise<Figures> {
  const origin = new Child<OriginCommand>('./cdn-origin.ts');
  const { port: originPort } = await origin.send<{ port: number }>({ cmd: 'start', maxWaitSeconds: MAX_WAIT_SECONDS });
  let nginx: NginxServer | undefined;
  if (mode === 'nginx') {
    nginx = await startNginx({
      origin: `127.0.0.1:${originPort}`,
      maxWaitSeconds: MAX_WAIT_SECONDS,
      workers: 2,
      workerConnections: 16_000,
    });
  }
  const loads = Array.from({ length: LOADS }, () => new Child<LoadCommand>('./cdn-load.ts'));
  try {
    const port = nginx?.port ?? originPort;
    const reports = (reset: boolean): Promise<LoadReport[]> =>
      Promise.all(loads.map((load) => load.send<LoadReport>({ cmd: 'report', reset })));
    const atLeast = async (offset: number): Promise<boolean> =>
      (await reports(false)).every(
        (report) =>
          report.positions.length === CLIENTS / LOADS && report.positions.every((p) => p !== null && p >= offset),
      );
    const until = async (what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> => {
      const deadline = performance.now() + timeoutMs;
      while (!(await check())) {
        if (performance.now() > deadline) throw new Error(`${mode}: timed out waiting for ${what}`);
        await sleep(250);
      }
    };
    for (const load of loads) {
      await load.send({
        cmd: 'start',
        port,
        path: `/pollkit/topics/${TOPIC}/records`,
        clients: CLIENTS / LOADS,
        waitSeconds: CLIENT_WAIT_SECONDS,
      });
    }
    await until('every client at the head', 120_000, () => atLeast(1));
    await sleep(1_000);
    await origin.send({ cmd: 'measure' });
    const before = await origin.send<OriginStats>({ cmd: 'stats' });
    const nginxBefore = nginx === undefined ? undefined : processTreeCpuMs(nginx.pid);
    await reports(true);
    for (let i = 0; i < APPENDS; i++) {
      await origin.send({ cmd: 'append', count: 1 });
      await sleep(APPEND_INTERVAL_MS);
    }
    await until('every record delivered', 60_000, () => atLeast(1 + APPENDS));
    const after = await origin.send<OriginStats>({ cmd: 'stats' });
    const nginxCpuMs = nginxBefore === undefined ? undefined : processTreeCpuMs(nginx!.pid) - nginxBefore;
    const window = await reports(true);
    const delivered = window.reduce((sum, report) => sum + report.delivered, 0);
    const latencies = window.flatMap((report) => report.latencies).sort((a, b) => a - b);
    const originCpuMs = (after.cpuMicros - before.cpuMicros) / 1000;
    return {
      mode,
      heldMax: after.heldMax,
      heldMean: after.heldMean,
      delivered,
      originCpuMs,
      cpuPerRecordUs: (originCpuMs * 1000) / delivered,
      originRequestsPerAppend: (after.fetches - before.fetches) / APPENDS,
      nginxCpuMs,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies.at(-1) ?? Number.NaN,
      outOfOrder: window.reduce((sum, report) => sum + report.outOfOrder, 0),
      failures: window.reduce((sum, report) => sum + report.failures, 0),
    };
  } finally {
    await Promise.all(loads.map((load) => load.exit()));
    await nginx?.stop();
    await origin.exit();
  }
}

async function main(): Promise<void> {
  if (!hasNginx()) throw new Error('bench:cdn needs nginx (apt-get install nginx), or NGINX_PATH');
  console.log(
    `${CLIENTS.toLocaleString('en')} clients on one public topic in ${LOADS} load processes, ${APPENDS} appends ` +
      `${APPEND_INTERVAL_MS} ms apart, clients wait ${CLIENT_WAIT_SECONDS} s per long poll`,
  );
  const direct = await run('direct');
  const cached = await run('nginx');
  const fmt = (value: number, digits = 1): string => value.toLocaleString('en', { maximumFractionDigits: digits });
  const rows: [string, (f: Figures) => string][] = [
    ['held at the origin, max (mean)', (f) => `${fmt(f.heldMax, 0)} (${fmt(f.heldMean)})`],
    ['origin requests per append', (f) => fmt(f.originRequestsPerAppend)],
    ['records delivered', (f) => fmt(f.delivered, 0)],
    ['origin CPU', (f) => `${fmt(f.originCpuMs, 0)} ms`],
    ['origin CPU per delivered record', (f) => `${fmt(f.cpuPerRecordUs, 2)} µs`],
    [
      'nginx CPU per delivered record',
      (f) => (f.nginxCpuMs === undefined ? '—' : `${fmt((f.nginxCpuMs * 1000) / f.delivered, 2)} µs`),
    ],
    ['delivery p50 / p99 / max', (f) => `${fmt(f.p50, 0)} / ${fmt(f.p99, 0)} / ${fmt(f.max, 0)} ms`],
    ['out of order / failed requests', (f) => `${f.outOfOrder} / ${f.failures}`],
  ];
  console.log(`\n| ${'measure'.padEnd(34)} | ${'direct to the origin'.padEnd(24)} | ${'through nginx'.padEnd(24)} |`);
  console.log(`| ${'-'.repeat(34)} | ${'-'.repeat(24)} | ${'-'.repeat(24)} |`);
  for (const [name, cell] of rows) {
    console.log(`| ${name.padEnd(34)} | ${cell(direct).padEnd(24)} | ${cell(cached).padEnd(24)} |`);
  }
  const heldShare = cached.heldMax / CLIENTS;
  const cpuRatio = cached.cpuPerRecordUs / direct.cpuPerRecordUs;
  console.log(
    `\nheld at the origin through nginx: ${fmt(heldShare * 100, 2)} % of the clients (target ≤ 1 %): ${heldShare <= 0.01 ? 'met' : 'missed'}`,
  );
  console.log(
    `origin CPU per delivered record through nginx: ${fmt(cpuRatio * 100, 2)} % of the direct run's (target ≤ 5 %): ${cpuRatio <= 0.05 ? 'met' : 'missed'}`,
  );
  console.log(`p99 delivery latency through nginx / direct: ${fmt(cached.p99 / direct.p99, 2)}×`);
  if (direct.outOfOrder + cached.outOfOrder > 0) throw new Error('records arrived out of order');
}

await main();
