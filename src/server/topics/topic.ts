/**
 * Topics: named append-only logs with offsets, Kafka-style. A fetch names an offset and may be held in
 * the {@link DelayedOperationPurgatory} until enough records exist; push transports read the same log
 * through {@link Topic.subscribe}, which pulls by offset instead of buffering copies, so a slow
 * consumer costs one bounded batch and never unbounded memory.
 *
 * Logs live behind a {@link TopicStore}. The purgatory's `check()` is synchronous, the store is not,
 * so the registry (`topic-registry.ts`) keeps a hint per topic someone is waiting on (epoch, high
 * watermark and the latest records, updated by the store's change notifications); a woken reader is
 * answered from the hint when it covers the answer, and from a store read otherwise
 * (`topic-fetch.ts`).
 *
 * @module
 */
import { abortReason } from '../../core/abort.js';
import { InvalidArgumentError } from '../../core/errors.js';
import type { TopicFetchResult, TopicRecord } from '../../core/protocol.js';
import type { TopicPosition } from './stores/topic-store.js';
import { type FetchHost, type Hint, TopicFetch, hold, readFirst, resultFromHint, topicDeleted } from './topic-fetch.js';

/**
 * Options of {@link Topic.append}.
 *
 * @example
 * ```ts
 * import type { TopicAppendOptions } from 'pollkit/server';
 * const options: TopicAppendOptions = { key: 'order-42' };
 * ```
 */
export interface TopicAppendOptions {
  /** A key clients can filter or compact on. Default `null`. */
  readonly key?: string | null;
}

/**
 * Options of {@link Topic.read}.
 *
 * @example
 * ```ts
 * import type { TopicReadOptions } from 'pollkit/server';
 * const options: TopicReadOptions = { limit: 100, minRecords: 1, waitMs: 25_000 };
 * ```
 */
export interface TopicReadOptions {
  /** The most records to return, 1 to the registry's `maxLimit`. Default: the registry's `defaultLimit` (100). */
  readonly limit?: number;
  /**
   * Hold the read until at least this many records (capped at `limit`) exist from `offset`. Default 1.
   * At the end of `waitMs` the read answers with whatever exists, possibly nothing.
   */
  readonly minRecords?: number;
  /** The longest time to hold the read, in milliseconds. Default 0: answer at once. */
  readonly waitMs?: number;
  /** The epoch the caller's offset belongs to; a different current epoch is {@link OffsetGoneError}. */
  readonly epoch?: string;
  /** Ends a held read early: the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/**
 * Options of {@link Topic.subscribe}.
 *
 * @example
 * ```ts
 * import type { TopicSubscribeOptions } from 'pollkit/server';
 * const options: TopicSubscribeOptions = { bufferSize: 50, signal: AbortSignal.timeout(60_000) };
 * ```
 */
export interface TopicSubscribeOptions {
  /** Stops the stream: the pending `next()` rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Records fetched (and held) per batch, 1 to the registry's `maxLimit`. Default 100. */
  readonly bufferSize?: number;
  /** The epoch `fromOffset` belongs to. Default: the epoch of the first read. */
  readonly epoch?: string;
}

/** What a {@link Topic} needs from the registry that made it. */
export interface TopicHost extends FetchHost {
  readonly defaultLimit: number;
  readonly maxLimit: number;
  readonly subscribeWaitMs: number;
  readonly closed: boolean;
  watch(name: string): Hint;
  assertOpen(): void;
}

/**
 * One named log. Obtain it from {@link TopicRegistry.topic}.
 *
 * Offsets start at 0 in each epoch and rise by one per record, without gaps. Reading below the
 * earliest retained offset, or with an epoch that is no longer current, is {@link OffsetGoneError}
 * (HTTP 410, carrying `earliestOffset` and `epoch`); reading above the high watermark is
 * {@link OffsetOutOfRangeError}; reading exactly at the high watermark waits for the next record.
 *
 * @example
 * ```ts
 * import { TopicRegistry } from 'pollkit/server';
 * const orders = new TopicRegistry().topic<{ id: number }>('orders');
 * const pending = orders.read(0, { waitMs: 25_000 });
 * await orders.append({ id: 1 });
 * console.log((await pending).records[0]?.value); // { id: 1 }
 * ```
 */
export class Topic<Value = unknown> {
  /** The topic's name in its registry and in URLs: 1 to 200 letters, digits, `.`, `_` or `-`. */
  readonly name: string;
  readonly #host: TopicHost;
  #deleted = false;

  /** @internal Topics are made by {@link TopicRegistry.topic}. */
  constructor(host: TopicHost, name: string) {
    this.#host = host;
    this.name = name;
  }

  /**
   * Appends a record and resolves to its offset; held reads that it satisfies are answered.
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * const offset = await new TopicRegistry().topic('chat').append('hello', { key: 'room-1' });
   * console.log(offset); // 0
   * ```
   */
  async append(value: Value, options: TopicAppendOptions = {}): Promise<number> {
    this.#host.assertOpen();
    this.#assertLive();
    const key = options.key ?? null;
    if (key !== null && typeof key !== 'string') throw new InvalidArgumentError('key must be a string or null', 'key');
    const { offset } = await this.#host.store.append(
      this.name,
      { key, value, timestampMs: this.#host.clock.wallNow() },
      this.#host.retention(),
    );
    return offset;
  }

  /**
   * Fetches records from `offset`. With `waitMs`, the read is held in the purgatory (no timer of its
   * own) until `minRecords` records exist from `offset`, then answers at once; at the end of the wait
   * it answers with what exists, usually an empty batch. A reset of the log during the wait is
   * {@link OffsetGoneError}. Rejects with the signal's reason on abort.
   *
   * @throws OffsetGoneError, OffsetOutOfRangeError, InvalidArgumentError.
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * const topic = new TopicRegistry().topic('orders');
   * const batch = await topic.read(0, { limit: 100, waitMs: 25_000, signal: AbortSignal.timeout(30_000) });
   * console.log(batch.records.length, batch.nextOffset);
   * ```
   */
  read(offset: number, options: TopicReadOptions = {}): Promise<TopicFetchResult<Value>> {
    const waitMs = options.waitMs ?? 0;
    // A wait the operation cannot even hold is refused by the validation in _fetch, in its turn.
    const delayMs = typeof waitMs === 'number' && Number.isFinite(waitMs) ? waitMs : 0;
    return new Promise((resolve, reject) => {
      this._fetch(new PromisedFetch<Value>(delayMs, options.signal, resolve, reject), offset, options);
    });
  }

  /**
   * Starts `fetch` (its delay is the wait unless `options.waitMs` says otherwise): validates, answers at once when it can, otherwise holds
   * it in the purgatory. Its `fetched` or `failed` is called exactly once.
   *
   * @internal
   */
  _fetch(fetch: TopicFetch<Value>, offset: number, options: TopicReadOptions): void {
    const host = this.#host;
    const limit = options.limit ?? host.defaultLimit;
    const minRecords = options.minRecords ?? 1;
    const epoch = options.epoch;
    const waitMs = options.waitMs ?? fetch.delayMs;
    const problem = fetchProblem(offset, limit, minRecords, waitMs, epoch, host.maxLimit);
    if (problem !== undefined) {
      fetch.failed(problem);
      return;
    }
    const signal = fetch.signal;
    if (signal?.aborted === true) {
      fetch.failed(abortReason(signal));
      return;
    }
    if (this.#deleted) {
      fetch.failed(topicDeleted(this.name));
      return;
    }
    // Watch before reading, so an append between the read and the purgatory registration still
    // reaches this read's hint (Kafka's check–watch–recheck order).
    const hint = host.watch(this.name);
    fetch._hint = hint;
    fetch._offset = offset;
    fetch._limit = limit;
    fetch._enough = Math.min(minRecords, limit);
    if (
      fetch._enough > 0 &&
      waitMs > 0 &&
      !hint.closed &&
      hint.epoch !== undefined &&
      (epoch === undefined || epoch === hint.epoch) &&
      offset === hint.highWatermark
    ) {
      // The common long poll: a reader at the head of a log others already wait on. The shared hint is
      // as fresh as the last change notification, and the head offset is always valid, so it can wait
      // without a store read first.
      hold(fetch, hint.epoch);
      return;
    }
    if (hint.epoch !== undefined && !hint.closed && (epoch === undefined || epoch === hint.epoch)) {
      // A reader behind the head of a log others wait on: the latest records the hint keeps may
      // answer it (one answer object for every reader at the same offset) without a store read.
      fetch._pinned = hint.epoch;
      const result = resultFromHint(fetch);
      if (result !== undefined && (result.records.length >= fetch._enough || waitMs === 0)) {
        fetch._deliver(result as TopicFetchResult<Value>);
        return;
      }
    }
    fetch._pinned = epoch;
    readFirst(fetch);
  }

  /**
   * Streams records from `fromOffset` for push transports (SSE, WebSocket). Memory policy: the iterator
   * holds at most one batch of `bufferSize` records and fetches the next only when the consumer asks,
   * so a slow consumer slows only itself and appends never wait for it. If retention trims (or a reset
   * replaces) the log past a lagging consumer's position, the iterator throws {@link OffsetGoneError}
   * carrying where the log now starts; the consumer decides whether to resume there. Ends when the
   * registry closes; rejects with the signal's reason on abort.
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * const topic = new TopicRegistry().topic('orders');
   * const controller = new AbortController();
   * for await (const record of topic.subscribe(0, { signal: controller.signal })) {
   *   console.log(record.offset, record.value);
   *   if (record.offset === 9) controller.abort();
   * }
   * ```
   */
  subscribe(fromOffset: number, options: TopicSubscribeOptions = {}): AsyncIterableIterator<TopicRecord<Value>> {
    const bufferSize = options.bufferSize ?? Math.min(100, this.#host.maxLimit);
    if (!Number.isInteger(bufferSize) || bufferSize < 1 || bufferSize > this.#host.maxLimit) {
      throw new InvalidArgumentError(
        `bufferSize must be an integer from 1 to ${this.#host.maxLimit}, got ${String(bufferSize)}`,
        'bufferSize',
      );
    }
    if (!Number.isSafeInteger(fromOffset) || fromOffset < 0) {
      throw new InvalidArgumentError(`fromOffset must be an integer >= 0, got ${String(fromOffset)}`, 'fromOffset');
    }
    return this.#subscribe(fromOffset, bufferSize, options);
  }

  async *#subscribe(
    fromOffset: number,
    bufferSize: number,
    options: TopicSubscribeOptions,
  ): AsyncGenerator<TopicRecord<Value>, void, undefined> {
    let offset = fromOffset;
    let epoch = options.epoch;
    for (;;) {
      if (this.#host.closed) return;
      const batch = await this.read(offset, {
        limit: bufferSize,
        waitMs: this.#host.subscribeWaitMs,
        ...(epoch === undefined ? {} : { epoch }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      epoch ??= batch.epoch;
      for (const record of batch.records) yield record;
      offset = batch.nextOffset;
    }
  }

  /**
   * The log's epoch, earliest retained offset and high watermark.
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * const { epoch, earliestOffset, highWatermark } = await new TopicRegistry().topic('orders').position();
   * ```
   */
  async position(): Promise<TopicPosition> {
    this.#assertLive();
    return this.#host.store.position(this.name, this.#host.retention());
  }

  /**
   * Empties the log and starts a new epoch at offset 0. Held reads and subscribers of the old epoch
   * get {@link OffsetGoneError}.
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * await new TopicRegistry().topic('orders').reset();
   * ```
   */
  async reset(): Promise<void> {
    this.#host.assertOpen();
    this.#assertLive();
    await this.#host.store.reset(this.name);
  }

  /** @internal The registry deleted this topic: every later call, and every held read, fails. */
  markDeleted(): void {
    this.#deleted = true;
  }

  // A deleted topic's object must not bring its log back by reading or appending to the store.
  #assertLive(): void {
    if (this.#deleted) throw topicDeleted(this.name);
  }
}

export function topicKey(name: string): string {
  return `topic:${name}`;
}

function fetchProblem(
  offset: number,
  limit: number,
  minRecords: number,
  waitMs: number,
  epoch: string | undefined,
  maxLimit: number,
): InvalidArgumentError | undefined {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    return new InvalidArgumentError(`offset must be an integer >= 0, got ${String(offset)}`, 'offset');
  }
  if (!Number.isInteger(limit) || limit < 1 || limit > maxLimit) {
    return new InvalidArgumentError(`limit must be an integer from 1 to ${maxLimit}, got ${String(limit)}`, 'limit');
  }
  if (!Number.isInteger(minRecords) || minRecords < 0) {
    return new InvalidArgumentError(`minRecords must be an integer >= 0, got ${String(minRecords)}`, 'minRecords');
  }
  if (typeof waitMs !== 'number' || !Number.isFinite(waitMs) || waitMs < 0) {
    return new InvalidArgumentError(`waitMs must be a finite number >= 0, got ${String(waitMs)}`, 'waitMs');
  }
  if (epoch !== undefined && typeof epoch !== 'string')
    return new InvalidArgumentError('epoch must be a string', 'epoch');
  return undefined;
}

/** The promise form of a fetch: what {@link Topic.read} returns. */
class PromisedFetch<Value> extends TopicFetch<Value> {
  readonly #resolve: (result: TopicFetchResult<Value>) => void;
  readonly #reject: (error: unknown) => void;

  constructor(
    waitMs: number,
    signal: AbortSignal | undefined,
    resolve: (result: TopicFetchResult<Value>) => void,
    reject: (error: unknown) => void,
  ) {
    super(waitMs, signal);
    this.#resolve = resolve;
    this.#reject = reject;
  }

  fetched(result: TopicFetchResult<Value>): void {
    this.#resolve(result);
  }

  failed(error: unknown): void {
    this.#reject(error);
  }
}
