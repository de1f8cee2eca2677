/**
 * The reconnect storm: 1,000 subscribers in one process lose their server in the same instant; it
 * comes back after 5 s (and, in a second scenario, after 30 s). How hard do they hit it while it is
 * down and as it returns, and how soon are they all back?
 *
 * `node --import tsx bench/storm.ts [--quick]` simulates on a {@link ManualClock}, so the figures are
 * deterministic (seeded) and independent of the machine. pollkit's rows drive 1,000 real
 * {@link Subscriber} instances over a fake transport wired to a simulated server (a connect attempt
 * takes 1 ms and is refused while the server is down); the other rows reproduce, beside it, the
 * published delay schedules of three widely used clients:
 *
 * - reconnecting-websocket (pladaria/reconnecting-websocket, reconnecting-websocket.ts): delay for retry
 *   n ≥ 1 is `minReconnectionDelay × 1.3^(n−1)`, capped at 10 s, where the default
 *   `minReconnectionDelay = 1000 + Math.random() × 4000` sits in a module-level `DEFAULT` object, so it is
 *   drawn once per process and shared by every instance. The retry count resets only after 5 s of uptime.
 * - partysocket (cloudflare/partykit, packages/partysocket/src/ws.ts): a fork with the same `DEFAULT`
 *   and the same `_getNextDelay`, so the same schedule. Shown twice: as published (one draw per process)
 *   and with the draw made per instance, to separate the cost of the shared draw from the curve itself.
 * - eventsource (EventSource/eventsource, src/EventSource.ts): a fixed reconnection interval of 3000 ms
 *   (or the server's `retry:`), no backoff and no jitter.
 *
 * Two further pollkit rows: the default behind an SSE stream whose server sent `retry: 3000` (pollkit's
 * server default; the hint lifts the spread window rather than narrowing it), and the curve without the
 * first-reconnect spread (`spreadMs: 0`) to show what the spread buys. Printed per row: the peak of
 * reconnect attempts in any 100 ms window, attempts made during the outage, p50/p99 time from the
 * server's return to each client's successful reconnect, and how many gave up.
 *
 * Then the same on real sockets (bench/storm-sockets.ts): 1,000 clients of each library with default
 * options (pollkit's subscribeTopic over WebSocket and over SSE, reconnecting-websocket, partysocket,
 * eventsource) against pollkit's server in a child process that cuts every connection and closes its
 * port for the outage. The peak there is what the server accepts per 100 ms after it returns.
 *
 * Targets for pollkit's defaults: peak ≤ 40 per 100 ms, none give up, p99 back ≤ 5 s after a 5 s outage
 * and ≤ 10 s after a 30 s one. `--quick` runs only the 5 s outage; `--simulate-only` and
 * `--sockets-only` run one half. Exits 1 when a target is missed.
 *
 * @module
 */
import { availableParallelism, loadavg } from 'node:os';
import { ManualClock, seededRandom } from '../src/core/clock.js';
import { Subscriber, type SubscriberOptions } from '../src/client/subscriber.js';
import type {
  ConnectRequest,
  Transport,
  TransportConnection,
  TransportSink,
} from '../src/client/transports/transport.js';

const quick = process.argv.includes('--quick');
const CLIENTS = 1000;
const CONNECT_MS = 1;
const WINDOW_MS = 100;
const HORIZON_MS = 600_000;

interface Result {
  readonly name: string;
  readonly peak: number;
  readonly duringOutage: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly gaveUp: number;
}

/** A server that is up or down, and the attempts made against it. */
class SimulatedServer {
  up = true;
  readonly attempts: number[] = [];
  readonly clock: ManualClock;
  readonly live = new Set<TransportSink<string>>();

  constructor(clock: ManualClock) {
    this.clock = clock;
  }

  /** Every open connection drops at once: the restart. */
  crash(): void {
    this.up = false;
    const sinks = [...this.live];
    this.live.clear();
    for (const sink of sinks) sink.closed({ reason: 'network' });
  }
}

/** The fake transport: an attempt resolves after CONNECT_MS, open if the server is up, refused if not. */
function transportFor(server: SimulatedServer, retryHintMs?: number): Transport<string> {
  return {
    name: 'simulated',
    canSend: false,
    connect(request: ConnectRequest, sink: TransportSink<string>): TransportConnection {
      const { clock } = server;
      server.attempts.push(clock.now());
      let settled = false;
      const timer = clock.setTimeout(() => {
        settled = true;
        if (server.up) {
          server.live.add(sink);
          sink.opened();
          // An SSE stream's first line: pollkit's server sends "retry: 3000" by default.
          if (retryHintMs !== undefined) sink.retryHint(retryHintMs);
        } else {
          sink.closed({ reason: 'refused' });
        }
      }, CONNECT_MS);
      return {
        heartbeats: false,
        close: () => {
          if (!settled) clock.clearTimeout(timer);
          server.live.delete(sink);
        },
      };
    },
  };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summarise(
  name: string,
  attempts: readonly number[],
  back: number[],
  outageMs: number,
  gaveUp: number,
): Result {
  const windows = new Map<number, number>();
  for (const at of attempts) {
    const window = Math.floor(at / WINDOW_MS);
    windows.set(window, (windows.get(window) ?? 0) + 1);
  }
  back.sort((a, b) => a - b);
  return {
    name,
    peak: Math.max(0, ...windows.values()),
    duringOutage: attempts.filter((at) => at < outageMs).length,
    p50: percentile(back, 50),
    p99: percentile(back, 99),
    max: back.at(-1) ?? Number.NaN,
    gaveUp,
  };
}

/** pollkit: real Subscribers on a manual clock. */
function runPollkit(
  name: string,
  outageMs: number,
  options: Partial<SubscriberOptions<string>>,
  seed: number,
  retryHintMs?: number,
): Result {
  const clock = new ManualClock({ seed });
  const server = new SimulatedServer(clock);
  const transport = transportFor(server, retryHintMs);
  const subscribers: Subscriber<string>[] = [];
  const backAt = new Map<number, number>();
  let recoverAt = Number.POSITIVE_INFINITY;
  let gaveUp = 0;
  for (let i = 0; i < CLIENTS; i++) {
    const subscriber = new Subscriber<string>({ transports: transport, clock, ...options });
    subscriber.on('open', () => {
      if (clock.now() >= recoverAt && !backAt.has(i)) backAt.set(i, clock.now() - recoverAt);
    });
    subscriber.on('gone', ({ reason }) => {
      if (reason !== 'closed') gaveUp++;
    });
    subscribers.push(subscriber.start());
  }
  // Connected and stable long before the crash, so every backoff has reset.
  clock.advance(60_000);
  const crashAt = clock.now();
  recoverAt = crashAt + outageMs;
  server.attempts.length = 0;
  server.crash();
  clock.setTimeout(() => {
    server.up = true;
  }, outageMs);
  const deadline = crashAt + HORIZON_MS;
  while (backAt.size + gaveUp < CLIENTS && clock.now() < deadline) {
    const next = clock.nextTimerAt();
    if (next === undefined) break;
    clock.advanceTo(next);
  }
  for (const subscriber of subscribers) subscriber.close();
  // Times relative to the crash, so the outage is [0, outageMs).
  const relative = (at: number): number => at - crashAt;
  return summarise(name, server.attempts.map(relative), [...backAt.values()], outageMs, gaveUp);
}

/** A competitor's schedule: the delay before retry n (1-based) for one client. */
type Schedule = (retry: number) => number;

/**
 * Simulates clients that reconnect on `schedule` (with `maxRetries` Infinity, as all three default to).
 * Retry 1 follows the drop; each refused attempt (CONNECT_MS later) schedules the next retry.
 */
function runSchedule(name: string, outageMs: number, makeSchedule: () => Schedule, seed: number): Result {
  const clock = new ManualClock({ seed });
  const attempts: number[] = [];
  const back: number[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const schedule = makeSchedule();
    let retry = 0;
    const attempt = (): void => {
      attempts.push(clock.now());
      clock.setTimeout(() => {
        if (clock.now() >= outageMs) back.push(clock.now() - outageMs);
        else wait();
      }, CONNECT_MS);
    };
    const wait = (): void => {
      retry++;
      clock.setTimeout(attempt, schedule(retry));
    };
    wait();
  }
  while (back.length < CLIENTS) {
    const next = clock.nextTimerAt();
    if (next === undefined || next > HORIZON_MS) break;
    clock.advanceTo(next);
  }
  return summarise(name, attempts, back, outageMs, 0);
}

/** reconnecting-websocket / partysocket `_getNextDelay` for retry n ≥ 1, given `minReconnectionDelay`. */
function rwsSchedule(minReconnectionDelay: number): Schedule {
  return (retry) => Math.min(10_000, minReconnectionDelay * 1.3 ** (retry - 1));
}

const ms = (value: number): string => (Number.isNaN(value) ? '—' : `${(value / 1000).toFixed(2)} s`);

/** One table line: the first cell padded to `widths[0]`, the others right-aligned to theirs. */
function line(cells: readonly (string | number)[], widths: readonly number[]): string {
  return cells
    .map((cell, i) => (i === 0 ? String(cell).padEnd(widths[0]!) : String(cell).padStart(widths[i]!)))
    .join(' ');
}

const SIMULATED = [52, 6, 9, 9, 9, 9, 7];
const SOCKETS = [36, 10, 9, 8, 8, 8, 7, 8];

function row(result: Result): string {
  const { name, peak, duringOutage, p50, p99, max, gaveUp } = result;
  return line([name, peak, duringOutage, ms(p50), ms(p99), ms(max), gaveUp], SIMULATED);
}

function scenario(outageMs: number, seed: number): Result[] {
  const processRandom = seededRandom(seed * 31 + 7);
  // One draw per process, as the module-level DEFAULT object makes it.
  const sharedMin = 1000 + processRandom() * 4000;
  const perInstance = seededRandom(seed * 131 + 3);
  return [
    runPollkit('pollkit default (reconnectBackoff, 4.6 s spread)', outageMs, {}, seed),
    runPollkit("pollkit default, SSE with the server's retry: 3000", outageMs, {}, seed, 3000),
    runPollkit('pollkit without the first spread (spreadMs: 0)', outageMs, { spreadMs: 0 }, seed),
    runSchedule('reconnecting-websocket (shared min delay)', outageMs, () => rwsSchedule(sharedMin), seed),
    runSchedule('partysocket as published (shared min delay)', outageMs, () => rwsSchedule(sharedMin), seed),
    runSchedule(
      'partysocket, min delay drawn per instance',
      outageMs,
      () => rwsSchedule(1000 + perInstance() * 4000),
      seed,
    ),
    runSchedule('eventsource (fixed 3000 ms)', outageMs, () => () => 3000, seed),
  ];
}

const started = performance.now();
const socketsOnly = process.argv.includes('--sockets-only');
const simulateOnly = process.argv.includes('--simulate-only');
const header = line(['schedule', 'peak/100ms', 'in outage', 'p50 back', 'p99 back', 'max back', 'gave up'], SIMULATED);
let failed = false;
const outages = quick ? [5000] : [5000, 30_000];
const target = (outageMs: number): { peak: number; p99: number } => ({
  peak: 40,
  p99: outageMs <= 5000 ? 5000 : 10_000,
});
function check(label: string, peak: number, p99: number, gaveUp: number, outageMs: number): void {
  const t = target(outageMs);
  const checks = [
    [`peak <= ${t.peak} per 100 ms`, peak <= t.peak],
    ['none gave up', gaveUp === 0],
    [`p99 back <= ${t.p99 / 1000} s`, p99 <= t.p99],
  ] as const;
  for (const [name, ok] of checks) {
    console.log(`  ${label} target ${name}: ${ok ? 'met' : 'MISSED'}`);
    if (!ok) failed = true;
  }
}
if (!socketsOnly) {
  for (const outageMs of outages) {
    console.log(
      `\n${CLIENTS} subscribers lose the server at t = 0; it returns at t = ${outageMs / 1000} s (simulated)`,
    );
    console.log(header);
    const results = scenario(outageMs, 42);
    for (const result of results) console.log(row(result));
    const ours = results[0]!;
    check('simulated:', ours.peak, ours.p99, ours.gaveUp, outageMs);
  }
  console.log(`\n(simulated on a ManualClock, seed 42; ${((performance.now() - started) / 1000).toFixed(1)} s wall)`);
}
if (!simulateOnly) {
  const { LIBRARIES, stormOnSockets } = await import('./storm-sockets.js');
  for (const outageMs of outages) {
    console.log(
      `\nReal sockets: ${CLIENTS} clients of each library in one process, pollkit's server in a child process; it cuts every connection, closes its port for ${outageMs / 1000} s, then listens again.`,
    );
    console.log(
      line(['library', 'peak/100ms', 'arrivals', 'p50 back', 'p99 back', 'max back', 'gave up', 'not back'], SOCKETS),
    );
    for (const library of LIBRARIES) {
      const r = await stormOnSockets(library, CLIENTS, outageMs);
      console.log(line([r.name, r.peak, r.arrivals, ms(r.p50), ms(r.p99), ms(r.max), r.gaveUp, r.notBack], SOCKETS));
      if (r.name.startsWith('pollkit')) check(`${r.name}:`, r.peak, r.p99, r.gaveUp + r.notBack, outageMs);
    }
    console.log(`  (1-minute load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores at the end)`);
  }
}
process.exitCode = failed ? 1 : 0;
