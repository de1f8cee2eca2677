/**
 * What polling costs and what it buys: requests, bytes and delivery latency per event for short
 * polling (1 s and 5 s) and long polling (30 s wait), beside the textbook values, plus the request
 * peak when 1,000 pollers start in the same instant.
 *
 * `node --import tsx bench/clients.ts [--quick]` simulates on a {@link ManualClock}, so the figures are
 * deterministic (seeded) and independent of the machine. Every row drives real {@link ShortPoller} /
 * {@link LongPoller} instances over a simulated server: a request takes `ONE_WAY_MS` to reach it and
 * its answer `ONE_WAY_MS` to come back; a held long poll is answered at the next change or when its
 * wait ends. Bytes are modelled per request and answer (see the constants below).
 *
 * Scenarios:
 * - jobs: each client watches one job that queues for up to 2 s and then runs for a log-uniform time
 *   between 2 s and 10 min (3 versions: queued, running, succeeded). Short polls are conditional
 *   (304 when unchanged). Printed: requests and bytes per job, latency from the job's end to the client
 *   knowing it.
 * - topics: each client consumes its own topic with Poisson arrivals at λ = 1/s, 1/min and 1/h.
 *   Printed: requests and bytes per delivered record, mean and p99 delivery latency, beside theory:
 *   short polling 1/(λT) requests per event and T/2 + one way latency; long polling
 *   1 + e^(−λH)/(1 − e^(−λH)) requests per event (H = the wait) and one way latency.
 * - start storm: 1,000 pollers started at the same instant; the peak of requests in any 100 ms window
 *   after the first (identical for all: everyone asks at t = 0), with pollkit's default interval and
 *   with an un-jittered fixed 1 s interval.
 *
 * `--quick` simulates 100 clients over shorter spans (< 30 s); the full run uses 1,000 clients.
 *
 * @module
 */
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { LongPoller, type LongPollBatch } from '../src/client/long-poller.js';
import { pollReply, ShortPoller, unchangedReply } from '../src/client/short-poller.js';
import { sleep } from '../src/core/abort.js';
import { type BackoffPolicy } from '../src/core/backoff.js';
import { ManualClock, seededRandom } from '../src/core/clock.js';

const quick = process.argv.includes('--quick');
const CLIENTS = quick ? 100 : 1000;
/** One-way network latency. */
const ONE_WAY_MS = 20;
/** The server-side wait of long polls. */
const WAIT_MS = 30_000;
/** A GET with its headers (Host, Accept, If-None-Match / Prefer, a cookie). */
const REQUEST_BYTES = 350;
/** Status line and headers of an answer. */
const RESPONSE_HEADER_BYTES = 250;
/** A job snapshot as JSON. */
const JOB_BYTES = 380;
/** A topic answer's envelope without records. */
const TOPIC_ENVELOPE_BYTES = 140;
/** One record as JSON. */
const RECORD_BYTES = 160;

/** Fires timers in order, letting every promise chain settle between instants. */
async function runUntil(clock: ManualClock, until: number): Promise<void> {
  await nextMacrotask();
  for (;;) {
    const next = clock.nextTimerAt();
    if (next === undefined || next > until) break;
    clock.advanceTo(next);
    // A macrotask boundary: every microtask queued by the timers above, transitively, runs first.
    await nextMacrotask();
  }
  clock.advanceTo(until);
  await nextMacrotask();
}

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((sum, value) => sum + value, 0) / values.length;
}

function fmt(value: number, digits = 2): string {
  if (!Number.isFinite(value)) return '—';
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  return value.toFixed(digits);
}

function seconds(ms: number): string {
  return ms >= 1000 ? `${fmt(ms / 1000, 2)} s` : `${fmt(ms, 0)} ms`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ');
  console.log(line(header));
  console.log(widths.map((width) => '-'.repeat(width)).join('  '));
  for (const row of rows) console.log(line(row));
}

// ---------------------------------------------------------------------------------------------------
// Jobs

interface SimJob {
  readonly runningAt: number;
  readonly finishedAt: number;
}

interface JobView {
  readonly version: number;
  readonly status: 'queued' | 'running' | 'succeeded';
}

function jobAt(job: SimJob, now: number): JobView {
  if (now >= job.finishedAt) return { version: 3, status: 'succeeded' };
  if (now >= job.runningAt) return { version: 2, status: 'running' };
  return { version: 1, status: 'queued' };
}

function nextChange(job: SimJob, now: number): number {
  if (now < job.runningAt) return job.runningAt;
  if (now < job.finishedAt) return job.finishedAt;
  return Number.POSITIVE_INFINITY;
}

function makeJobs(count: number, seed: number): SimJob[] {
  const random = seededRandom(seed);
  const jobs: SimJob[] = [];
  for (let i = 0; i < count; i++) {
    const runningAt = random() * 2000;
    const length = 2000 * Math.exp(random() * Math.log(600_000 / 2000));
    jobs.push({ runningAt, finishedAt: runningAt + length });
  }
  return jobs;
}

interface Tally {
  requests: number;
  bytes: number;
  readonly latencies: number[];
}

type Interval = number | BackoffPolicy | undefined;

async function jobsShort(jobs: readonly SimJob[], interval: Interval, seed: number): Promise<Tally> {
  const clock = new ManualClock({ seed });
  const tally: Tally = { requests: 0, bytes: 0, latencies: [] };
  const horizon = Math.max(...jobs.map((job) => job.finishedAt)) + 60_000;
  for (const job of jobs) {
    const poller = new ShortPoller<JobView>({
      clock,
      budget: false,
      requestTimeoutMs: Number.POSITIVE_INFINITY,
      ...(interval === undefined ? {} : { interval }),
      done: (view) => view.status === 'succeeded',
      equals: (a, b) => a.version === b.version,
      poll: async ({ cursor, signal }) => {
        tally.requests++;
        // The server reads the job when the request reaches it; the answer lands one way later.
        const view = jobAt(job, clock.now() + ONE_WAY_MS);
        const unchanged = cursor !== undefined && cursor.version === view.version;
        tally.bytes += REQUEST_BYTES + RESPONSE_HEADER_BYTES + (unchanged ? 0 : JOB_BYTES);
        await sleep(2 * ONE_WAY_MS, { clock, signal });
        return unchanged ? unchangedReply() : pollReply(view);
      },
    });
    poller.on('result', () => tally.latencies.push(clock.now() - job.finishedAt));
    poller.start();
  }
  await runUntil(clock, horizon);
  return tally;
}

async function jobsLong(jobs: readonly SimJob[], seed: number): Promise<Tally> {
  const clock = new ManualClock({ seed });
  const tally: Tally = { requests: 0, bytes: 0, latencies: [] };
  const horizon = Math.max(...jobs.map((job) => job.finishedAt)) + 60_000;
  for (const job of jobs) {
    const poller = new LongPoller<JobView, number>({
      clock,
      budget: false,
      waitMs: WAIT_MS,
      requestTimeoutMs: Number.POSITIVE_INFINITY,
      poll: async ({ cursor, signal, waitMs }): Promise<LongPollBatch<JobView, number>> => {
        tally.requests++;
        // Held at the server from arrival until the next change or the end of the wait.
        const arrival = clock.now() + ONE_WAY_MS;
        let answeredAt = arrival;
        let view = jobAt(job, arrival);
        if (cursor !== undefined && view.version === cursor) {
          answeredAt = Math.min(nextChange(job, arrival), arrival + waitMs);
          view = jobAt(job, answeredAt);
        }
        const changed = view.version !== cursor;
        tally.bytes += REQUEST_BYTES + RESPONSE_HEADER_BYTES + (changed ? JOB_BYTES : 0);
        await sleep(answeredAt + ONE_WAY_MS - clock.now(), { clock, signal });
        return changed
          ? { records: [view], cursor: view.version, done: view.status === 'succeeded' }
          : { records: [], cursor: view.version };
      },
    });
    void poller.result().then(() => tally.latencies.push(clock.now() - job.finishedAt));
  }
  await runUntil(clock, horizon);
  return tally;
}

async function jobsScenario(): Promise<void> {
  const jobs = makeJobs(CLIENTS, 7);
  const meanLength = mean(jobs.map((job) => job.finishedAt));
  console.log(
    `\n## Jobs: ${CLIENTS} clients, one job each (mean time to finish ${seconds(meanLength)}), one-way latency ${ONE_WAY_MS} ms`,
  );
  const rows: string[][] = [];
  const expectedLong = mean(
    jobs.map(
      (job) => 1 + 2 + Math.floor(job.runningAt / WAIT_MS) + Math.floor((job.finishedAt - job.runningAt) / WAIT_MS),
    ),
  );
  const variants: [string, Interval, number][] = [
    ['short, 1 s', 1000, 1 + meanLength / 1000],
    ['short, 5 s', 5000, 1 + meanLength / 5000],
    ['short, pollkit default (1 s ×1.5 → 15 s)', undefined, Number.NaN],
  ];
  for (const [name, interval, theory] of variants) {
    const tally = await jobsShort(jobs, interval, 11);
    rows.push(row(name, tally, jobs.length, theory));
  }
  rows.push(row('long, 30 s wait', await jobsLong(jobs, 11), jobs.length, expectedLong));
  table(['pattern', 'requests/job', 'theory', 'KiB/job', 'latency mean', 'p99'], rows);
  console.log('theory: short 1 + L/T; long 1 + 2 changes + ⌊gap/H⌋ timeouts per gap between changes');

  function row(name: string, tally: Tally, count: number, theory: number): string[] {
    return [
      name,
      fmt(tally.requests / count, 1),
      fmt(theory, 1),
      fmt(tally.bytes / count / 1024, 1),
      seconds(mean(tally.latencies)),
      seconds(percentile(tally.latencies, 99)),
    ];
  }
}

// ---------------------------------------------------------------------------------------------------
// Topics

/** Poisson arrival times over [0, horizon). */
function arrivals(rate: number, horizon: number, random: () => number): number[] {
  const times: number[] = [];
  let t = 0;
  for (;;) {
    t += -Math.log(1 - random()) / rate;
    if (t >= horizon) return times;
    times.push(t);
  }
}

/** How many arrivals happened at or before `now` (binary search). */
function countUpTo(times: readonly number[], now: number): number {
  let low = 0;
  let high = times.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (times[mid]! <= now) low = mid + 1;
    else high = mid;
  }
  return low;
}

interface TopicTally {
  requests: number;
  bytes: number;
  delivered: number;
  readonly latencies: number[];
}

function deliver(tally: TopicTally, times: readonly number[], from: number, to: number, now: number): void {
  for (let offset = from; offset < to; offset++) {
    tally.delivered++;
    tally.latencies.push(now - times[offset]!);
  }
}

async function topicShort(
  streams: readonly number[][],
  horizon: number,
  interval: number,
  seed: number,
): Promise<TopicTally> {
  const clock = new ManualClock({ seed });
  const tally: TopicTally = { requests: 0, bytes: 0, delivered: 0, latencies: [] };
  const pollers = streams.map(
    (times) =>
      new ShortPoller<number>({
        clock,
        budget: false,
        requestTimeoutMs: Number.POSITIVE_INFINITY,
        interval,
        poll: async ({ cursor, signal }) => {
          tally.requests++;
          const from = cursor ?? 0;
          const to = countUpTo(times, clock.now() + ONE_WAY_MS);
          tally.bytes += REQUEST_BYTES + RESPONSE_HEADER_BYTES + TOPIC_ENVELOPE_BYTES + (to - from) * RECORD_BYTES;
          await sleep(2 * ONE_WAY_MS, { clock, signal });
          deliver(tally, times, from, to, clock.now());
          return to;
        },
      }),
  );
  for (const poller of pollers) poller.start();
  await runUntil(clock, horizon);
  for (const poller of pollers) poller.stop();
  return tally;
}

async function topicLong(streams: readonly number[][], horizon: number, seed: number): Promise<TopicTally> {
  const clock = new ManualClock({ seed });
  const tally: TopicTally = { requests: 0, bytes: 0, delivered: 0, latencies: [] };
  const pollers = streams.map(
    (times) =>
      new LongPoller<number, number>({
        clock,
        budget: false,
        cursor: 0,
        waitMs: WAIT_MS,
        requestTimeoutMs: Number.POSITIVE_INFINITY,
        poll: async ({ cursor = 0, signal, waitMs }) => {
          tally.requests++;
          const arrival = clock.now() + ONE_WAY_MS;
          let answeredAt = arrival;
          let to = countUpTo(times, arrival);
          if (to === cursor) {
            answeredAt = Math.min(times[cursor] ?? Number.POSITIVE_INFINITY, arrival + waitMs);
            to = countUpTo(times, answeredAt);
          }
          tally.bytes += REQUEST_BYTES + RESPONSE_HEADER_BYTES + TOPIC_ENVELOPE_BYTES + (to - cursor) * RECORD_BYTES;
          await sleep(answeredAt + ONE_WAY_MS - clock.now(), { clock, signal });
          deliver(tally, times, cursor, to, clock.now());
          const records: number[] = [];
          for (let offset = cursor; offset < to; offset++) records.push(offset);
          return { records, cursor: to };
        },
      }),
  );
  for (const poller of pollers) poller.start();
  await runUntil(clock, horizon);
  for (const poller of pollers) poller.stop();
  return tally;
}

async function topicScenario(): Promise<void> {
  const rates: [string, number, number][] = quick
    ? [
        ['1/s', 1 / 1000, 120_000],
        ['1/min', 1 / 60_000, 600_000],
        ['1/h', 1 / 3_600_000, 3_600_000],
      ]
    : [
        ['1/s', 1 / 1000, 300_000],
        ['1/min', 1 / 60_000, 1_200_000],
        ['1/h', 1 / 3_600_000, 3_600_000],
      ];
  for (const [label, rate, horizon] of rates) {
    const random = seededRandom(Math.round(1 / rate));
    const streams = Array.from({ length: CLIENTS }, () => arrivals(rate, horizon, random));
    const events = streams.reduce((sum, times) => sum + times.length, 0);
    console.log(
      `\n## Topic, Poisson arrivals λ = ${label}: ${CLIENTS} clients × ${seconds(horizon)} simulated, ${fmt(events, 0)} records`,
    );
    const rows: string[][] = [];
    for (const period of [1000, 5000]) {
      const tally = await topicShort(streams, horizon, period, 5);
      rows.push(row(`short, ${period / 1000} s`, tally, 1 / (rate * period), period / 2 + ONE_WAY_MS));
    }
    const eH = Math.exp(-rate * WAIT_MS);
    rows.push(row('long, 30 s wait', await topicLong(streams, horizon, 5), 1 + eH / (1 - eH), ONE_WAY_MS));
    table(['pattern', 'requests/event', 'theory', 'ratio', 'bytes/event', 'latency mean', 'theory', 'p99'], rows);
  }
  console.log(
    `note: a short poller waits T after each answer, so its period is T + ${2 * ONE_WAY_MS} ms round trip; ` +
      `at T = 1 s that alone puts the ratio at ${fmt(1000 / (1000 + 2 * ONE_WAY_MS), 3)}`,
  );

  function row(name: string, tally: TopicTally, theoryRequests: number, theoryLatency: number): string[] {
    const perEvent = tally.requests / tally.delivered;
    return [
      name,
      fmt(perEvent),
      fmt(theoryRequests),
      fmt(perEvent / theoryRequests, 3),
      fmt(tally.bytes / tally.delivered, 0),
      seconds(mean(tally.latencies)),
      seconds(theoryLatency),
      seconds(percentile(tally.latencies, 99)),
    ];
  }
}

// ---------------------------------------------------------------------------------------------------
// Start storm

async function storm(
  interval: number | undefined,
  jitter: number | undefined,
): Promise<{ first: number; peak: number; total: number }> {
  const clock = new ManualClock({ seed: 99 });
  const windows = new Map<number, number>();
  const horizon = 60_000;
  const pollers = Array.from(
    { length: 1000 },
    () =>
      new ShortPoller<number>({
        clock,
        budget: false,
        requestTimeoutMs: Number.POSITIVE_INFINITY,
        ...(interval === undefined ? {} : { interval }),
        ...(jitter === undefined ? {} : { jitter }),
        // Nothing changes (a job still running), so a growing interval grows.
        poll: async () => {
          const window = Math.floor(clock.now() / 100);
          windows.set(window, (windows.get(window) ?? 0) + 1);
          return 0;
        },
      }),
  );
  for (const poller of pollers) poller.start();
  await runUntil(clock, horizon);
  for (const poller of pollers) poller.stop();
  const first = windows.get(0) ?? 0;
  const later = [...windows.entries()].filter(([window]) => window > 0).map(([, count]) => count);
  return { first, peak: Math.max(0, ...later), total: [...windows.values()].reduce((a, b) => a + b, 0) };
}

async function stormScenario(): Promise<void> {
  console.log('\n## Start storm: 1,000 short pollers started at the same instant, nothing changing, 60 s simulated');
  const fixed = await storm(1000, 0);
  const rows: [string, Awaited<ReturnType<typeof storm>>][] = [
    ['pollkit default (1 s ×1.5 → 15 s, ±20 %)', await storm(undefined, undefined)],
    ['fixed 1 s, default jitter ±20 %', await storm(1000, undefined)],
    ['fixed 1 s, no jitter (baseline)', fixed],
  ];
  table(
    ['interval', 'first 100 ms', 'peak 100 ms after', 'vs baseline', 'requests in 60 s'],
    rows.map(([name, result]) => [
      name,
      String(result.first),
      String(result.peak),
      fmt(result.peak / fixed.peak, 3),
      fmt(result.total, 0),
    ]),
  );
}

const started = performance.now();
console.log(`# pollkit clients: short vs long polling${quick ? ' (--quick)' : ''}`);
await stormScenario();
await jobsScenario();
await topicScenario();
console.log(`\n(${((performance.now() - started) / 1000).toFixed(1)} s wall clock)`);
