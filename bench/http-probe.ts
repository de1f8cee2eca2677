/**
 * A probe for `bench/http.ts`: how long one append takes to settle N held topic reads in-process, with
 * no HTTP at all, so the fan-out figure can be split between the registry and the transport.
 * `node --import tsx bench/http-probe.ts [count]`.
 *
 * @module
 */
import { performance } from 'node:perf_hooks';
import { DelayedOperationPurgatory } from '../src/server/purgatory/purgatory.js';
import { TopicRegistry } from '../src/server/topics/topic-registry.js';

const count = Number(process.argv[2] ?? '10000');
const purgatory = new DelayedOperationPurgatory({ name: 'probe' });
const topics = new TopicRegistry({ purgatory });
const topic = topics.topic('fan');
const settledAt: number[] = [];
const before = process.memoryUsage().heapUsed;
const controllers = Array.from({ length: count }, () => new AbortController());
const reads = controllers.map((controller) =>
  topic.read(0, { waitMs: 600_000, signal: controller.signal }).then(() => settledAt.push(performance.now())),
);
await new Promise((resolve) => setTimeout(resolve, 200));
const heapPerRead = (process.memoryUsage().heapUsed - before) / count;
const started = performance.now();
await topic.append({ n: 1 });
const appendMs = performance.now() - started;
await Promise.all(reads);
settledAt.sort((a, b) => a - b);
const at = (p: number): number => settledAt[Math.min(count - 1, Math.ceil((p / 100) * count) - 1)]! - started;
console.log(
  `${count} held reads: heap ≈ ${(heapPerRead / 1024).toFixed(2)} KiB each; append() returned after ${appendMs.toFixed(1)} ms; ` +
    `settled p50 ${at(50).toFixed(1)} ms, p99 ${at(99).toFixed(1)} ms, max ${at(100).toFixed(1)} ms`,
);
await topics.close();
