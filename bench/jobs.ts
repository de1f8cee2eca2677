/**
 * How much do the purgatory-backed JobRegistry and Topic cost next to what people write by hand?
 *
 * Each scenario runs twice in the same process: once on pollkit, once on a naive baseline built from
 * `setTimeout` and arrays (one timer per held waiter, an array of waiters per job or topic, resolved
 * by walking the array). It prints throughput for both and the ratio pollkit ÷ naive (above 1 means
 * pollkit is faster) twice: by wall time, and by the CPU time this process used (steadier when other
 * processes share the machine). With `--expose-gc` it also prints the heap each held waiter costs.
 * Each side runs once to warm up, then alternately REPEATS times; the best run of each side counts.
 *
 *   node --expose-gc --import tsx bench/jobs.ts [--quick] [--only=1,4]
 *
 * `--only` picks scenarios by number (1: 0 waiters, 2: 1 waiter, 3: 1,000 waiters, 4: topic wake).
 *
 * Beside the naive baseline runs a floor: the naive code plus only what pollkit has to do that it does
 * not (see `FloorJobs` and `FloorTopic`). pollkit ÷ floor says what pollkit's own code costs; floor ÷
 * naive what the guarantees alone cost, so a scenario whose floor is below 1.0× naive cannot reach it.
 *
 * @module
 */
import { performance } from 'node:perf_hooks';
import { setImmediate as tick } from 'node:timers/promises';
import type { JobSnapshot, TopicFetchResult } from '../src/core/protocol.js';
import { JobRegistry } from '../src/server/jobs/job-registry.js';
import { TopicRegistry } from '../src/server/topics/topic-registry.js';

const quick = process.argv.includes('--quick');
const only = process.argv
  .find((arg) => arg.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',');
const runs = (scenario: number): boolean => only === undefined || only.includes(String(scenario));
const HOLD_MS = 30_000;
const gc = (globalThis as { gc?: () => void }).gc;

interface Measurement {
  /** Wall-clock seconds. */
  readonly seconds: number;
  /** CPU seconds of this process over the same span: steadier than wall time on a shared machine. */
  readonly cpuSeconds: number;
  readonly operations: number;
  readonly heapPerWaiter?: number | undefined;
}

// --- the naive baseline -----------------------------------------------------------------------------

interface NaiveWaiter<T> {
  readonly resolve: (value: T) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

interface NaiveJob {
  snapshot: JobSnapshot;
  waiters: NaiveWaiter<JobSnapshot>[];
}

/** A job table as written by hand: a Map, a waiter array per job, a setTimeout per waiter. */
class NaiveJobs {
  readonly jobs = new Map<string, NaiveJob>();
  constructor(readonly handler: (id: string) => Promise<unknown>) {}

  async submit(type: string): Promise<JobSnapshot> {
    const now = new Date().toISOString();
    const snapshot: JobSnapshot = {
      id: globalThis.crypto.randomUUID(),
      type,
      status: 'queued',
      done: false,
      progress: null,
      result: null,
      error: null,
      version: 1,
      createdAt: now,
      updatedAt: now,
      startedAt: null,
      finishedAt: null,
      expiresAt: null,
    };
    const job: NaiveJob = { snapshot, waiters: [] };
    this.jobs.set(snapshot.id, job);
    void Promise.resolve().then(() => this.#run(job));
    return snapshot;
  }

  async #run(job: NaiveJob): Promise<void> {
    this.#change(job, { status: 'running', startedAt: new Date().toISOString() });
    const result = await this.handler(job.snapshot.id);
    this.#change(job, { status: 'succeeded', done: true, result, finishedAt: new Date().toISOString() });
  }

  #change(job: NaiveJob, changes: Partial<JobSnapshot>): void {
    job.snapshot = { ...job.snapshot, ...changes, version: job.snapshot.version + 1 };
    const waiters = job.waiters;
    job.waiters = [];
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(job.snapshot);
    }
  }

  wait(id: string, sinceVersion: number, timeoutMs: number): Promise<JobSnapshot | undefined> {
    const job = this.jobs.get(id);
    if (job === undefined) return Promise.resolve(undefined);
    if (job.snapshot.version !== sinceVersion) return Promise.resolve(job.snapshot);
    return new Promise((resolve) => {
      const waiter: NaiveWaiter<JobSnapshot> = {
        resolve,
        timer: setTimeout(() => {
          job.waiters.splice(job.waiters.indexOf(waiter), 1);
          resolve(job.snapshot);
        }, timeoutMs),
      };
      job.waiters.push(waiter);
    });
  }
}

/** A topic as written by hand: an array log, a reader array, a setTimeout per reader. */
class NaiveTopic {
  readonly log: { offset: number; timestamp: string; key: string | null; value: unknown }[] = [];
  readers: (NaiveWaiter<unknown[]> & { offset: number })[] = [];

  append(value: unknown): number {
    const offset = this.log.length;
    this.log.push({ offset, timestamp: new Date().toISOString(), key: null, value });
    const readers = this.readers;
    this.readers = [];
    for (const reader of readers) {
      clearTimeout(reader.timer);
      reader.resolve(this.log.slice(reader.offset, reader.offset + 100));
    }
    return offset;
  }

  read(offset: number, waitMs: number): Promise<unknown[]> {
    if (offset < this.log.length) return Promise.resolve(this.log.slice(offset, offset + 100));
    return new Promise((resolve) => {
      const reader = {
        offset,
        resolve,
        timer: setTimeout(() => {
          this.readers.splice(this.readers.indexOf(reader), 1);
          resolve([]);
        }, waitMs),
      };
      this.readers.push(reader);
    });
  }
}

// --- the floor: naive plus the guarantees pollkit keeps ----------------------------------------------

interface FloorJob {
  snapshot: JobSnapshot;
  lease: { readonly holder: string; readonly expiresAtMs: number } | undefined;
  expiresAtMs: number | undefined;
}

/**
 * What every job store is to a registry: a Map behind async methods (`JobStore` is async, so a Redis
 * store can take its place), writes that replace a frozen job and announce the change to listeners,
 * an index of the leases of unfinished jobs (so another process can fail or rerun the jobs of one
 * that died) and an expiry index of finished ones (retention).
 */
class FloorStore {
  readonly jobs = new Map<string, FloorJob>();
  readonly leases = new Map<string, number>();
  readonly expiries: number[] = [];
  readonly expiringIds: string[] = [];
  listener: ((id: string, job: FloorJob) => void) | undefined;

  async insert(job: FloorJob): Promise<FloorJob> {
    this.jobs.set(job.snapshot.id, job);
    this.#index(job);
    return job;
  }

  async update(id: string, next: (job: FloorJob) => FloorJob): Promise<FloorJob | undefined> {
    const current = this.jobs.get(id);
    if (current === undefined) return undefined;
    const job = next(current);
    if (job.snapshot.version <= current.snapshot.version) throw new Error('a write must raise the version');
    this.jobs.set(id, job);
    this.#index(job);
    return job;
  }

  #index(job: FloorJob): void {
    const id = job.snapshot.id;
    if (job.lease !== undefined && !job.snapshot.done) this.leases.set(id, job.lease.expiresAtMs);
    else this.leases.delete(id);
    if (job.expiresAtMs !== undefined) {
      this.expiries.push(job.expiresAtMs);
      this.expiringIds.push(id);
    }
    this.listener?.(id, job);
  }
}

/**
 * The floor under the registry: the naive registry plus only what pollkit must keep and it lacks —
 * jobs behind an async store (`FloorStore`), each state a new frozen snapshot, a lease the process
 * holds (and renews) while a job is queued or running, and a retention expiry on each finished job.
 * Its waiters are the naive ones (a setTimeout each), woken from the store's change notice.
 */
class FloorJobs {
  readonly store = new FloorStore();
  readonly held = new Set<string>();
  readonly waiters = new Map<string, NaiveWaiter<JobSnapshot>[]>();
  readonly holder = globalThis.crypto.randomUUID();
  constructor(readonly handler: (id: string) => Promise<unknown>) {
    this.store.listener = (id, job) => this.#wake(id, job.snapshot);
  }

  async submit(type: string): Promise<JobSnapshot> {
    const nowMs = Date.now();
    const now = new Date(nowMs).toISOString();
    const snapshot: JobSnapshot = Object.freeze({
      id: globalThis.crypto.randomUUID(),
      type,
      status: 'queued',
      done: false,
      progress: null,
      result: null,
      error: null,
      version: 1,
      createdAt: now,
      updatedAt: now,
      startedAt: null,
      finishedAt: null,
      expiresAt: null,
    });
    const job = await this.store.insert({ snapshot, lease: this.#lease(nowMs), expiresAtMs: undefined });
    this.held.add(snapshot.id);
    void Promise.resolve().then(() => this.#run(snapshot.id));
    return job.snapshot;
  }

  async #run(id: string): Promise<void> {
    await this.store.update(id, (job) => {
      const nowMs = Date.now();
      const now = new Date(nowMs).toISOString();
      const s = job.snapshot;
      const snapshot = frozenSnapshot(s, 'running', false, null, s.version + 1, now, now, null, null);
      return Object.freeze({ snapshot, lease: this.#lease(nowMs), expiresAtMs: undefined });
    });
    const result = await this.handler(id);
    await this.store.update(id, (job) => {
      const nowMs = Date.now();
      const expiresAtMs = nowMs + 3_600_000;
      const now = new Date(nowMs).toISOString();
      const expiresAt = new Date(expiresAtMs).toISOString();
      const s = job.snapshot;
      const snapshot = frozenSnapshot(s, 'succeeded', true, result, s.version + 1, now, s.startedAt, now, expiresAt);
      return Object.freeze({ snapshot, lease: undefined, expiresAtMs });
    });
    this.held.delete(id);
  }

  #lease(nowMs: number): { readonly holder: string; readonly expiresAtMs: number } {
    return Object.freeze({ holder: this.holder, expiresAtMs: nowMs + 30_000 });
  }

  #wake(id: string, snapshot: JobSnapshot): void {
    const waiters = this.waiters.get(id);
    if (waiters === undefined) return;
    this.waiters.delete(id);
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(snapshot);
    }
  }

  // Reads the in-process store synchronously, as pollkit's registry does on its in-memory store.
  wait(id: string, sinceVersion: number, timeoutMs: number): Promise<JobSnapshot | undefined> {
    const job = this.store.jobs.get(id);
    if (job === undefined) return Promise.resolve(undefined);
    if (job.snapshot.version !== sinceVersion) return Promise.resolve(job.snapshot);
    return new Promise((resolve) => {
      let waiters = this.waiters.get(id);
      if (waiters === undefined) this.waiters.set(id, (waiters = []));
      const list = waiters;
      const waiter: NaiveWaiter<JobSnapshot> = {
        resolve,
        timer: setTimeout(() => {
          list.splice(list.indexOf(waiter), 1);
          resolve(this.store.jobs.get(id)?.snapshot);
        }, timeoutMs),
      };
      list.push(waiter);
    });
  }
}

// Built field by field, as pollkit builds its snapshots: a spread of the previous one costs more.
function frozenSnapshot(
  s: JobSnapshot,
  status: JobSnapshot['status'],
  done: boolean,
  result: unknown,
  version: number,
  updatedAt: string,
  startedAt: string | null,
  finishedAt: string | null,
  expiresAt: string | null,
): JobSnapshot {
  return Object.freeze({
    id: s.id,
    type: s.type,
    status,
    done,
    progress: s.progress,
    result,
    error: s.error,
    version,
    createdAt: s.createdAt,
    updatedAt,
    startedAt,
    finishedAt,
    expiresAt,
  });
}

/**
 * The floor under the topic: the naive topic plus only what pollkit keeps and it lacks — woken
 * readers are resumed in batches of 256 with 16 microtask hops between two batches (the purgatory's
 * defaults), so that under a wake-up of thousands the first answers are written within milliseconds
 * instead of after all of them are built, and records are frozen, since every reader gets the same
 * ones. (pollkit also shares one frozen answer between the readers at the same offset: a saving, not a
 * guarantee, so the floor slices per reader as the naive topic does.)
 */
class FloorTopic extends NaiveTopic {
  override append(value: unknown): number {
    const offset = this.log.length;
    this.log.push(Object.freeze({ offset, timestamp: new Date().toISOString(), key: null, value }));
    const readers = this.readers;
    this.readers = [];
    let index = 0;
    const batch = (): void => {
      const end = Math.min(readers.length, index + 256);
      for (; index < end; index++) {
        const reader = readers[index]!;
        clearTimeout(reader.timer);
        reader.resolve(this.log.slice(reader.offset, reader.offset + 100));
      }
      if (index < readers.length) hop(16);
    };
    const hop = (left: number): void => queueMicrotask(left > 1 ? () => hop(left - 1) : batch);
    batch();
    return offset;
  }
}

// --- scenarios --------------------------------------------------------------------------------------

/** A handler that runs until the bench opens its gate, so waiters can be placed on a running job. */
function gatedHandlers() {
  const gates = new Map<string, () => void>();
  let started = 0;
  let onStarted: (() => void) | undefined;
  let target = 0;
  const handler = (id: string): Promise<string> =>
    new Promise((resolve) => {
      gates.set(id, () => resolve('ok'));
      if (++started === target) onStarted?.();
    });
  return {
    handler,
    expect(count: number): Promise<void> {
      started = 0;
      target = count;
      return new Promise((resolve) => (onStarted = resolve));
    },
    open(): void {
      for (const open of gates.values()) open();
      gates.clear();
    },
  };
}

async function jobsPollkit(jobs: number, waiters: number, batch: number): Promise<Measurement> {
  const gated = gatedHandlers();
  const registry = new JobRegistry({ concurrency: batch, maxQueued: batch });
  registry.define('bench', ({ id }) => gated.handler(id));
  const started = performance.now();
  const cpu = process.cpuUsage();
  for (let done = 0; done < jobs; done += batch) {
    const size = Math.min(batch, jobs - done);
    const running = gated.expect(size);
    const submitted = await Promise.all(Array.from({ length: size }, (_, i) => registry.submit('bench', i)));
    await running;
    const held: Promise<JobSnapshot | undefined>[] = [];
    for (const job of submitted) {
      for (let w = 0; w < waiters; w++) held.push(registry.wait(job.id, { sinceVersion: 2, timeoutMs: HOLD_MS }));
    }
    await tick();
    gated.open();
    const results = await Promise.all(held);
    await registry.onIdle();
    if (results.some((job) => job?.status !== 'succeeded')) throw new Error('a pollkit waiter saw the wrong state');
  }
  const seconds = (performance.now() - started) / 1000;
  const cpuSeconds = cpuSince(cpu);
  await registry.close();
  return { seconds, cpuSeconds, operations: jobs };
}

/** The registries written by hand (the naive one and the floor), as the job scenarios drive them. */
interface HandJobs {
  submit(type: string): Promise<JobSnapshot>;
  wait(id: string, sinceVersion: number, timeoutMs: number): Promise<JobSnapshot | undefined>;
}

async function jobsByHand(kind: 'naive' | 'floor', jobs: number, waiters: number, batch: number): Promise<Measurement> {
  const gated = gatedHandlers();
  const handler = (id: string): Promise<unknown> => gated.handler(id);
  const registry: HandJobs = kind === 'naive' ? new NaiveJobs(handler) : new FloorJobs(handler);
  const started = performance.now();
  const cpu = process.cpuUsage();
  for (let done = 0; done < jobs; done += batch) {
    const size = Math.min(batch, jobs - done);
    const running = gated.expect(size);
    const submitted = await Promise.all(Array.from({ length: size }, () => registry.submit('bench')));
    await running;
    const held: Promise<JobSnapshot | undefined>[] = [];
    for (const job of submitted) {
      for (let w = 0; w < waiters; w++) held.push(registry.wait(job.id, 2, HOLD_MS));
    }
    await tick();
    gated.open();
    const results = await Promise.all(held);
    await tick();
    if (results.some((job) => job?.status !== 'succeeded')) throw new Error(`a ${kind} waiter saw the wrong state`);
  }
  return { seconds: (performance.now() - started) / 1000, cpuSeconds: cpuSince(cpu), operations: jobs };
}

/**
 * Holds the waiters of one round; in the first round (`measure`) also collects garbage around it to
 * weigh them. Only that round: a forced full collection just before every timed wake-up would time
 * V8 rebuilding its optimized code rather than the wake-up (with nothing held, a full collection
 * drops the hidden classes of the held objects and deoptimizes the code that embedded them).
 */
async function heapOf(
  measure: boolean,
  hold: () => Promise<unknown>[],
): Promise<{ bytes: number; held: Promise<unknown>[] }> {
  if (measure) gc?.();
  const before = process.memoryUsage().heapUsed;
  const held = hold();
  await tick();
  if (measure) gc?.();
  return { bytes: process.memoryUsage().heapUsed - before, held };
}

async function topicPollkit(readers: number, rounds: number): Promise<Measurement> {
  const topics = new TopicRegistry();
  const topic = topics.topic('bench');
  let wakeSeconds = 0;
  let cpuSeconds = 0;
  let heapPerWaiter: number | undefined;
  // Round 0 weighs the waiters and is not timed; the rounds after it are.
  for (let round = 0; round <= rounds; round++) {
    const offset = round;
    const { bytes, held } = await heapOf(round === 0, () =>
      Array.from({ length: readers }, () => topic.read(offset, { waitMs: HOLD_MS })),
    );
    if (round === 0 && gc !== undefined) heapPerWaiter = bytes / readers;
    const started = performance.now();
    const cpu = process.cpuUsage();
    await topic.append(round);
    const results = (await Promise.all(held)) as TopicFetchResult[];
    if (round > 0) {
      wakeSeconds += (performance.now() - started) / 1000;
      cpuSeconds += cpuSince(cpu);
    }
    if (results.some((r) => r.records.length !== 1)) throw new Error('a pollkit reader missed the record');
  }
  await topics.close();
  return { seconds: wakeSeconds, cpuSeconds, operations: readers * rounds, heapPerWaiter };
}

/** The naive topic and the floor's; only the naive one is weighed (the floor's readers are the same). */
async function topicByHand(kind: 'naive' | 'floor', readers: number, rounds: number): Promise<Measurement> {
  const topic = kind === 'naive' ? new NaiveTopic() : new FloorTopic();
  let wakeSeconds = 0;
  let cpuSeconds = 0;
  let heapPerWaiter: number | undefined;
  for (let round = 0; round <= rounds; round++) {
    const offset = round;
    const weigh = kind === 'naive' && round === 0;
    const { bytes, held } = await heapOf(weigh, () =>
      Array.from({ length: readers }, () => topic.read(offset, HOLD_MS)),
    );
    if (weigh && gc !== undefined) heapPerWaiter = bytes / readers;
    const started = performance.now();
    const cpu = process.cpuUsage();
    topic.append(round);
    const results = (await Promise.all(held)) as unknown[][];
    if (round > 0) {
      wakeSeconds += (performance.now() - started) / 1000;
      cpuSeconds += cpuSince(cpu);
    }
    if (results.some((r) => r.length !== 1)) throw new Error(`a ${kind} reader missed the record`);
  }
  return { seconds: wakeSeconds, cpuSeconds, operations: readers * rounds, heapPerWaiter };
}

/** Heap per held `wait` on a running job: 10,000 waiters on 10 jobs, weighed, then released by the jobs' ends. */
async function jobWaiterHeap(kind: 'pollkit' | 'naive'): Promise<number> {
  const gated = gatedHandlers();
  const waiters = 10_000;
  if (kind === 'pollkit') {
    const registry = new JobRegistry({ concurrency: 10, maxQueued: 10 });
    registry.define('bench', ({ id }) => gated.handler(id));
    const running = gated.expect(10);
    const jobs = await Promise.all(Array.from({ length: 10 }, (_, i) => registry.submit('bench', i)));
    await running;
    const { bytes, held } = await heapOf(true, () =>
      Array.from({ length: waiters }, (_, i) =>
        registry.wait(jobs[i % 10]!.id, { sinceVersion: 2, timeoutMs: HOLD_MS }),
      ),
    );
    gated.open();
    await Promise.all(held);
    await registry.close();
    return bytes / waiters;
  }
  const naive = new NaiveJobs((id) => gated.handler(id));
  const running = gated.expect(10);
  const jobs = await Promise.all(Array.from({ length: 10 }, () => naive.submit('bench')));
  await running;
  const { bytes, held } = await heapOf(true, () =>
    Array.from({ length: waiters }, (_, i) => naive.wait(jobs[i % 10]!.id, 2, HOLD_MS)),
  );
  gated.open();
  await Promise.all(held);
  return bytes / waiters;
}

// --- reporting --------------------------------------------------------------------------------------

function rate(m: Measurement): number {
  return m.operations / m.seconds;
}

function cpuRate(m: Measurement): number {
  return m.operations / m.cpuSeconds;
}

function cpuSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

function format(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

async function compare(
  label: string,
  unit: string,
  pollkit: () => Promise<Measurement>,
  naive: () => Promise<Measurement>,
  floor: () => Promise<Measurement>,
): Promise<void> {
  // One warm-up of each so the JIT has seen all, then alternating runs; the best of each counts, since
  // a shared machine only ever makes a run slower, never faster.
  await pollkit();
  await naive();
  await floor();
  let p: Measurement | undefined;
  let n: Measurement | undefined;
  let f: Measurement | undefined;
  let pCpu: Measurement | undefined;
  let nCpu: Measurement | undefined;
  let fCpu: Measurement | undefined;
  for (let run = 0; run < REPEATS; run++) {
    const pRun = await pollkit();
    const nRun = await naive();
    const fRun = await floor();
    if (p === undefined || rate(pRun) > rate(p)) p = pRun;
    if (n === undefined || rate(nRun) > rate(n)) n = nRun;
    if (f === undefined || rate(fRun) > rate(f)) f = fRun;
    if (pCpu === undefined || cpuRate(pRun) > cpuRate(pCpu)) pCpu = pRun;
    if (nCpu === undefined || cpuRate(nRun) > cpuRate(nCpu)) nCpu = nRun;
    if (fCpu === undefined || cpuRate(fRun) > cpuRate(fCpu)) fCpu = fRun;
  }
  if (
    p === undefined ||
    n === undefined ||
    f === undefined ||
    pCpu === undefined ||
    nCpu === undefined ||
    fCpu === undefined
  ) {
    throw new Error('no runs');
  }
  const pad = ''.padEnd(LABEL_WIDTH);
  console.log(
    `${label.padEnd(LABEL_WIDTH)} wall: pollkit ${format(rate(p)).padStart(11)} ${unit}   naive ${format(rate(n)).padStart(11)} ${unit}   ratio ${(rate(p) / rate(n)).toFixed(2)}x`,
  );
  console.log(
    `${pad} cpu:  pollkit ${format(cpuRate(pCpu)).padStart(11)} ${unit}   naive ${format(cpuRate(nCpu)).padStart(11)} ${unit}   ratio ${(cpuRate(pCpu) / cpuRate(nCpu)).toFixed(2)}x`,
  );
  console.log(
    `${pad} floor: wall ${format(rate(f))} ${unit}, pollkit ÷ floor ${(rate(p) / rate(f)).toFixed(2)}x, floor ÷ naive ${(rate(f) / rate(n)).toFixed(2)}x;` +
      ` cpu ${format(cpuRate(fCpu))} ${unit}, pollkit ÷ floor ${(cpuRate(pCpu) / cpuRate(fCpu)).toFixed(2)}x, floor ÷ naive ${(cpuRate(fCpu) / cpuRate(nCpu)).toFixed(2)}x`,
  );
  if (p.heapPerWaiter !== undefined && n.heapPerWaiter !== undefined) {
    console.log(
      `${pad} heap per held waiter: pollkit ${Math.round(p.heapPerWaiter)} B, naive ${Math.round(n.heapPerWaiter)} B`,
    );
  }
}

const scale = quick ? 0.2 : 1;
const REPEATS = quick ? 2 : 3;
const LABEL_WIDTH = 36;
const jobs0 = Math.round(20_000 * scale);
const jobs1 = Math.round(20_000 * scale);
const jobs1000 = Math.round(200 * scale);
const topicRounds = Math.round(20 * scale);

console.log(
  `pollkit bench/jobs ${quick ? '(--quick)' : ''} — node ${process.version}${gc ? '' : ' (run with --expose-gc for heap figures)'}`,
);
if (runs(1)) {
  await compare(
    `submit → succeed, 0 waiters/job`,
    'jobs/s',
    () => jobsPollkit(jobs0, 0, 100),
    () => jobsByHand('naive', jobs0, 0, 100),
    () => jobsByHand('floor', jobs0, 0, 100),
  );
}
if (runs(2)) {
  await compare(
    `submit → succeed, 1 waiter/job`,
    'jobs/s',
    () => jobsPollkit(jobs1, 1, 100),
    () => jobsByHand('naive', jobs1, 1, 100),
    () => jobsByHand('floor', jobs1, 1, 100),
  );
}
if (runs(3)) {
  await compare(
    `submit → succeed, 1,000 waiters/job`,
    'jobs/s',
    () => jobsPollkit(jobs1000, 1000, 10),
    () => jobsByHand('naive', jobs1000, 1000, 10),
    () => jobsByHand('floor', jobs1000, 1000, 10),
  );
  if (gc !== undefined) {
    const [pollkit, naive] = [await jobWaiterHeap('pollkit'), await jobWaiterHeap('naive')];
    console.log(
      `${''.padEnd(LABEL_WIDTH)} heap per held job waiter: pollkit ${Math.round(pollkit)} B, naive ${Math.round(naive)} B`,
    );
  }
}
if (runs(4)) {
  await compare(
    `topic append + wake, 10,000 readers`,
    'wakes/s',
    () => topicPollkit(10_000, topicRounds),
    () => topicByHand('naive', 10_000, topicRounds),
    () => topicByHand('floor', 10_000, topicRounds),
  );
}
