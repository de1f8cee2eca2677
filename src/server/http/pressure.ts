/**
 * Load shedding, as Fastify's `@fastify/under-pressure` does it: the process samples its event-loop
 * delay and memory on an interval, and while a sample is over a limit the handler answers new requests
 * with 503 `overloaded` and `Retry-After` instead of taking on work it cannot finish in time. Requests
 * already held are left alone. Event-loop delay is measured as the lateness of the sampling timer,
 * which needs nothing but timers, so it works on any runtime; memory is read where the runtime exposes
 * it (`process.memoryUsage()` on Node, Bun and Deno).
 *
 * @module
 */
import type { Clock, TimerHandle } from '../../core/clock.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { integerAtLeast } from '../validate.js';

/**
 * Limits that make the handler shed load; each is off unless given.
 *
 * @example
 * ```ts
 * import type { LoadSheddingOptions } from 'pollkit/server';
 * const shedding: LoadSheddingOptions = { maxEventLoopDelayMs: 200, maxHeapUsedBytes: 1.5 * 1024 ** 3 };
 * ```
 */
export interface LoadSheddingOptions {
  /** Shed while the event loop was this late (ms) at the last sample. */
  readonly maxEventLoopDelayMs?: number;
  /** Shed while the JavaScript heap used this many bytes at the last sample. */
  readonly maxHeapUsedBytes?: number;
  /** Shed while the process's resident set was this many bytes at the last sample. */
  readonly maxRssBytes?: number;
  /** Time between samples, in milliseconds (≥ 10). Default 1000. */
  readonly sampleIntervalMs?: number;
  /** The `Retry-After` seconds of a shed request. Default 1. */
  readonly retryAfterSeconds?: number;
}

/**
 * The last sample, and whether the handler sheds load because of it.
 *
 * @example
 * ```ts
 * import type { LoadSample } from 'pollkit/server';
 * const report = (load: LoadSample) => `${load.shedding ? 'shedding' : 'ok'}: loop ${load.eventLoopDelayMs} ms late`;
 * ```
 */
export interface LoadSample {
  /** How late the sampling timer fired, in milliseconds. */
  readonly eventLoopDelayMs: number;
  /** JavaScript heap in use, in bytes; `undefined` where the runtime does not say. */
  readonly heapUsedBytes: number | undefined;
  /** Resident set size, in bytes; `undefined` where the runtime does not say. */
  readonly rssBytes: number | undefined;
  /** True while new requests are answered with 503. */
  readonly shedding: boolean;
}

interface MemoryUsage {
  readonly heapUsed: number;
  readonly rss: number;
}

function readMemory(): MemoryUsage | undefined {
  const usage = (globalThis as { process?: { memoryUsage?: () => MemoryUsage } }).process?.memoryUsage;
  return typeof usage === 'function' ? usage() : undefined;
}

/** Samples the process on an interval and says whether to shed (internal to the handler). */
export class LoadMonitor {
  readonly retryAfterSeconds: number;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #maxDelay: number;
  readonly #maxHeap: number;
  readonly #maxRss: number;
  #timer: TimerHandle | undefined;
  #due = 0;
  #sample: LoadSample = { eventLoopDelayMs: 0, heapUsedBytes: undefined, rssBytes: undefined, shedding: false };

  constructor(options: LoadSheddingOptions, clock: Clock) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('loadShedding must be an object', 'loadShedding');
    }
    this.#clock = clock;
    this.#intervalMs = integerAtLeast(options.sampleIntervalMs ?? 1000, 'loadShedding.sampleIntervalMs', 10);
    this.retryAfterSeconds = integerAtLeast(options.retryAfterSeconds ?? 1, 'loadShedding.retryAfterSeconds', 0);
    this.#maxDelay = limit(options.maxEventLoopDelayMs, 'loadShedding.maxEventLoopDelayMs');
    this.#maxHeap = limit(options.maxHeapUsedBytes, 'loadShedding.maxHeapUsedBytes');
    this.#maxRss = limit(options.maxRssBytes, 'loadShedding.maxRssBytes');
    this.#arm();
  }

  /** The last sample. */
  get sample(): LoadSample {
    return this.#sample;
  }

  /** Stops sampling. */
  close(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    this.#due = this.#clock.now() + this.#intervalMs;
    this.#timer = this.#clock.setTimeout(() => this.#take(), this.#intervalMs, { unref: true });
  }

  #take(): void {
    const eventLoopDelayMs = Math.max(0, this.#clock.now() - this.#due);
    const memory = this.#maxHeap === Infinity && this.#maxRss === Infinity ? undefined : readMemory();
    const heapUsedBytes = memory?.heapUsed;
    const rssBytes = memory?.rss;
    const shedding =
      eventLoopDelayMs > this.#maxDelay ||
      (heapUsedBytes !== undefined && heapUsedBytes > this.#maxHeap) ||
      (rssBytes !== undefined && rssBytes > this.#maxRss);
    this.#sample = Object.freeze({ eventLoopDelayMs, heapUsedBytes, rssBytes, shedding });
    this.#arm();
  }
}

function limit(value: number | undefined, name: string): number {
  if (value === undefined) return Infinity;
  if (typeof value !== 'number' || !(value > 0)) {
    throw new InvalidArgumentError(`${name} must be a number > 0, got ${String(value)}`, name);
  }
  return value;
}
