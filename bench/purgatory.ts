/**
 * A port of Kafka's TestPurgatoryPerformance to pollkit's DelayedOperationPurgatory, with two
 * baselines measured in the same process and run:
 *
 *   (1) timeout+map — a setTimeout per request plus Map<key, Set<op>>;
 *   (2) scan        — Map<key, Set<op>> plus one setInterval that scans every pending request.
 *
 * Requests arrive as a Poisson process at a target rate; each watches K keys of a key space; a
 * log-normal "latency to complete" (given by its p50 and p75) decides when an event on its first key
 * satisfies it (through checkAndComplete); requests not satisfied within the timeout T expire.
 *
 * Run: `node --expose-gc --import tsx bench/purgatory.ts [--quick]` (or `npx tsx bench/purgatory.ts`).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { cpus } from 'node:os';
import { TimingWheel } from '../src/server/purgatory/timing-wheel.js';
import { DelayedOperation, DelayedOperationPurgatory } from '../src/server/purgatory/purgatory.js';

const QUICK = process.argv.includes('--quick');
const gc: () => void =
  (globalThis as { gc?: () => void }).gc ??
  (() => {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  })();
const now = (): number => performance.now();

function settledHeap(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

// ---- random numbers --------------------------------------------------------------------------------

let seed = 0x2545f491;
function random(): number {
  // xorshift32: deterministic and allocation-free.
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 0x1_0000_0000;
}
function gaussian(): number {
  let u = 0;
  while (u === 0) u = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}
/** Log-normal latency from its median and 75th percentile, as Kafka's LogNormalDistribution. */
function logNormal(p50: number, p75: number): () => number {
  const mu = Math.log(p50);
  const sigma = (Math.log(p75) - mu) / 0.6744897501960817;
  return () => Math.exp(mu + sigma * gaussian());
}

// ---- the request and the implementations under test ------------------------------------------------

interface Stats {
  /** Expiries due before this time (during setup) are counted apart, not in the lateness figures. */
  measureFrom: number;
  setupExpired: number;
  lateness: Float64Array;
  latenessCount: number;
  early: number;
  expired: number;
  completed: number;
}
const stats: Stats = {
  measureFrom: Infinity,
  setupExpired: 0,
  lateness: new Float64Array(4_000_000),
  latenessCount: 0,
  early: 0,
  expired: 0,
  completed: 0,
};
function recordExpiry(due: number): void {
  if (due < stats.measureFrom) {
    stats.setupExpired++;
    return;
  }
  const late = now() - due;
  if (late < 0) stats.early++;
  if (stats.latenessCount < stats.lateness.length) stats.lateness[stats.latenessCount++] = late;
  stats.expired++;
}

/** The purgatory's operation: the request object itself. */
class WheelRequest extends DelayedOperation {
  satisfied = false;
  due = 0;
  readonly keys: readonly string[];
  constructor(timeoutMs: number, keys: readonly string[]) {
    super(timeoutMs);
    this.keys = keys;
  }
  tryComplete(): boolean {
    return this.satisfied ? this.forceComplete() : false;
  }
  onComplete(): void {
    if (this.settlement === 'completed') stats.completed++;
  }
  override onExpiration(): void {
    recordExpiry(this.due);
  }
}

/** The baselines' request: the same fields, plus a timer handle. */
class PlainRequest {
  satisfied = false;
  done = false;
  due = 0;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  readonly keys: readonly string[];
  readonly timeoutMs: number;
  constructor(timeoutMs: number, keys: readonly string[]) {
    this.timeoutMs = timeoutMs;
    this.keys = keys;
  }
}

interface Impl<R extends { satisfied: boolean; due: number }> {
  readonly name: string;
  create(timeoutMs: number, keys: readonly string[]): R;
  watch(request: R, keys: readonly string[]): void;
  checkAndComplete(key: string): void;
  pending(): number;
  shutdown(): void;
}

class WheelImpl implements Impl<WheelRequest> {
  readonly name = 'wheel';
  readonly purgatory = new DelayedOperationPurgatory({ name: 'bench' });
  create(timeoutMs: number, keys: readonly string[]): WheelRequest {
    return new WheelRequest(timeoutMs, keys);
  }
  watch(request: WheelRequest, keys: readonly string[]): void {
    request.due = now() + request.delayMs;
    if (this.purgatory.tryCompleteElseWatch(request, keys)) return;
  }
  checkAndComplete(key: string): void {
    this.purgatory.checkAndComplete(key);
  }
  pending(): number {
    return this.purgatory.metrics().pending;
  }
  shutdown(): void {
    this.purgatory.shutdown();
  }
}

abstract class MapImpl implements Impl<PlainRequest> {
  abstract readonly name: string;
  readonly watchers = new Map<string, Set<PlainRequest>>();
  count = 0;
  create(timeoutMs: number, keys: readonly string[]): PlainRequest {
    return new PlainRequest(timeoutMs, keys);
  }
  watch(request: PlainRequest, keys: readonly string[]): void {
    request.due = now() + request.timeoutMs;
    if (request.satisfied) return this.complete(request);
    for (const key of keys) {
      let set = this.watchers.get(key);
      if (set === undefined) this.watchers.set(key, (set = new Set()));
      set.add(request);
    }
    this.count++;
    this.arm(request);
  }
  abstract arm(request: PlainRequest): void;
  abstract disarm(request: PlainRequest): void;
  abstract shutdown(): void;
  unlink(request: PlainRequest): void {
    request.done = true;
    this.count--;
    for (const key of request.keys) {
      const set = this.watchers.get(key);
      if (set !== undefined && set.delete(request) && set.size === 0) this.watchers.delete(key);
    }
  }
  complete(request: PlainRequest): void {
    if (request.done) return;
    this.disarm(request);
    this.unlink(request);
    stats.completed++;
  }
  expire(request: PlainRequest): void {
    if (request.done) return;
    this.unlink(request);
    recordExpiry(request.due);
  }
  checkAndComplete(key: string): void {
    const set = this.watchers.get(key);
    if (set === undefined) return;
    for (const request of set) if (request.satisfied) this.complete(request);
  }
  pending(): number {
    return this.count;
  }
}

class TimeoutImpl extends MapImpl {
  readonly name = 'timeout+map';
  readonly #onTimeout = (request: PlainRequest): void => this.expire(request);
  arm(request: PlainRequest): void {
    request.timer = setTimeout(this.#onTimeout, request.timeoutMs, request);
  }
  disarm(request: PlainRequest): void {
    clearTimeout(request.timer);
    request.timer = undefined;
  }
  shutdown(): void {
    for (const set of this.watchers.values()) for (const r of set) if (!r.done) this.disarm(r);
    this.watchers.clear();
  }
}

const SCAN_PERIOD_MS = 5;
class ScanImpl extends MapImpl {
  readonly name = `scan/${SCAN_PERIOD_MS}ms`;
  readonly all = new Set<PlainRequest>();
  readonly interval = setInterval(() => {
    const t = now();
    for (const request of this.all) if (request.due <= t) this.expire(request);
  }, SCAN_PERIOD_MS);
  arm(request: PlainRequest): void {
    this.all.add(request);
  }
  disarm(request: PlainRequest): void {
    this.all.delete(request);
  }
  override expire(request: PlainRequest): void {
    this.all.delete(request);
    super.expire(request);
  }
  shutdown(): void {
    clearInterval(this.interval);
    this.all.clear();
    this.watchers.clear();
  }
}

/** The load generator alone: its cost is subtracted to give each implementation's net CPU. */
class NullImpl implements Impl<PlainRequest> {
  readonly name = 'driver only';
  create(timeoutMs: number, keys: readonly string[]): PlainRequest {
    return new PlainRequest(timeoutMs, keys);
  }
  watch(): void {}
  checkAndComplete(): void {}
  pending(): number {
    return 0;
  }
  shutdown(): void {}
}

// ---- the load generator ----------------------------------------------------------------------------

interface Scenario {
  readonly name: string;
  readonly rate: number;
  readonly timeoutMs: number;
  /** Each request's timeout is T + U(0, jitter): distinct deadlines (0: all requests use T). */
  readonly jitterMs?: number;
  readonly p50: number;
  readonly p75: number;
  readonly keysPerRequest: number;
  readonly keySpace: number;
  readonly seconds: number;
  /** Requests held from the start, their deadlines spread over one timeout (as if they had arrived before). */
  readonly prefill?: number;
}

interface Result {
  readonly impl: string;
  readonly target: number;
  readonly achieved: number;
  readonly requests: number;
  readonly cpuUsPerRequest: number;
  readonly loopP99Ms: number;
  readonly loopMaxMs: number;
  readonly heapPerPending: number | undefined;
  readonly peakPending: number;
  readonly late: { p50: number; p99: number; max: number; n: number };
  readonly early: number;
  readonly completed: number;
  readonly expired: number;
}

/** A min-heap of completion events keyed by time. */
class EventHeap<R> {
  times: number[] = [];
  items: R[] = [];
  get size(): number {
    return this.times.length;
  }
  push(t: number, item: R): void {
    const times = this.times;
    const items = this.items;
    let i = times.length;
    times.push(t);
    items.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (times[p]! <= t) break;
      times[i] = times[p]!;
      items[i] = items[p]!;
      i = p;
    }
    times[i] = t;
    items[i] = item;
  }
  peekTime(): number {
    return this.times.length === 0 ? Infinity : this.times[0]!;
  }
  pop(): R {
    const times = this.times;
    const items = this.items;
    const top = items[0]!;
    const t = times.pop()!;
    const item = items.pop()!;
    const n = times.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && times[c + 1]! < times[c]!) c++;
        if (times[c]! >= t) break;
        times[i] = times[c]!;
        items[i] = items[c]!;
        i = c;
      }
      times[i] = t;
      items[i] = item;
    }
    return top;
  }
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))]!;
}

async function run<R extends { satisfied: boolean; due: number; keys: readonly string[] }>(
  scenario: Scenario,
  impl: Impl<R>,
): Promise<Result> {
  seed = 0x2545f491; // the same arrivals and latencies for every implementation
  const keys = Array.from({ length: scenario.keySpace }, (_, i) => `key-${i}`);
  const singleKeyLists = scenario.keysPerRequest === 1 ? keys.map((k) => [k]) : undefined;
  const pickKeys = (): readonly string[] => {
    if (singleKeyLists !== undefined) return singleKeyLists[Math.floor(random() * keys.length)]!;
    const out: string[] = [];
    for (let i = 0; i < scenario.keysPerRequest; i++) out.push(keys[Math.floor(random() * keys.length)]!);
    return out;
  };
  const latency = logNormal(scenario.p50, scenario.p75);
  const completions = new EventHeap<R>();
  stats.latenessCount = 0;
  stats.measureFrom = Infinity;
  stats.setupExpired = 0;
  stats.early = 0;
  stats.expired = 0;
  stats.completed = 0;
  let requests = 0;
  let peakPending = 0;

  // Let Node drop the previous run's timers and other leftovers before taking the baseline.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const baseHeap = settledHeap();
  let heapPerPending: number | undefined;
  if (scenario.prefill !== undefined) {
    const t0 = now();
    for (let i = 0; i < scenario.prefill; i++) {
      const remaining = 1 + (scenario.timeoutMs * (i + 1)) / scenario.prefill;
      const request = impl.create(remaining, pickKeys());
      const l = latency();
      if (l < remaining) completions.push(t0 + l, request);
      impl.watch(request, request.keys);
    }
    const pending = impl.pending();
    const loaded = settledHeap();
    if (process.env.BENCH_DEBUG) console.log('heap', baseHeap, loaded, pending);
    if (pending > 0) heapPerPending = (loaded - baseHeap) / pending;
  }

  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  const cpu0 = process.cpuUsage();
  const start = now();
  stats.measureFrom = start;
  const end = start + scenario.seconds * 1000;
  const meanGap = 1000 / scenario.rate;
  const jitter = scenario.jitterMs ?? 0;
  const maxPerWake = Math.max(1, Math.ceil(scenario.rate * 0.01)); // at most 10 ms of arrivals per wake
  let nextArrival = start;

  await new Promise<void>((resolve) => {
    const loop = (): void => {
      const t = now();
      // Completion events due now: the request becomes satisfiable and its first key fires.
      while (completions.peekTime() <= t) {
        const request = completions.pop();
        request.satisfied = true;
        impl.checkAndComplete(request.keys[0]!);
      }
      if (t >= end) {
        resolve();
        return;
      }
      let injected = 0;
      while (nextArrival <= t && injected < maxPerWake) {
        const timeoutMs = jitter === 0 ? scenario.timeoutMs : scenario.timeoutMs + random() * jitter;
        const request = impl.create(timeoutMs, pickKeys());
        const l = latency();
        if (l < timeoutMs) completions.push(t + l, request);
        impl.watch(request, request.keys);
        requests++;
        injected++;
        nextArrival += -Math.log(1 - random()) * meanGap;
      }
      if (nextArrival < t - 10) nextArrival = t; // fell behind: the missed arrivals are not made up
      const pending = impl.pending();
      if (pending > peakPending) peakPending = pending;
      setTimeout(loop, 1);
    };
    loop();
  });

  const elapsed = now() - start;
  const cpu = process.cpuUsage(cpu0);
  histogram.disable();
  if (heapPerPending === undefined && impl.pending() > 0) {
    heapPerPending = (settledHeap() - baseHeap) / impl.pending();
  }
  impl.shutdown();
  const lateness = stats.lateness.subarray(0, stats.latenessCount).sort();
  return {
    impl: impl.name,
    target: scenario.rate,
    achieved: (requests / elapsed) * 1000,
    requests,
    cpuUsPerRequest: (cpu.user + cpu.system) / Math.max(1, requests),
    loopP99Ms: histogram.percentile(99) / 1e6,
    loopMaxMs: histogram.max / 1e6,
    heapPerPending,
    peakPending,
    late: {
      p50: percentile(lateness, 0.5),
      p99: percentile(lateness, 0.99),
      max: lateness.length === 0 ? Number.NaN : lateness[lateness.length - 1]!,
      n: lateness.length,
    },
    early: stats.early,
    completed: stats.completed,
    expired: stats.expired,
  };
}

// ---- reports ---------------------------------------------------------------------------------------

const fmt = (n: number | undefined, digits = 1): string =>
  n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits);

function report(scenario: Scenario, results: Result[]): void {
  const driver = results.find((r) => r.impl === 'driver only')!;
  const measured = results.filter((r) => r !== driver);
  const base = measured.find((r) => r.impl === 'timeout+map') ?? measured[0]!;
  const net = (r: Result): number => Math.max(0.001, r.cpuUsPerRequest - driver.cpuUsPerRequest);
  console.log(
    `\n## ${scenario.name}: target ${scenario.rate}/s, T ${scenario.timeoutMs}${scenario.jitterMs === undefined ? '' : ` + U(0, ${scenario.jitterMs})`} ms, p50/p75 ${scenario.p50}/${scenario.p75} ms, ` +
      `K ${scenario.keysPerRequest} of ${scenario.keySpace} keys, ${scenario.seconds} s` +
      (scenario.prefill === undefined ? '' : `, ${scenario.prefill} held from the start`),
  );
  console.log(`driver alone: ${fmt(driver.cpuUsPerRequest, 2)} µs CPU/request (subtracted below as "net")`);
  console.log(
    '| impl | achieved/s | CPU µs/req (net) | net vs (1) | loop p99 / max ms | heap B/pending | peak pending | expiry late p50 / p99 / max ms | early | completed | expired |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of measured) {
    console.log(
      `| ${r.impl} | ${fmt(r.achieved, 0)} | ${fmt(r.cpuUsPerRequest, 2)} (${fmt(net(r), 2)}) | ${fmt(net(base) / net(r), 2)}× | ` +
        `${fmt(r.loopP99Ms, 2)} / ${fmt(r.loopMaxMs, 1)} | ${r.heapPerPending !== undefined && r.heapPerPending < 0 ? 'n/a' : fmt(r.heapPerPending, 0)} | ${r.peakPending} | ` +
        `${fmt(r.late.p50, 2)} / ${fmt(r.late.p99, 2)} / ${fmt(r.late.max, 2)} | ${r.early} | ${r.completed} | ${r.expired} |`,
    );
  }
}

/** `BENCH_IMPLS=wheel` runs only those implementations (beside the driver), say to profile one. */
const onlyImpls = process.env.BENCH_IMPLS?.split(',');

async function scenarioRun(scenario: Scenario): Promise<void> {
  const results: Result[] = [];
  results.push(await run(scenario, new NullImpl()));
  const impls: (() => Impl<WheelRequest> | Impl<PlainRequest>)[] = [
    () => new WheelImpl(),
    () => new TimeoutImpl(),
    () => new ScanImpl(),
  ];
  for (const make of impls) {
    const impl = make();
    if (onlyImpls === undefined || onlyImpls.includes(impl.name.split('/')[0]!)) {
      results.push(await run(scenario, impl as Impl<WheelRequest>));
    } else {
      impl.shutdown();
    }
  }
  report(scenario, results);
}

/** Cost of add + expire per task for several wheel sizes (manual mode: the timer path alone). */
function wheelSizeSweep(): void {
  const n = QUICK ? 50_000 : 500_000;
  console.log(`\n## Wheel size sweep: ${n} tasks, add + cascade + expire, manual mode, 1 ms ticks, 1 ms steps`);
  console.log('| wheel size | ns/task, delays 1–200 ms | ns/task, delays 1–30 000 ms | levels used (30 s) |');
  console.log('|---|---|---|---|');
  const sizes = [20, 32, 64, 256, 512, 1024];
  for (const size of sizes) {
    const cells: string[] = [];
    let levels = 0;
    for (const span of [200, 30_000]) {
      let best = Infinity;
      for (let rep = 0; rep < 2; rep++) {
        const wheel = new TimingWheel({ mode: 'manual', wheelSize: size });
        const start = wheel.now();
        let ran = 0;
        const task = (): void => {
          ran++;
        };
        seed = 12345;
        const t0 = process.cpuUsage();
        for (let i = 0; i < n; i++) wheel.schedule(task, 1 + random() * span);
        for (let t = 1; t <= span + 2; t++) wheel.advanceClock(start + t);
        const used = process.cpuUsage(t0);
        if (ran !== n) throw new Error(`ran ${ran} of ${n}`);
        best = Math.min(best, ((used.user + used.system) * 1000) / n);
        if (span === 30_000) levels = wheel.overflowLevels + 1;
      }
      cells.push(fmt(best, 0));
    }
    console.log(`| ${size} | ${cells[0]} | ${cells[1]} | ${levels} |`);
  }
}

/**
 * The timer path alone, without the load generator: n timeouts with distinct deadlines, (a) all
 * expiring, (b) all cancelled right away (requests answered before their timeout).
 */
async function timerPath(): Promise<void> {
  const n = QUICK ? 100_000 : 300_000;
  console.log(`\n## Timer path alone: ${n} timeouts, distinct deadlines 500–1500 ms`);
  console.log(
    '| timer | expire all: CPU ns/timeout | late p50 / p99 / max ms | early | add + cancel: CPU ns/timeout |',
  );
  console.log('|---|---|---|---|---|');
  const delays = new Float64Array(n);
  seed = 777;
  for (let i = 0; i < n; i++) delays[i] = 500 + random() * 1000;
  for (const name of ['wheel', 'setTimeout'] as const) {
    await new Promise((r) => setTimeout(r, 50));
    settledHeap();
    const late = new Float64Array(n);
    let fired = 0;
    let early = 0;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    const wheel = new TimingWheel();
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      const due = now() + delays[i]!;
      const fn = (): void => {
        const l = now() - due;
        if (l < 0) early++;
        late[fired++] = l;
        if (fired === n) done();
      };
      if (name === 'wheel') wheel.schedule(fn, delays[i]!);
      else setTimeout(fn, delays[i]!);
    }
    const keepAlive = setInterval(() => {}, 1000); // the wheel's own timer is unref'd
    await all;
    clearInterval(keepAlive);
    const cpu = process.cpuUsage(cpu0);
    late.sort();
    // add + cancel
    const cpu1 = process.cpuUsage();
    const noop = (): void => {};
    if (name === 'wheel') {
      for (let i = 0; i < n; i++) wheel.schedule(noop, delays[i]!).cancel();
    } else {
      for (let i = 0; i < n; i++) clearTimeout(setTimeout(noop, delays[i]!));
    }
    const cpuCancel = process.cpuUsage(cpu1);
    console.log(
      `| ${name} | ${fmt(((cpu.user + cpu.system) * 1000) / n, 0)} | ${fmt(percentile(late, 0.5), 2)} / ${fmt(percentile(late, 0.99), 2)} / ${fmt(late[n - 1], 2)} | ${early} | ${fmt(((cpuCancel.user + cpuCancel.system) * 1000) / n, 0)} |`,
    );
  }
}

/**
 * Insert + complete: what a held request that gets its answer costs, timer included. N operations with
 * distinct deadlines (T + U(0, 20 s)), one key each over N/10 keys, are watched, then every key gets
 * one event that completes its operations. CPU per operation, best of alternating rounds, against the
 * same work on baselines (1) and (2).
 */
async function insertComplete(): Promise<void> {
  const n = QUICK ? 20_000 : 100_000;
  const rounds = QUICK ? 3 : 7;
  const keys = Array.from({ length: n / 10 }, (_, i) => [`ic-${i}`]);
  seed = 4242;
  // Whole milliseconds, as callers pass them (pollkit rounds its jittered waits too).
  const delays = Float64Array.from({ length: n }, () => Math.round(20_000 + random() * 20_000));
  console.log(
    `\n## Insert + complete: ${n} operations, distinct deadlines 20–40 s, ${keys.length} keys, one event per key`,
  );
  console.log('| impl | CPU ns per operation (best of ' + rounds + ') | vs (1) |');
  console.log('|---|---|---|');
  const makers: [string, () => Impl<WheelRequest> | Impl<PlainRequest>][] = [
    ['wheel', () => new WheelImpl()],
    ['timeout+map', () => new TimeoutImpl()],
    [`scan/${SCAN_PERIOD_MS}ms`, () => new ScanImpl()],
  ];
  const best = new Map<string, number>();
  for (let round = 0; round < rounds; round++) {
    for (const [name, make] of makers) {
      const impl = make() as Impl<WheelRequest>;
      const requests = Array.from({ length: n }, (_, i) => impl.create(delays[i]!, keys[i % keys.length]!));
      await new Promise((resolve) => setTimeout(resolve, 20));
      const cpu0 = process.cpuUsage();
      for (const request of requests) impl.watch(request, request.keys);
      for (const request of requests) request.satisfied = true;
      for (const key of keys) impl.checkAndComplete(key[0]!);
      const used = process.cpuUsage(cpu0);
      if (impl.pending() !== 0) throw new Error(`${name}: ${impl.pending()} left pending`);
      impl.shutdown();
      const ns = ((used.user + used.system) * 1000) / n;
      best.set(name, Math.min(best.get(name) ?? Infinity, ns));
    }
  }
  const base = best.get('timeout+map')!;
  for (const [name] of makers) {
    const ns = best.get(name)!;
    console.log(`| ${name} | ${fmt(ns, 0)} | ${fmt(base / ns, 2)}× |`);
  }
}

/** One million concurrently pending operations: heap per op and time to add them. */
async function million(): Promise<void> {
  const n = 1_000_000;
  console.log(`\n## ${n} concurrently pending operations (T 60 s, 1 key each of 10 000)`);
  const keys = Array.from({ length: 10_000 }, (_, i) => [`m-${i}`]);
  {
    const purgatory = new DelayedOperationPurgatory();
    const base = settledHeap();
    const t0 = now();
    for (let i = 0; i < n; i++)
      purgatory.tryCompleteElseWatch(new WheelRequest(60_000, keys[i % 10_000]!), keys[i % 10_000]!);
    const addMs = now() - t0;
    const heap = (settledHeap() - base) / n;
    const t1 = now();
    purgatory.shutdown();
    const shutdownMs = now() - t1;
    console.log(
      `wheel: pending ${n}, heap ${fmt(heap, 0)} B/op (the op object included), add ${fmt(addMs, 0)} ms (${fmt((addMs * 1e6) / n, 0)} ns/op), ` +
        `shutdown settling all ${fmt(shutdownMs, 0)} ms`,
    );
  }
  {
    const m = QUICK ? 200_000 : n;
    const impl = new TimeoutImpl();
    const base = settledHeap();
    const t0 = now();
    for (let i = 0; i < m; i++) impl.watch(impl.create(60_000, keys[i % 10_000]!), keys[i % 10_000]!);
    const addMs = now() - t0;
    const heap = (settledHeap() - base) / m;
    impl.shutdown();
    console.log(
      `timeout+map: pending ${m}, heap ${fmt(heap, 0)} B/op (the request object included), add ${fmt(addMs, 0)} ms (${fmt((addMs * 1e6) / m, 0)} ns/op)`,
    );
  }
  await new Promise((r) => setTimeout(r, 10));
}

async function main(): Promise<void> {
  const s = QUICK ? 0.15 : 1;
  console.log(
    `# Purgatory benchmark${QUICK ? ' (--quick)' : ''}: Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
  );
  console.log(`gc exposed: ${typeof (globalThis as { gc?: unknown }).gc === 'function' ? 'yes' : 'via v8 flag'}`);
  const scenarios: Scenario[] = [
    {
      name: 'low-timeout',
      rate: 50_000,
      timeoutMs: 200,
      p50: 20,
      p75: 60,
      keysPerRequest: 3,
      keySpace: 1000,
      seconds: 10 * s,
    },
    {
      name: 'high-timeout',
      rate: 200_000,
      timeoutMs: 200,
      p50: 200,
      p75: 400,
      keysPerRequest: 3,
      keySpace: 1000,
      seconds: 10 * s,
    },
    {
      name: "Kafka's published run",
      rate: 10_000,
      timeoutMs: 200,
      p50: 20,
      p75: 60,
      keysPerRequest: 100,
      keySpace: 1000,
      seconds: 10 * s,
    },
    {
      name: 'long-poll',
      rate: QUICK ? 1000 : 3334,
      timeoutMs: QUICK ? 5000 : 30_000,
      p50: QUICK ? 10_000 : 60_000,
      p75: QUICK ? 20_000 : 120_000,
      keysPerRequest: 1,
      keySpace: 100_000,
      seconds: QUICK ? 2 : 20,
      prefill: QUICK ? 10_000 : 100_000,
    },
    {
      name: 'long-poll, distinct deadlines',
      rate: QUICK ? 1000 : 3334,
      timeoutMs: QUICK ? 4000 : 20_000,
      jitterMs: QUICK ? 2000 : 20_000,
      p50: QUICK ? 10_000 : 60_000,
      p75: QUICK ? 20_000 : 120_000,
      keysPerRequest: 1,
      keySpace: 100_000,
      seconds: QUICK ? 2 : 20,
      prefill: QUICK ? 10_000 : 100_000,
    },
  ];
  const only = process.env.BENCH_ONLY;
  if (only === 'timer') {
    await timerPath();
    return;
  }
  if (only === 'insert') {
    await insertComplete();
    return;
  }
  if (only === undefined) wheelSizeSweep();
  for (const scenario of scenarios)
    if (only === undefined || scenario.name.startsWith(only)) await scenarioRun(scenario);
  if (only === undefined) await insertComplete();
  if (only === undefined) await timerPath();
  if (only === undefined) await million();
}

await main();
