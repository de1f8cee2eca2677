/**
 * What a held long poll costs a pollkit server, and what the adapters cost on top of `node:http`.
 *
 * `node --import tsx bench/http.ts [--quick]` forks the server under test (`bench/http-server.ts`,
 * with `--expose-gc`) and two load generators (`bench/http-load.ts`, raw keep-alive sockets), all on
 * 127.0.0.1, and prints:
 *
 * 1. Held long polls: 19 000 topic fetches held at once (9 500 per load process, because each process
 *    may open at most 20 000 files), heap and RSS per held request, server CPU while they sit idle, and
 *    the time one append takes to answer 10 000 of them (p50/p99/max) — for pollkit behind the
 *    `pollkit/node` adapter and, beside it, for a naive server (a `setTimeout` and a closure per
 *    request, one array scanned per append) and for two lower bounds (`bench/http-floor.ts`): bare
 *    `node:http` answering from one loop with a prebuilt body, and the same bytes written straight onto
 *    the sockets; and pollkit once more with a purgatory that never yields to the event loop during a
 *    wake-up, to show what yielding costs. After the clients hang up, the held count must be 0.
 * 2. Short polling every 1 s against long polling: requests and bytes per delivered event.
 * 3. The non-held path: requests per second for `GET {p}/jobs/{id}` through `pollkit/node`, express,
 *    fastify, koa and hono, each beside the same framework answering the same JSON from a plain route.
 * 4. Adapter overhead for held requests: heap and RSS per held topic fetch through each adapter, and
 *    nothing left held after the clients hang up.
 * 5. Many topics: 19 000 held fetches over 1 000 topics, each reader following its topic (asking again
 *    from `nextOffset` as soon as it is answered) while the server appends records to the topics in
 *    turn as fast as it can; appends per second until every reader has every record — pollkit against
 *    the naive server (whose every append and every finished response scans its whole array of
 *    waiters) and the bare `node:http` floor.
 *
 * `--quick` shrinks every count and duration for a smoke run under a minute (and skips section 4);
 * `--only=1,4` runs just those sections; `--held=node,floor-http` runs just those servers in section 1
 * (`node`, `node-unsliced`, `naive`, `floor-http`, `floor-http-sliced`, `floor-socket`) and `--spread=node` in section 5
 * (`node`, `naive`, `floor-http`), say to profile one of them.
 *
 * @module
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LoadCommand } from './http-load.js';
import type { Framework, ServerCommand, ServerKind } from './http-server.js';

const quick = process.argv.includes('--quick');
/** The comma-separated values of `--name=a,b`, or undefined when the flag is absent. */
const listFlag = (name: string): string[] | undefined =>
  process.argv
    .find((arg) => arg.startsWith(`--${name}=`))
    ?.slice(name.length + 3)
    .split(',');
/** `--only=1,3` runs just those sections. */
const only = listFlag('only');
const runs = (section: string): boolean => (only === undefined ? !(quick && section === '4') : only.includes(section));
/** `--held=node,naive` runs just those servers in section 1 (and `--spread=` in section 5). */
const heldOnly = listFlag('held');
const spreadOnly = listFlag('spread');
/**
 * `BENCH_HTTP_PROFILE=<dir>` writes V8 CPU profiles there: of each section-1 server while idle and during
 * the fan-out only, and of every other server process for its whole life.
 */
const profileDir = process.env['BENCH_HTTP_PROFILE'];
/** `BENCH_HTTP_SNAPSHOT=<dir>` writes a heap snapshot of each server in sections 1 and 4 while it holds everything. */
const snapshotDir = process.env['BENCH_HTTP_SNAPSHOT'];
const HOST = '127.0.0.1';
/** Held requests in scenario 1; split across the two load processes. */
const HOLD = quick ? 2_000 : 19_000;
/** Of those, how many wait on the topic that receives the one append. */
const FAN_OUT = quick ? 1_000 : 10_000;
const IDLE_CPU_MS = quick ? 1_000 : 10_000;
const POLL_CLIENTS = quick ? 200 : 1_000;
const POLL_DURATION_MS = quick ? 4_500 : 20_000;
const EVENT_INTERVAL_MS = 2_000;
const RPS_DURATION_MS = quick ? 1_000 : 3_000;
const RPS_CONNECTIONS = 64;
const RPS_ROUNDS = quick ? 1 : 3;
/** Held requests per adapter in section 4. */
const ADAPTER_HOLD = quick ? 1_000 : 5_000;
/** Section 5: topics, held followers (spread evenly over them) and appends (spread evenly too). */
const SPREAD_TOPICS = quick ? 200 : 1_000;
const SPREAD_HOLD = HOLD;
const SPREAD_APPENDS = quick ? 400 : 3_000;

type Reply = Record<string, unknown> & { readonly id: number; readonly ok: boolean; readonly error?: string };

/** A forked child that answers each command once, matched by id. */
class Child {
  readonly #process: ChildProcess;
  readonly #waiting = new Map<number, (reply: Reply) => void>();
  #nextId = 1;

  constructor(file: string, execArgv: string[]) {
    this.#process = fork(fileURLToPath(new URL(file, import.meta.url)), [], { execArgv, stdio: 'inherit' });
    this.#process.on('message', (reply: Reply) => {
      const resolve = this.#waiting.get(reply.id);
      this.#waiting.delete(reply.id);
      resolve?.(reply);
    });
  }

  async send<T extends Record<string, unknown>>(command: Record<string, unknown>): Promise<T> {
    const id = this.#nextId++;
    const reply = await new Promise<Reply>((resolve) => {
      this.#waiting.set(id, resolve);
      this.#process.send({ ...command, id });
    });
    if (!reply.ok) throw new Error(`${String(command['cmd'])} failed: ${reply.error}`);
    return reply as unknown as T;
  }

  async exit(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.#process.once('exit', () => resolve()));
    this.#process.send({ id: 0, cmd: 'exit' });
    await exited;
  }
}

/** `Omit` over each member of a union, so object literals are still checked against their own member. */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
type ServerMessage = WithoutId<ServerCommand>;
type LoadMessage = WithoutId<LoadCommand>;

const startServer = async (
  kind: ServerKind,
  profileWholeRun = true,
): Promise<{ server: Child; port: number; jobId: string | undefined }> => {
  const profile = profileDir !== undefined && profileWholeRun ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const server = new Child('./http-server.ts', ['--import', 'tsx', '--expose-gc', ...profile]);
  const started = await server.send<{ port: number; jobId?: string }>({ cmd: 'start', kind } satisfies ServerMessage);
  return { server, port: started.port, jobId: started.jobId };
};
const startLoad = (): Child => new Child('./http-load.ts', ['--import', 'tsx']);

interface Stats extends Record<string, unknown> {
  heapUsed: number;
  rss: number;
  external: number;
  held: number;
  purgatoryPending: number;
  purgatoryWatched: number;
}

const stats = (server: Child, gc = false): Promise<Stats> =>
  server.send<Stats>({ cmd: 'stats', gc } satisfies ServerMessage);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
  return performance.now() - started;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const kib = (bytes: number): string => `${(bytes / 1024).toFixed(2)} KiB`;
const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const ms = (value: number): string => `${value.toFixed(1)} ms`;

interface HoldFigures {
  readonly kind: string;
  readonly held: number;
  readonly setupMs: number;
  readonly heapPerHeld: number;
  readonly rssPerHeld: number;
  readonly heapTotal: number;
  readonly rssTotal: number;
  readonly idleCpuPercent: number;
  readonly fanOut: {
    readonly p50: number;
    readonly p99: number;
    readonly max: number;
    /** The first answer: how long before anything at all reached a client. */
    readonly first: number;
    readonly answered: number;
    /** Server CPU time from the append until the last answer arrived. */
    readonly serverCpuMs: number;
  };
  readonly leftHeld: number;
}

/** Scenario 1 for one server kind. */
type HeldKind = 'node' | 'node-unsliced' | 'naive' | 'floor-http' | 'floor-http-sliced' | 'floor-socket';

const HELD_LABELS: Readonly<Record<HeldKind, string>> = {
  node: 'pollkit (pollkit/node)',
  'node-unsliced': 'pollkit, resumeSliceMs: Infinity (the same, never yielding to the event loop during a wake-up)',
  naive: 'naive (timer + closure + array scan)',
  'floor-http': 'floor: bare node:http (one loop, prebuilt body, writeHead + end)',
  'floor-http-sliced': 'floor: the same, yielding to the event loop every 100 ms of a wake-up (as pollkit does)',
  'floor-socket': 'floor: prebuilt bytes written onto each socket (no node:http response)',
};

async function heldLongPolls(kind: HeldKind, loads: readonly Child[]): Promise<HoldFigures> {
  // Profiled during the fan-out only (see BENCH_HTTP_PROFILE).
  const { server, port } = await startServer(kind, false);
  try {
    const base = kind.startsWith('node') ? '/pollkit' : kind === 'naive' ? '/naive' : '/floor';
    // Both topics are empty, so offset 0 is the high watermark: every fetch is held.
    const fanPath = `${base}/topics/fan/records?offset=0&wait=600`;
    const idlePath = `${base}/topics/idle/records?offset=0&wait=600`;
    await sleep(300);
    const before = await stats(server, true);
    const perLoad = HOLD / loads.length;
    const fanPerLoad = FAN_OUT / loads.length;
    const started = performance.now();
    await Promise.all(
      loads.map((load) =>
        load.send({
          cmd: 'hold',
          host: HOST,
          port,
          paths: Array.from({ length: perLoad }, (_, i) => (i < fanPerLoad ? fanPath : idlePath)),
        } satisfies LoadMessage),
      ),
    );
    await until(`${HOLD} held requests`, 120_000, async () => (await stats(server)).held >= HOLD);
    const setupMs = performance.now() - started;
    await sleep(500);
    const after = await stats(server, true);
    if (snapshotDir !== undefined) await server.send({ cmd: 'snapshot', dir: snapshotDir } satisfies ServerMessage);

    if (profileDir !== undefined) await server.send({ cmd: 'profile-start' } satisfies ServerMessage);
    await server.send({ cmd: 'cpu-start' } satisfies ServerMessage);
    await sleep(IDLE_CPU_MS);
    const cpu = await server.send<{ cpuMs: number; wallMs: number }>({ cmd: 'cpu-stop' } satisfies ServerMessage);
    if (profileDir !== undefined) {
      await server.send({ cmd: 'profile-stop', dir: profileDir, label: `idle-${kind}` } satisfies ServerMessage);
    }

    const collecting = loads.map((load) =>
      load.send<{ times?: number[]; statuses?: Record<string, number>; timedOut?: boolean }>({
        cmd: 'collect',
        timeoutMs: 60_000,
        count: fanPerLoad,
      } satisfies LoadMessage),
    );
    await server.send({ cmd: 'cpu-start' } satisfies ServerMessage);
    if (profileDir !== undefined) await server.send({ cmd: 'profile-start' } satisfies ServerMessage);
    const appended = await server.send<{ at: number }>({ cmd: 'append', topic: 'fan' } satisfies ServerMessage);
    const collected = await Promise.all(collecting);
    const answerCpu = await server.send<{ cpuMs: number }>({ cmd: 'cpu-stop' } satisfies ServerMessage);
    if (profileDir !== undefined) {
      await server.send({ cmd: 'profile-stop', dir: profileDir, label: `fan-out-${kind}` } satisfies ServerMessage);
    }
    const latencies = collected
      .flatMap((result) => result.times ?? [])
      .map((time) => time - appended.at)
      .sort((a, b) => a - b);
    const answered = collected.reduce((sum, result) => sum + (result.statuses?.['200'] ?? 0), 0);
    await sleep(200);
    const stillHeld = (await stats(server)).held;

    await Promise.all(loads.map((load) => load.send({ cmd: 'release' } satisfies LoadMessage)));
    await until('held requests to be released', 60_000, async () => (await stats(server)).held === 0);
    const released = await stats(server);
    const leftHeld = released.held + released.purgatoryPending + released.purgatoryWatched;
    return {
      kind,
      held: stillHeld + answered,
      setupMs,
      heapPerHeld: (after.heapUsed - before.heapUsed) / HOLD,
      rssPerHeld: (after.rss - before.rss) / HOLD,
      heapTotal: after.heapUsed,
      rssTotal: after.rss,
      idleCpuPercent: (cpu.cpuMs / cpu.wallMs) * 100,
      fanOut: {
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        max: latencies.at(-1) ?? Number.NaN,
        first: latencies[0] ?? Number.NaN,
        answered,
        serverCpuMs: answerCpu.cpuMs,
      },
      leftHeld,
    };
  } finally {
    await server.exit();
  }
}

interface PollFigures {
  readonly mode: string;
  readonly requests: number;
  readonly delivered: number;
  readonly requestsPerEvent: number;
  readonly bytesPerEvent: number;
}

/** Scenario 2: one polling mode against a producer appending every EVENT_INTERVAL_MS. */
async function polling(mode: 'short' | 'long', loads: readonly Child[]): Promise<PollFigures> {
  const { server, port } = await startServer('node');
  try {
    const pathTemplate =
      mode === 'short'
        ? '/pollkit/topics/feed/records?offset={offset}'
        : '/pollkit/topics/feed/records?offset={offset}&wait=30';
    const events = Math.floor(POLL_DURATION_MS / EVENT_INTERVAL_MS) - 1;
    const running = loads.map((load) =>
      load.send<{ requests: number; requestBytes: number; responseBytes: number; delivered: number }>({
        cmd: 'poll',
        host: HOST,
        port,
        pathTemplate,
        clients: POLL_CLIENTS / loads.length,
        intervalMs: mode === 'short' ? 1000 : 0,
        durationMs: POLL_DURATION_MS,
        startOffset: 0,
      } satisfies LoadMessage),
    );
    await sleep(500);
    await server.send({
      cmd: 'produce',
      topic: 'feed',
      intervalMs: EVENT_INTERVAL_MS,
      count: events,
    } satisfies ServerMessage);
    const results = await Promise.all(running);
    const requests = results.reduce((sum, r) => sum + r.requests, 0);
    const delivered = results.reduce((sum, r) => sum + r.delivered, 0);
    const bytes = results.reduce((sum, r) => sum + r.requestBytes + r.responseBytes, 0);
    return { mode, requests, delivered, requestsPerEvent: requests / delivered, bytesPerEvent: bytes / delivered };
  } finally {
    await server.exit();
  }
}

/**
 * Scenario 3: requests per second of a job status GET through each server of `kinds`, started
 * together and measured in alternating rounds (so a change in the machine's load hits all of them
 * alike); the median round of each.
 */
async function alternatingRps(kinds: readonly ServerKind[], load: Child): Promise<number[]> {
  const servers = [];
  for (const kind of kinds) servers.push(await startServer(kind));
  try {
    const rates: number[][] = kinds.map(() => []);
    for (let round = 0; round < RPS_ROUNDS; round++) {
      for (const [i, { port, jobId }] of servers.entries()) {
        const result = await load.send<{ requestsPerSecond: number; failed: number }>({
          cmd: 'rps',
          host: HOST,
          port,
          path: `/pollkit/jobs/${jobId}`,
          connections: RPS_CONNECTIONS,
          durationMs: RPS_DURATION_MS,
        } satisfies LoadMessage);
        if (result.failed > 0) console.warn(`  ${kinds[i]}: ${result.failed} requests failed`);
        rates[i]!.push(result.requestsPerSecond);
      }
    }
    return rates.map((list) => list.sort((a, b) => a - b)[Math.floor(list.length / 2)]!);
  } finally {
    await Promise.all(servers.map(({ server }) => server.exit()));
  }
}

async function main(): Promise<void> {
  console.log(`pollkit HTTP benchmark${quick ? ' (--quick)' : ''} — node ${process.version}, loopback only`);
  const loads = [startLoad(), startLoad()];
  try {
    if (runs('1')) await section1(loads);
    if (runs('2')) await section2(loads);
    if (runs('3')) await section3(loads);
    if (runs('4')) await section4(loads);
    if (runs('5')) await section5(loads);
  } finally {
    await Promise.all(loads.map((load) => load.exit()));
  }
}

async function section1(loads: readonly Child[]): Promise<void> {
  console.log(`\n1. ${HOLD} held long polls (${HOLD / loads.length} per load process); one append answers ${FAN_OUT}`);
  const held = new Map<HeldKind, HoldFigures>();
  const kinds = (Object.keys(HELD_LABELS) as HeldKind[]).filter((kind) => heldOnly?.includes(kind) ?? true);
  for (const kind of kinds) {
    const figures = await heldLongPolls(kind, loads);
    held.set(kind, figures);
    console.log(`  ${HELD_LABELS[kind]}`);
    console.log(`    held at once         ${figures.held} (set up in ${ms(figures.setupMs)})`);
    console.log(`    heap per held        ${kib(figures.heapPerHeld)}   (heap ${mib(figures.heapTotal)})`);
    console.log(`    RSS per held         ${kib(figures.rssPerHeld)}   (RSS ${mib(figures.rssTotal)})`);
    console.log(
      `    CPU while idle       ${figures.idleCpuPercent.toFixed(2)} % of one core over ${IDLE_CPU_MS / 1000} s`,
    );
    console.log(
      `    append → ${figures.fanOut.answered} answers  p50 ${ms(figures.fanOut.p50)}  p99 ${ms(figures.fanOut.p99)}  max ${ms(figures.fanOut.max)}` +
        `  (first ${ms(figures.fanOut.first)})`,
    );
    const perAnswer = (figures.fanOut.serverCpuMs / figures.fanOut.answered) * 1000;
    console.log(`    server CPU answering   ${ms(figures.fanOut.serverCpuMs)} (${perAnswer.toFixed(0)} µs per answer)`);
    console.log(`    left held after hang-up ${figures.leftHeld}`);
  }
  const pollkit = held.get('node');
  const naive = held.get('naive');
  const floor = held.get('floor-http');
  const socket = held.get('floor-socket');
  if (pollkit === undefined || naive === undefined || floor === undefined || socket === undefined) return;
  console.log(
    `  ratio naive/pollkit: heap per held ×${(naive.heapPerHeld / pollkit.heapPerHeld).toFixed(2)}, ` +
      `fan-out p99 ×${(naive.fanOut.p99 / pollkit.fanOut.p99).toFixed(2)}, ` +
      `idle CPU ×${(naive.idleCpuPercent / Math.max(pollkit.idleCpuPercent, 0.01)).toFixed(2)}`,
  );
  console.log(
    `  ratio pollkit/floor (node:http): fan-out p99 ×${(pollkit.fanOut.p99 / floor.fanOut.p99).toFixed(2)}, ` +
      `first answer +${ms(pollkit.fanOut.first - floor.fanOut.first)}, ` +
      `heap per held ×${(pollkit.heapPerHeld / floor.heapPerHeld).toFixed(2)}`,
  );
  // The targets of the held-path rework, judged in the same run.
  const check = (met: boolean): string => (met ? 'met' : 'MISSED');
  console.log(
    `  targets: heap per held ≤ naive's ${check(pollkit.heapPerHeld <= naive.heapPerHeld)}, ` +
      `RSS per held ≤ naive's ${check(pollkit.rssPerHeld <= naive.rssPerHeld)}, ` +
      `p99 ≤ naive's ${check(pollkit.fanOut.p99 <= naive.fanOut.p99)}, ` +
      `p99 ≤ 1.2 × floor's ${check(pollkit.fanOut.p99 <= 1.2 * floor.fanOut.p99)}, ` +
      `CPU per answer ≤ 1.1 × floor's ${check(pollkit.fanOut.serverCpuMs / pollkit.fanOut.answered <= (1.1 * floor.fanOut.serverCpuMs) / floor.fanOut.answered)}, ` +
      `first answer ≤ floor's + 5 ms ${check(pollkit.fanOut.first <= floor.fanOut.first + 5)}, ` +
      `0 held after hang-up ${check(pollkit.leftHeld === 0)}`,
  );
  const unsliced = held.get('node-unsliced');
  if (unsliced !== undefined) {
    console.log(
      `  what yielding costs: p99 ${ms(pollkit.fanOut.p99)} yielding every 100 ms, ${ms(unsliced.fanOut.p99)} never yielding ` +
        `(×${(unsliced.fanOut.p99 / floor.fanOut.p99).toFixed(2)} of the floor's)`,
    );
  }
  const sliced = held.get('floor-http-sliced');
  if (sliced !== undefined) {
    console.log(
      `  against a floor that yields as pollkit does: p99 ${ms(sliced.fanOut.p99)}, pollkit ×${(pollkit.fanOut.p99 / sliced.fanOut.p99).toFixed(2)} ` +
        `(p99 ≤ 1.2 × this floor's ${check(pollkit.fanOut.p99 <= 1.2 * sliced.fanOut.p99)}); the floor's own cost of yielding ×${(sliced.fanOut.p99 / floor.fanOut.p99).toFixed(2)}`,
    );
  }
  console.log(
    `  raw socket writes (no node:http response): p99 ${ms(socket.fanOut.p99)}, ×${(socket.fanOut.p99 / floor.fanOut.p99).toFixed(2)} of the node:http floor's`,
  );
}

async function section2(loads: readonly Child[]): Promise<void> {
  console.log(
    `\n2. ${POLL_CLIENTS} clients for ${POLL_DURATION_MS / 1000} s, one event every ${EVENT_INTERVAL_MS / 1000} s`,
  );
  const polls: PollFigures[] = [];
  for (const mode of ['short', 'long'] as const) {
    const figures = await polling(mode, loads);
    polls.push(figures);
    const label = mode === 'short' ? 'short poll every 1 s' : 'long poll (wait=30)';
    console.log(
      `  ${label.padEnd(22)} ${figures.requests} requests, ${figures.delivered} deliveries: ` +
        `${figures.requestsPerEvent.toFixed(2)} requests and ${figures.bytesPerEvent.toFixed(0)} bytes per delivered event`,
    );
  }
  const [shortPoll, longPoll] = polls as [PollFigures, PollFigures];
  console.log(
    `  ratio short/long: requests ×${(shortPoll.requestsPerEvent / longPoll.requestsPerEvent).toFixed(2)}, ` +
      `bytes ×${(shortPoll.bytesPerEvent / longPoll.bytesPerEvent).toFixed(2)}`,
  );
}

async function section3(loads: readonly Child[]): Promise<void> {
  console.log(
    `\n3. GET {p}/jobs/{id}, ${RPS_CONNECTIONS} keep-alive connections, median of ${RPS_ROUNDS} × ${RPS_DURATION_MS / 1000} s, ` +
      `each adapter in rounds alternating with its framework's plain route`,
  );
  // The plain runs (each framework answering the same JSON from its own route) split the adapter's
  // share from the framework's.
  console.log('  (plain = the framework answering the same JSON from its own route, without pollkit)');
  let baseline: number | undefined;
  for (const kind of ['node', 'express', 'fastify', 'koa', 'hono'] as const) {
    const [rps, plain] = (await alternatingRps([kind, `plain-${kind}`], loads[0]!)) as [number, number];
    baseline ??= rps;
    console.log(
      `  ${kind.padEnd(10)} pollkit ${rps.toFixed(0).padStart(6)} req/s ×${(rps / baseline).toFixed(2)} of pollkit/node` +
        ` | plain ${plain.toFixed(0).padStart(6)} req/s; pollkit keeps ×${(rps / plain).toFixed(2)} of the framework's own rate` +
        (kind === 'node' ? ` (target ≥ 0.8: ${rps / plain >= 0.8 ? 'met' : 'MISSED'})` : ''),
    );
  }
}

/** Section 4 for one adapter: memory per held fetch, then a mass hang-up that must leave nothing held. */
async function adapterHeldCost(
  kind: Framework,
  loads: readonly Child[],
): Promise<{ heap: number; rss: number; left: number }> {
  const { server, port } = await startServer(kind);
  try {
    await sleep(300);
    const before = await stats(server, true);
    const path = '/pollkit/topics/idle/records?offset=0&wait=600';
    const perLoad = ADAPTER_HOLD / loads.length;
    await Promise.all(
      loads.map((load) =>
        load.send({
          cmd: 'hold',
          host: HOST,
          port,
          paths: Array.from({ length: perLoad }, () => path),
        } satisfies LoadMessage),
      ),
    );
    await until(`${ADAPTER_HOLD} held requests`, 120_000, async () => (await stats(server)).held >= ADAPTER_HOLD);
    await sleep(500);
    const after = await stats(server, true);
    if (snapshotDir !== undefined) await server.send({ cmd: 'snapshot', dir: snapshotDir } satisfies ServerMessage);
    await Promise.all(loads.map((load) => load.send({ cmd: 'release' } satisfies LoadMessage)));
    await until('held requests to be released', 60_000, async () => (await stats(server)).held === 0);
    await sleep(200);
    const released = await stats(server);
    return {
      heap: (after.heapUsed - before.heapUsed) / ADAPTER_HOLD,
      rss: (after.rss - before.rss) / ADAPTER_HOLD,
      left: released.held + released.purgatoryPending + released.purgatoryWatched,
    };
  } finally {
    await server.exit();
  }
}

async function section4(loads: readonly Child[]): Promise<void> {
  console.log(`\n4. ${ADAPTER_HOLD} held topic fetches through each adapter`);
  let baseline: number | undefined;
  for (const kind of ['node', 'express', 'fastify', 'koa', 'hono'] as const) {
    const cost = await adapterHeldCost(kind, loads);
    baseline ??= cost.heap;
    console.log(
      `  ${kind.padEnd(10)} heap ${kib(cost.heap)} (×${(cost.heap / baseline).toFixed(2)} of pollkit/node)` +
        `  RSS ${kib(cost.rss)} per held; left held after hang-up ${cost.left}`,
    );
  }
}

await main();

interface SpreadFigures {
  readonly appendsPerSecond: number;
  readonly seconds: number;
  readonly requests: number;
  readonly failed: number;
  readonly serverCpuMs: number;
  readonly leftHeld: number;
}

/** Section 5 for one server: followers over many topics, appends spread over them. */
async function spreadFollowers(kind: 'node' | 'naive' | 'floor-http', loads: readonly Child[]): Promise<SpreadFigures> {
  const { server, port } = await startServer(kind);
  try {
    const base = kind === 'node' ? '/pollkit' : kind === 'naive' ? '/naive' : '/floor';
    const perLoad = SPREAD_HOLD / loads.length;
    await Promise.all(
      loads.map((load, l) =>
        load.send({
          cmd: 'follow',
          host: HOST,
          port,
          paths: Array.from(
            { length: perLoad },
            (_, i) => `${base}/topics/t${(l * perLoad + i) % SPREAD_TOPICS}/records`,
          ),
          records: SPREAD_APPENDS / SPREAD_TOPICS,
        } satisfies LoadMessage),
      ),
    );
    await until(`${SPREAD_HOLD} followers`, 120_000, async () => (await stats(server)).held >= SPREAD_HOLD);
    await sleep(500);
    const finished = loads.map((load) =>
      load.send<{ last?: number; requests?: number; failed?: number; timedOut?: boolean }>({
        cmd: 'followed',
        timeoutMs: 600_000,
      } satisfies LoadMessage),
    );
    await server.send({ cmd: 'cpu-start' } satisfies ServerMessage);
    const appended = await server.send<{ startedAt: number }>({
      cmd: 'append-spread',
      topics: SPREAD_TOPICS,
      count: SPREAD_APPENDS,
    } satisfies ServerMessage);
    const results = await Promise.all(finished);
    const cpu = await server.send<{ cpuMs: number }>({ cmd: 'cpu-stop' } satisfies ServerMessage);
    if (results.some((result) => result.timedOut === true)) throw new Error(`${kind}: followers timed out`);
    const last = Math.max(...results.map((result) => result.last!));
    const seconds = (last - appended.startedAt) / 1000;
    await until('followers to be released', 60_000, async () => (await stats(server)).held === 0);
    await sleep(200);
    const released = await stats(server);
    return {
      appendsPerSecond: SPREAD_APPENDS / seconds,
      seconds,
      requests: results.reduce((sum, result) => sum + (result.requests ?? 0), 0),
      failed: results.reduce((sum, result) => sum + (result.failed ?? 0), 0),
      serverCpuMs: cpu.cpuMs,
      leftHeld: released.held + released.purgatoryPending + released.purgatoryWatched,
    };
  } finally {
    await server.exit();
  }
}

async function section5(loads: readonly Child[]): Promise<void> {
  console.log(
    `\n5. ${SPREAD_HOLD} held fetches over ${SPREAD_TOPICS} topics; ${SPREAD_APPENDS} appends spread over the topics, ` +
      `each reader following its topic to the last record`,
  );
  const figures = new Map<string, SpreadFigures>();
  for (const kind of ['node', 'naive', 'floor-http'] as const) {
    if (spreadOnly !== undefined && !spreadOnly.includes(kind)) continue;
    const result = await spreadFollowers(kind, loads);
    figures.set(kind, result);
    const label = kind === 'node' ? 'pollkit' : kind === 'naive' ? 'naive' : 'floor: bare node:http';
    console.log(
      `  ${label.padEnd(22)} ${result.appendsPerSecond.toFixed(0).padStart(7)} appends/s with every reader answered ` +
        `(${result.seconds.toFixed(2)} s; ${result.requests} fetches, ${result.failed} failed; ` +
        `server CPU ${(result.serverCpuMs / 1000).toFixed(2)} s); left held after hang-up ${result.leftHeld}`,
    );
  }
  const pollkit = figures.get('node');
  const naive = figures.get('naive');
  const floor = figures.get('floor-http');
  if (pollkit === undefined || naive === undefined || floor === undefined) return;
  console.log(
    `  ratio pollkit/naive ×${(pollkit.appendsPerSecond / naive.appendsPerSecond).toFixed(2)} (target ≥ 10), ` +
      `floor/naive ×${(floor.appendsPerSecond / naive.appendsPerSecond).toFixed(2)}, ` +
      `pollkit/floor ×${(pollkit.appendsPerSecond / floor.appendsPerSecond).toFixed(2)}`,
  );
}
