/**
 * Topic long polls through Debian's nginx with the configuration docs/cdn.md gives: many clients on a
 * public topic cost the origin a small constant number of requests per append; private answers never
 * reach another caller; expiring cache entries cause no burst and no loop.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { consumeTopic } from '../../src/client/protocol-pollers.js';
import type { TopicRecord } from '../../src/core/protocol.js';
import { type NginxServer, startNginx } from '../helpers/nginx.js';
import { socketFetch } from '../helpers/raw-http.js';
import { type Origin, startOrigin } from './origin.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, timeoutMs: number, check: () => boolean): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A tiny seeded generator (mulberry32), so the load's shape is the same on every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function setup(
  maxWaitSeconds: number,
  headMaxAgeSeconds?: number,
  accessLog = false,
): Promise<{ origin: Origin; nginx: NginxServer }> {
  const origin = await startOrigin({
    maxWaitSeconds,
    ...(headMaxAgeSeconds === undefined ? {} : { topicCache: { headMaxAgeSeconds } }),
  });
  cleanups.push(() => origin.close());
  const nginx = await startNginx({ origin: origin.address, maxWaitSeconds, workerConnections: 8192, accessLog });
  cleanups.push(() => nginx.stop());
  return { origin, nginx };
}

/** Starts `count` consumers of a topic from offset 0; each keeps the offsets it received, in order. */
function consumers(
  url: string,
  count: number,
  waitMs: number,
  fetchFn: (index: number) => ReturnType<typeof socketFetch> = () => socketFetch(),
): { offsets: number[][]; stop(): void } {
  const offsets: number[][] = [];
  const pollers = Array.from({ length: count }, (_, index) => {
    const seen: number[] = [];
    offsets.push(seen);
    const poller = consumeTopic(url, { offset: 0, waitMs, fetch: fetchFn(index), budget: false });
    poller.on('data', (records: readonly TopicRecord[]) => {
      for (const record of records) seen.push(record.offset);
    });
    poller.on('end', (info) => {
      if (info.reason !== 'stopped') seen.push(-1); // an end nobody asked for shows as a gap
    });
    poller.start();
    return poller;
  });
  const stop = (): void => {
    for (const poller of pollers) poller.stop();
  };
  cleanups.push(async () => stop());
  return { offsets, stop };
}

const range = (count: number): number[] => Array.from({ length: count }, (_, i) => i);

describe('through nginx', () => {
  it('2,000 clients on a public topic cost the origin at most 2 requests per append, and each gets every record once, in order', async () => {
    const { origin, nginx } = await setup(4);
    const topic = origin.topics.topic('public.scores');
    // History to catch up on: one full range (immutable) and a partial one that reaches the head.
    for (let i = 0; i < 150; i++) await topic.append({ goal: i });
    const clients = consumers(`${nginx.url}/pollkit/topics/public.scores`, 2000, 3000);
    await until('every client caught up', 60_000, () => clients.offsets.every((seen) => seen.length === 150));
    // Let every client settle at the head, then count only what the appends cause.
    await sleep(500);
    const before = origin.fetches.length;
    const appends = 15;
    for (let i = 0; i < appends; i++) {
      await topic.append({ goal: 150 + i });
      await sleep(150);
    }
    await until('every client got every append', 30_000, () =>
      clients.offsets.every((seen) => seen.length === 150 + appends),
    );
    const during = origin.fetches.length - before;
    for (const seen of clients.offsets) expect(seen).toEqual(range(150 + appends));
    // One request per position reaches the origin, and one more per 1,024 clients waiting for it:
    // nginx counts a cache node's uses in 10 bits, and the request that wraps the count to 0 passes
    // the lock uncached. With 2,000 clients that is at most 2 per append.
    expect(during).toBeLessThanOrEqual(2 * appends);
    expect(origin.handler.heldRequests).toBeLessThanOrEqual(2);
    // The catch-up itself reached the origin a handful of times, not once per client.
    expect(before).toBeLessThan(50);
    clients.stop();
    expect(nginx.errorLog()).not.toMatch(/\[(alert|emerg|crit)\]/);
  }, 120_000);

  it('never hands one caller private records or a cached answer meant for another', async () => {
    const { origin, nginx } = await setup(2);
    for (const user of ['alice', 'bob']) {
      const topic = origin.topics.topic(`private.${user}`);
      for (let i = 0; i < 3; i++) await topic.append({ owner: user, n: i });
    }
    const credentials: Record<string, Record<string, string>> = {
      // Cookies pass nginx's bypass, so only the origin's headers keep these apart; the bearer token
      // also skips the cache, as docs/cdn.md configures it.
      alice: { cookie: 'user=alice' },
      bob: { cookie: 'user=bob' },
      carol: { authorization: 'Bearer carol' },
    };
    origin.topics.topic('private.carol');
    await origin.topics.topic('private.carol').append({ owner: 'carol', n: 0 });
    const epochs = Object.fromEntries(
      await Promise.all(
        ['alice', 'bob', 'carol'].map(async (user) => [
          user,
          (await origin.topics.topic(`private.${user}`).position()).epoch,
        ]),
      ),
    );
    const heads: Record<string, number> = { alice: 3, bob: 3, carol: 1 };
    const urls = (owner: string): string[] => [
      `/pollkit/topics/private.${owner}/records?offset=0`,
      `/pollkit/topics/private.${owner}/records?offset=0&epoch=${epochs[owner]}`,
      `/pollkit/topics/private.${owner}/records?offset=1&limit=1&epoch=${epochs[owner]}`,
      // What only a public topic's client would send: a held read with a cursor, which takes nginx's lock.
      `/pollkit/topics/private.${owner}/records?offset=${heads[owner]}&wait=1&epoch=${epochs[owner]}&cursor=0`,
    ];
    const random = seeded(7);
    const answers: { reader: string; owner: string; status: number; cache: string | null; body: string }[] = [];
    const read = async (reader: string, owner: string, path: string): Promise<void> => {
      const response = await fetch(`${nginx.url}${path}`, { headers: credentials[reader]! });
      answers.push({
        reader,
        owner,
        status: response.status,
        cache: response.headers.get('x-cache-status'),
        body: await response.text(),
      });
    };
    const rounds = Array.from({ length: 8 }, async (_, round) => {
      await sleep(random() * 300);
      const reads: Promise<void>[] = [];
      for (const reader of ['alice', 'bob', 'carol']) {
        for (const owner of ['alice', 'bob', 'carol']) {
          for (const path of urls(owner)) reads.push(read(reader, owner, path));
        }
      }
      if (round === 3) await origin.topics.topic('private.alice').append({ owner: 'alice', n: 3 });
      await Promise.all(reads);
    });
    await Promise.all(rounds);
    expect(answers).toHaveLength(8 * 3 * 3 * 4);
    for (const answer of answers) {
      if (answer.reader === answer.owner) {
        expect(answer.status).toBe(200);
        const records = (JSON.parse(answer.body) as { records: { value: { owner: string } }[] }).records;
        for (const record of records) expect(record.value.owner).toBe(answer.owner);
      } else {
        expect(answer.status).toBe(404);
        expect(answer.body).not.toContain('"owner"');
      }
      // Nothing private was ever kept: every answer came from the origin.
      expect(
        answer.cache === null || answer.cache === 'MISS' || answer.cache === 'BYPASS' || answer.cache === 'EXPIRED',
      ).toBe(true);
      expect(answer.cache).not.toBe('HIT');
    }
    // Each reader's own held reads were answered by the origin for that reader.
    const heldByUser = new Set(origin.fetches.filter((f) => f.url.includes('cursor=0')).map((f) => f.user));
    expect(heldByUser).toEqual(new Set(['alice', 'bob', 'carol']));
  }, 60_000);

  it('passes the held reads of clients that know no cursor to the origin, uncached, as before', async () => {
    const { origin, nginx } = await setup(2);
    const topic = origin.topics.topic('public.legacy');
    const epoch = (await topic.position()).epoch;
    // A client written before cursors: it asks again with the same URL after an empty answer.
    const legacy = async (): Promise<{ offsets: number[]; statuses: Set<string | null> }> => {
      const offsets: number[] = [];
      const statuses = new Set<string | null>();
      const fetch = socketFetch();
      let offset = 0;
      while (offset < 3) {
        const response = await fetch(
          `${nginx.url}/pollkit/topics/public.legacy/records?offset=${offset}&wait=1&epoch=${epoch}`,
        );
        statuses.add(response.headers.get('x-cache-status'));
        expect(response.headers.get('cache-control')).toBe('no-store');
        const body = (await response.json()) as { records: { offset: number }[]; nextOffset: number };
        offsets.push(...body.records.map((record) => record.offset));
        offset = body.nextOffset;
      }
      return { offsets, statuses };
    };
    const clients = Array.from({ length: 20 }, () => legacy());
    for (let i = 0; i < 3; i++) {
      await sleep(300);
      await topic.append(i);
    }
    for (const { offsets, statuses } of await Promise.all(clients)) {
      expect(offsets).toEqual([0, 1, 2]);
      expect(statuses).toEqual(new Set(['BYPASS']));
    }
  });

  it('cache entries expiring under load cause no burst at the origin and no request loop', async () => {
    // Entries at the head live 1 s; waits are 2 s; a quarter of the clients straggle, arriving at
    // their next URL up to 2.5 s late, long after its entry expired.
    const { origin, nginx } = await setup(2, 1);
    const topic = origin.topics.topic('public.ticks');
    const clientCount = 600;
    const random = seeded(11);
    const delays = Array.from({ length: clientCount }, () => (random() < 0.25 ? () => random() * 2500 : () => 0));
    const clientRequests = new Array<number>(clientCount).fill(0);
    const repeatedUrls: string[] = [];
    const clients = consumers(`${nginx.url}/pollkit/topics/public.ticks`, clientCount, 2000, (index) => {
      const fetch = socketFetch();
      const asked = new Set<string>();
      return async (input, init) => {
        clientRequests[index]! += 1;
        if (asked.has(input)) repeatedUrls.push(input);
        asked.add(input);
        const delay = delays[index]!();
        if (delay > 0) await sleep(delay);
        return fetch(input, init);
      };
    });
    await until('every client reached the head', 30_000, () => clientRequests.every((count) => count >= 2));
    const started = performance.now();
    const before = origin.fetches.length;
    // Bursts and quiet spells longer than the wait, so timeouts and appends both expire entries.
    const appendTimes: number[] = [];
    let appended = 0;
    while (performance.now() - started < 12_000) {
      const gap = random() < 0.2 ? 2500 + random() * 1000 : random() * 400;
      await sleep(gap);
      await topic.append({ tick: appended++ });
      appendTimes.push(performance.now());
    }
    await until('every client got every tick', 30_000, () => clients.offsets.every((seen) => seen.length === appended));
    const elapsedS = (performance.now() - started) / 1000;
    for (const seen of clients.offsets) expect(seen).toEqual(range(appended));

    const during = origin.fetches.slice(before);
    // The bound: per append at most 2 requests for the group at the head, per wait (2 s) at most 2
    // for its timeouts, and per straggling URL that expired one more, which the lock collapses; a
    // stampede would be one per straggler (150) per event.
    const events = appended + Math.ceil(elapsedS / 2);
    const distinctUrls = new Set(during.map((f) => f.url)).size;
    expect(during.length).toBeLessThanOrEqual(2 * events + distinctUrls);
    expect(distinctUrls).toBeLessThanOrEqual(6 * events);
    // No burst: no 100 ms window sees more than a few origin requests.
    let worstWindow = 0;
    for (let i = 0, j = 0; i < during.length; i++) {
      while (during[i]!.at - during[j]!.at > 100) j++;
      worstWindow = Math.max(worstWindow, i - j + 1);
    }
    expect(worstWindow).toBeLessThanOrEqual(12);
    // No loop: no client ever asks for a URL it asked for before (the cursor moved it on), the origin
    // never sees one URL again within its entry's life, and no client asks more than about twice per
    // append or wait.
    expect(repeatedUrls).toEqual([]);
    const lastSeen = new Map<string, number>();
    for (const fetch of during) {
      const previous = lastSeen.get(fetch.url);
      if (previous !== undefined) expect(fetch.at - previous).toBeGreaterThan(900);
      lastSeen.set(fetch.url, fetch.at);
    }
    const worstClient = Math.max(...clientRequests);
    expect(worstClient).toBeLessThanOrEqual(2 * events + 5);
    clients.stop();
  }, 120_000);
});
