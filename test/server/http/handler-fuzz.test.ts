/**
 * Bad-input fuzzing of the protocol handler: whatever the path, query, headers and body, the handler
 * resolves (never throws), never answers 5xx, and leaves no held request or purgatory entry behind.
 * Runs once against `handle()` directly (many cases, fast) and once over a real node:http server
 * with raw request targets that `fetch` would normalize away.
 */
import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeListener } from '../../../src/adapters/node.js';
import { PollkitHandler } from '../../../src/server/http/handler.js';
import type { PollkitRequest } from '../../../src/server/http/types.js';
import { isStreamBody, payloadTooLarge } from '../../../src/server/http/types.js';
import { JobRegistry } from '../../../src/server/jobs/job-registry.js';
import { DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';
import { TopicRegistry } from '../../../src/server/topics/topic-registry.js';
import { type TestServer, listen } from '../../helpers/http-server.js';
import { createServer } from 'node:http';

const purgatory = new DelayedOperationPurgatory({ name: 'fuzz' });
const jobs = new JobRegistry({ purgatory }).define('echo', ({ input }) => input);
const topics = new TopicRegistry({ purgatory, retention: { maxRecords: 5 } });
const handler = new PollkitHandler({
  jobs,
  topics,
  publicAppends: true,
  autoCreateTopics: true,
  maxWaitSeconds: 0.02,
  heartbeatMs: 5,
  bodyLimitBytes: 2048,
  maxHeldPerCaller: 1000,
});
let server: TestServer;
let knownJob = '';
let otherJob = '';

beforeAll(async () => {
  knownJob = (await jobs.create('external', {})).id;
  otherJob = (await jobs.create('external', {})).id;
  for (let i = 0; i < 8; i++) await topics.topic('known').append(i);
  server = await listen(createServer(createNodeListener(handler)));
});

afterAll(async () => {
  await handler.close();
  await server.close();
  await jobs.close();
  await topics.close();
});

const segment = fc.oneof(
  fc.constantFrom(
    'jobs',
    'topics',
    'records',
    'events',
    'cancel',
    'known',
    ':cancel',
    '..',
    '.',
    '',
    '%',
    '%ZZ',
    '%2F',
    'known%3Acancel',
  ),
  fc.constant('@job'),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 6 }).map(encodeURIComponent),
);
const randomPath = fc
  .array(segment, { minLength: 0, maxLength: 5 })
  .map((segments) => `/pollkit/${segments.join('/')}`);
const routePath = fc.constantFrom(
  '/pollkit/jobs',
  '/pollkit/jobs/@job',
  '/pollkit/jobs/@job/events',
  '/pollkit/jobs/@other:cancel',
  '/pollkit/jobs/@other/cancel',
  '/pollkit/topics/known/records',
  '/pollkit/topics/known/events',
  '/pollkit/topics/fresh/records',
);
const path = fc
  .oneof({ arbitrary: routePath, weight: 3 }, { arbitrary: randomPath, weight: 1 })
  .map((p) => p.replace('@job', knownJob).replace('@other', otherJob));
const numberish = fc.oneof(
  { arbitrary: fc.constantFrom('0', '1', '2', '3', '0.01', '0.005'), weight: 6 },
  {
    arbitrary: fc.oneof(
      fc.constantFrom('-1', '1.5', '1e3', 'NaN', 'Infinity', '', ' 7', '99999999999999999999', '0x10', '007'),
      fc.integer({ min: -10, max: 100 }).map(String),
      fc.double().map(String),
      fc.string({ maxLength: 8 }),
    ),
    weight: 1,
  },
);
const knownParams = fc.record(
  {
    wait: numberish,
    version: numberish,
    offset: numberish,
    limit: numberish,
    minRecords: numberish,
    epoch: fc.oneof(fc.constant(''), fc.string({ maxLength: 6 })),
    status: fc.constantFrom('queued', 'running', 'succeeded', 'nope', ''),
    pageSize: numberish,
    pageToken: fc.string({ maxLength: 6 }),
  },
  { requiredKeys: [] },
);
const query = fc
  .tuple(knownParams, fc.array(fc.tuple(fc.string({ maxLength: 6 }), numberish), { maxLength: 2 }))
  .map(([known, extra]) =>
    new URLSearchParams([...Object.entries(known as Record<string, string>), ...extra]).toString(),
  );
const headerValue = fc.oneof(
  numberish,
  fc.constantFrom(
    '"1"',
    'W/"1"',
    '*',
    '"1", "2"',
    'wait=1',
    'wait=abc',
    'respond-async, wait=0.01',
    'wait',
    'application/json',
    'text/xml',
    '"',
  ),
  fc.string({ maxLength: 20 }),
);
const headers = fc.dictionary(
  fc.constantFrom(
    'if-none-match',
    'prefer',
    'idempotency-key',
    'last-event-id',
    'content-type',
    'host',
    'authorization',
  ),
  headerValue,
  { maxKeys: 4 },
);
const body = fc.oneof(
  fc.constant(undefined),
  fc.json({ maxDepth: 2 }),
  fc
    .record({ type: fc.oneof(fc.constant('echo'), fc.string({ maxLength: 5 })), input: fc.jsonValue({ maxDepth: 1 }) })
    .map((v) => JSON.stringify(v)),
  fc
    .record({ key: fc.oneof(fc.string(), fc.constant(null), fc.integer()), value: fc.jsonValue({ maxDepth: 1 }) })
    .map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 40 }),
  fc.constant('x'.repeat(3000)),
  fc
    .tuple(fc.integer({ min: 1, max: 2000 }), fc.constantFrom('{"value":', '{"type":"echo","input":'))
    .map(([depth, head]) => `${head}${'['.repeat(depth)}${']'.repeat(depth)}}`),
);
const method = fc.oneof(
  { arbitrary: fc.constantFrom('GET', 'POST'), weight: 4 },
  { arbitrary: fc.constantFrom('DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS', 'get', 'BREW'), weight: 1 },
);

async function drain(stream: AsyncIterable<string>, controller: AbortController): Promise<void> {
  const iterator = stream[Symbol.asyncIterator]();
  for (let i = 0; i < 3; i++) if ((await iterator.next()).done === true) return;
  controller.abort();
  await iterator.return?.();
}

async function settled(): Promise<void> {
  const started = Date.now();
  while (handler.heldRequests > 0 || purgatory.watched() > 0 || purgatory.metrics().pending > 0) {
    if (Date.now() - started > 2000) break;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

describe('handler fuzzing', () => {
  it('answers arbitrary requests without throwing, without 5xx, and without leaving anything held', async () => {
    const statuses = new Map<number, number>();
    let waited = 0;
    let streams = 0;
    await fc.assert(
      fc.asyncProperty(method, path, query, headers, body, async (m, p, q, h, b) => {
        const controller = new AbortController();
        const req: PollkitRequest = {
          method: m,
          url: q === '' ? p : `${p}?${q}`,
          headers: h,
          signal: controller.signal,
          ...(b === undefined
            ? {}
            : {
                readBody: async (limit: number) => {
                  if (new TextEncoder().encode(b).length > limit) throw payloadTooLarge(limit);
                  return b;
                },
              }),
        };
        const response = await handler.handle(req);
        expect(response).not.toBeNull();
        expect(
          response!.status,
          `${m} ${req.url} ${JSON.stringify(h)} ${String(b)} → ${String(response!.body)}`,
        ).toBeLessThan(500);
        statuses.set(response!.status, (statuses.get(response!.status) ?? 0) + 1);
        if (response!.headers['preference-applied'] !== undefined) waited++;
        if (isStreamBody(response!.body)) {
          streams++;
          await drain(response!.body, controller);
        }
        await settled();
        expect(handler.heldRequests).toBe(0);
        expect(purgatory.watched()).toBe(0);
        expect(purgatory.metrics().pending).toBe(0);
      }),
      { numRuns: 400, seed: 20261123 },
    );
    // The generators must reach the interesting paths, or the property proves little.
    for (const status of [200, 400, 404, 405]) expect(statuses.get(status) ?? 0, `status ${status}`).toBeGreaterThan(0);
    expect(waited).toBeGreaterThan(0);
    expect(streams).toBeGreaterThan(0);
  });

  it('answers raw request targets over node:http without 5xx', async () => {
    const rawPath = fc
      .array(fc.oneof(segment, fc.constantFrom('%00', '%E0%A4%A', '//', '?', '#', ';')), { maxLength: 4 })
      .map((segments) => `/pollkit/${segments.join('/')}`.replace('@job', knownJob).replace(/[^\x21-\x7e]/g, '_'));
    const safeHeaders = fc.dictionary(
      fc.constantFrom('if-none-match', 'prefer', 'last-event-id', 'content-type'),
      fc.string({ maxLength: 12 }).map((value) => value.replace(/[^\x20-\x7e]/g, '')),
      { maxKeys: 3 },
    );
    const { port } = new URL(server.url);
    await fc.assert(
      fc.asyncProperty(method, rawPath, query, safeHeaders, async (m, p, q, h) => {
        const status = await new Promise<number>((resolve, reject) => {
          const req = httpRequest(
            { host: '127.0.0.1', port, method: m.toUpperCase(), path: q === '' ? p : `${p}?${q}`, headers: h },
            (res) => {
              const code = res.statusCode ?? 0;
              // SSE streams stay open; the status is enough.
              res.destroy();
              resolve(code);
            },
          );
          req.on('error', reject);
          req.end();
        });
        expect(status).toBeGreaterThanOrEqual(200);
        expect(status).toBeLessThan(500);
        await settled();
        expect(handler.heldRequests).toBe(0);
      }),
      { numRuns: 100, seed: 7 },
    );
  });
});
