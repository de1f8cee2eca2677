/**
 * What one translated request costs while it is held, for choosing the shape the protocol handler
 * takes (STYLE.md principle 1). The Node request itself (`IncomingMessage` and its header record)
 * exists whichever shape is chosen, so it is built before measuring; what is measured is what the
 * adapter adds per request and keeps alive for the whole wait:
 *
 * - baseline: a web `Request` with a copied `Headers` and an `AbortController` whose signal it
 *   follows (what trpc's node adapter builds);
 * - plain: the `PollkitRequest` object of `pollkit/node`: method, url, the existing header record by
 *   reference, a body-reader closure and an `AbortController`.
 *
 * `node --expose-gc --import tsx bench/held-request-shape.ts [--quick]` prints the retained heap per
 * request for each shape and their ratio, then the whole cost of one held long poll through
 * `PollkitHandler` (request, held-slot entry, registry wait, purgatory operation) for scale.
 *
 * @module
 */
import type { IncomingHttpHeaders } from 'node:http';
import { PollkitHandler } from '../src/server/http/handler.js';
import { JobRegistry } from '../src/server/jobs/job-registry.js';

const quick = process.argv.includes('--quick');
const COUNT = quick ? 2_000 : 10_000;
const ROUNDS = quick ? 2 : 5;

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error('run with node --expose-gc');
  process.exit(1);
}

/** The headers a browser's conditional long poll typically carries. */
function nodeHeaders(i: number): IncomingHttpHeaders {
  return {
    host: '127.0.0.1:8080',
    'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
    accept: 'application/json',
    'accept-encoding': 'gzip, deflate, br',
    'accept-language': 'en-US,en;q=0.9',
    connection: 'keep-alive',
    'if-none-match': `"${i}"`,
    prefer: 'wait=25',
    cookie: `session=${i.toString(36).padStart(24, 'x')}`,
  };
}

function heapUsed(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

function measure(build: (headers: IncomingHttpHeaders, url: string) => unknown): number {
  const inputs = Array.from({ length: COUNT }, (_, i) => ({ headers: nodeHeaders(i), url: `/pollkit/jobs/job-${i}` }));
  const held: unknown[] = new Array(COUNT);
  const before = heapUsed();
  for (let i = 0; i < COUNT; i++) held[i] = build(inputs[i]!.headers, inputs[i]!.url);
  const after = heapUsed();
  // Keep both alive until measured.
  if (held.length !== inputs.length) throw new Error('unreachable');
  return (after - before) / COUNT;
}

const webRequest = (headers: IncomingHttpHeaders, url: string): unknown => {
  const controller = new AbortController();
  const copy = new Headers();
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) copy.append(name, item);
    else copy.set(name, value);
  }
  const request = new Request(`http://${headers.host ?? 'localhost'}${url}`, {
    method: 'GET',
    headers: copy,
    signal: controller.signal,
  });
  // Reading the signal is what any handler does; undici creates the request's own signal lazily.
  void request.signal.aborted;
  return { request, controller };
};

const plainRequest = (headers: IncomingHttpHeaders, url: string): unknown => {
  const controller = new AbortController();
  return {
    method: 'GET',
    url,
    headers,
    readBody: (limit: number) => Promise.resolve(String(limit)),
    signal: controller.signal,
    secure: false,
    remoteAddress: '127.0.0.1',
  };
};

const results = { web: [] as number[], plain: [] as number[] };
for (let round = 0; round < ROUNDS; round++) {
  results.web.push(measure(webRequest));
  results.plain.push(measure(plainRequest));
}
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const web = median(results.web);
const plain = median(results.plain);
console.log(`held-request shape, ${COUNT} requests, median of ${ROUNDS} rounds (node ${process.version})`);
console.log(`  baseline web Request + Headers copy + AbortController: ${web.toFixed(0)} B/request`);
console.log(`  plain PollkitRequest + AbortController:                 ${plain.toFixed(0)} B/request`);
console.log(
  `  ratio plain / web: ${(plain / web).toFixed(2)}  (per 10k held: ${((web * 10_000) / 2 ** 20).toFixed(1)} MiB vs ${((plain * 10_000) / 2 ** 20).toFixed(1)} MiB)`,
);

// For scale: everything one held conditional long poll keeps alive, end to end, in the handler.
const jobs = new JobRegistry();
const job = await jobs.create('external', {});
const handler = new PollkitHandler({ jobs, maxHeldRequests: COUNT, maxHeldPerCaller: COUNT });
const controllers: AbortController[] = [];
const pending: Promise<unknown>[] = [];
const inputs = Array.from({ length: COUNT }, (_, i) => nodeHeaders(i));
const before = heapUsed();
for (let i = 0; i < COUNT; i++) {
  const controller = new AbortController();
  controllers.push(controller);
  const headers = { ...inputs[i]!, 'if-none-match': `"${job.version}"` };
  pending.push(handler.handle({ method: 'GET', url: `/pollkit/jobs/${job.id}`, headers, signal: controller.signal }));
}
while (handler.heldRequests < COUNT) await new Promise((resolve) => setTimeout(resolve, 10));
const after = heapUsed();
console.log(
  `  whole held long poll in PollkitHandler (plain shape): ${((after - before) / COUNT).toFixed(0)} B/request`,
);
for (const controller of controllers) controller.abort();
await Promise.all(pending);
console.log(`  held after every client hung up: ${handler.heldRequests}`);
await handler.close();
await jobs.close();
