/**
 * Sixty seconds of abuse against a server with every pollkit option at its default (Express with
 * express.json() in front), run as a child process under `--unhandled-rejections=strict`:
 * - 50 SSE readers of a busy topic that stop reading after the headers;
 * - one tenant creating topics without end;
 * - 100,000 appends of 1 KiB to that busy topic: as many over HTTP as the machine takes in the minute,
 *   the rest through the API in the server process, paced to reach 100,000 by the 50th second;
 * - 5,000 job submits whose body nests 5,000 deep;
 * while a well-behaved caller submits and long-polls a job, long-polls a topic and appends to it,
 * round after round.
 *
 * Bounds: the heap after a full collection at the end stays under 64 MiB (a day's retention of a
 * 10,000-record topic is ~12 MiB; keeping all 100,000 records would be ~110 MiB), the heap never
 * exceeds 256 MiB and the RSS 512 MiB; the well-behaved caller gets every answer right and each
 * round within 5 s on a shared 2-core machine; the stalled readers are evicted; nothing crashes.
 */
import { Agent, request } from 'node:http';
import { type Socket, connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { JobSnapshot, TopicFetchResult } from '../../src/core/protocol.js';
import { type ChildServer, startChild } from '../helpers/child/child-server.js';

const RUN_MS = 60_000;
const APPENDS = 100_000;
const RETAINED_HEAP_BOUND = 64 * 1024 * 1024;
const HEAP_BOUND = 256 * 1024 * 1024;
const RSS_BOUND = 512 * 1024 * 1024;
const PROBE_ROUND_BOUND_MS = 5000;

const agent = new Agent({ keepAlive: true, maxSockets: 64 });
const sockets: Socket[] = [];
let child: ChildServer | undefined;

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await child?.stop();
  agent.destroy();
});

interface Stats {
  readonly heapUsed: number;
  readonly rss: number;
  readonly held: number;
  readonly topics: number;
}

function call(
  url: string,
  init: { method?: string; tenant?: string; body?: string } = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: init.method ?? 'GET',
        agent,
        headers: {
          ...(init.tenant === undefined ? {} : { 'x-tenant': init.tenant }),
          ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

/** Opens an SSE stream on a raw socket and stops reading once the headers arrived. */
async function stalledReader(base: string, path: string): Promise<Socket> {
  const { hostname, port } = new URL(base);
  const socket = connect({ host: hostname, port: Number(port) });
  sockets.push(socket);
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => {
    let seen = '';
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString('latin1');
      if (!seen.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      socket.pause();
      resolve();
    };
    socket.on('data', onData);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`);
  });
  return socket;
}

/** Runs `work` in `lanes` concurrent loops until `until` passes or `count` calls were made. */
/** Runs `work` in `concurrency` loops until `until`, `count` calls, or `work` answers false. */
async function lanes(
  count: number,
  concurrency: number,
  until: number,
  work: (n: number) => Promise<void | false>,
): Promise<number> {
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        const n = next++;
        if (n >= count || (await work(n)) === false) return;
        done++;
      }
    }),
  );
  return done;
}

describe('a 60 s abuse run against the defaults', () => {
  it('stays within its memory bounds, keeps serving others, and crashes on nothing', async () => {
    child = await startChild('abuse');
    const base = `${child.url}/pollkit`;
    const server = child;
    const peak = { heapUsed: 0, rss: 0 };
    const samples: Stats[] = [];
    const sampler = setInterval(() => {
      void server.stats<Stats>().then((stats) => {
        samples.push(stats);
        peak.heapUsed = Math.max(peak.heapUsed, stats.heapUsed);
        peak.rss = Math.max(peak.rss, stats.rss);
      });
    }, 1000);
    const baseline = await server.stats<Stats>();

    const kib = JSON.stringify({ value: 'x'.repeat(1024) });
    expect(
      (await call(`${base}/topics/firehose/records`, { method: 'POST', tenant: 'feeder', body: kib })).status,
    ).toBe(201);
    for (let n = 0; n < 50; n++) await stalledReader(child.url, '/pollkit/topics/firehose/events?offset=0');
    expect((await server.stats<Stats>()).held).toBeGreaterThanOrEqual(50);

    const until = Date.now() + RUN_MS;
    const statuses = {
      appends: new Map<number, number>(),
      topics: new Map<number, number>(),
      deep: new Map<number, number>(),
    };
    const count = (map: Map<number, number>, status: number) => map.set(status, (map.get(status) ?? 0) + 1);
    const deepBody = `{"type":"echo","input":${'['.repeat(5000)}${']'.repeat(5000)}}`;
    const probe = { rounds: 0, failures: [] as string[], slowest: 0 };

    let appendedOverHttp = 0;
    let appendedThroughApi = 0;
    const httpAppends = lanes(APPENDS, 8, until, async () => {
      if (appendedOverHttp + appendedThroughApi >= APPENDS) return false;
      const { status } = await call(`${base}/topics/firehose/records`, { method: 'POST', tenant: 'feeder', body: kib });
      count(statuses.appends, status);
      if (status === 201) appendedOverHttp++;
      return undefined;
    });
    const started = Date.now();
    const apiAppends = (async () => {
      while (appendedOverHttp + appendedThroughApi < APPENDS) {
        const due = Math.min(APPENDS, Math.ceil((APPENDS * (Date.now() - started)) / (RUN_MS - 10_000)));
        const missing = due - appendedOverHttp - appendedThroughApi;
        if (missing > 0) appendedThroughApi += await server.command<number>('append', 'firehose', missing, 1024);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    })();
    const appends = Promise.all([httpAppends, apiAppends]).then(() => appendedOverHttp + appendedThroughApi);
    const topicSpam = lanes(Number.MAX_SAFE_INTEGER, 2, until, async (n) => {
      const body = JSON.stringify({ value: n });
      count(
        statuses.topics,
        (await call(`${base}/topics/mallory.t${n}/records`, { method: 'POST', tenant: 'mallory', body })).status,
      );
    });
    const deep = lanes(5000, 2, until, async () => {
      count(statuses.deep, (await call(`${base}/jobs`, { method: 'POST', tenant: 'deep', body: deepBody })).status);
    });
    const probes = (async () => {
      let offset = 0;
      await call(`${base}/topics/probe.inbox/records`, { method: 'POST', tenant: 'probe', body: '{"value":0}' });
      while (Date.now() < until) {
        const started = Date.now();
        try {
          const submitted = await call(`${base}/jobs`, {
            method: 'POST',
            tenant: 'probe',
            body: '{"type":"echo","input":1}',
          });
          if (submitted.status !== 202) throw new Error(`submit ${submitted.status}`);
          const job = JSON.parse(submitted.text) as JobSnapshot;
          const polled = await call(`${base}/jobs/${job.id}?version=${job.version}&wait=5`, { tenant: 'probe' });
          if (polled.status !== 200 || (JSON.parse(polled.text) as JobSnapshot).version <= job.version) {
            throw new Error(`long poll ${polled.status}`);
          }
          const fetched = await call(`${base}/topics/probe.inbox/records?offset=${offset}&wait=5`, { tenant: 'probe' });
          if (fetched.status !== 200) throw new Error(`fetch ${fetched.status}`);
          offset = (JSON.parse(fetched.text) as TopicFetchResult).nextOffset;
          await call(`${base}/topics/probe.inbox/records`, { method: 'POST', tenant: 'probe', body: '{"value":1}' });
        } catch (error) {
          probe.failures.push(String(error));
        }
        probe.slowest = Math.max(probe.slowest, Date.now() - started);
        probe.rounds++;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();

    const [appended, created, deepSent] = await Promise.all([appends, topicSpam, deep, probes]);
    clearInterval(sampler);
    const end = await server.stats<Stats>(true);
    const report = {
      baselineHeapMiB: +(baseline.heapUsed / 2 ** 20).toFixed(1),
      peakHeapMiB: +(peak.heapUsed / 2 ** 20).toFixed(1),
      peakRssMiB: +(peak.rss / 2 ** 20).toFixed(1),
      retainedHeapMiB: +(end.heapUsed / 2 ** 20).toFixed(1),
      appended,
      appendedOverHttp,
      appendStatuses: Object.fromEntries(statuses.appends),
      topicAttempts: created,
      topicStatuses: Object.fromEntries(statuses.topics),
      deepSent,
      deepStatuses: Object.fromEntries(statuses.deep),
      probeRounds: probe.rounds,
      probeSlowestMs: probe.slowest,
      heldAtEnd: end.held,
      topicsAtEnd: end.topics,
    };
    console.log('abuse run:', JSON.stringify(report));

    expect(server.alive()).toBe(true);
    expect(probe.failures).toEqual([]);
    expect(probe.rounds).toBeGreaterThan(60);
    expect(probe.slowest).toBeLessThan(PROBE_ROUND_BOUND_MS);
    expect(appended).toBeGreaterThanOrEqual(APPENDS);
    expect(deepSent).toBe(5000);
    expect(end.heapUsed).toBeLessThan(RETAINED_HEAP_BOUND);
    expect(peak.heapUsed).toBeLessThan(HEAP_BOUND);
    expect(peak.rss).toBeLessThan(RSS_BOUND);
    // The stalled readers were evicted; what is held now is at most the probe's own waits.
    expect(end.held).toBeLessThanOrEqual(2);
    // The tenant got its 1,000 topics and then 403s; everyone else could still create theirs.
    expect(statuses.topics.get(201)).toBe(1000);
    expect([...statuses.topics.keys()].sort()).toEqual([201, 403]);
    expect([...statuses.deep.keys()]).toEqual([400]);
    expect([...statuses.appends.keys()]).toEqual([201]);
  });
});
