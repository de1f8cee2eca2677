/**
 * Topics: named append-only logs with offsets, Kafka-style. A fetch names an offset and may be held in
 * the {@link DelayedOperationPurgatory} until enough records exist; push transports read the same log
 * through {@link Topic.subscribe}, which pulls by offset instead of buffering copies, so a slow
 * consumer costs one bounded batch and never unbounded memory.
 *
 * Logs live behind a {@link TopicStore}. The purgatory's `check()` is synchronous, the store is not,
 * so the registry (`topic-registry.ts`) keeps a hint per topic someone is waiting on (epoch and high
 * watermark, updated by the store's change notifications); a wake-up re-reads the store.
 *
 * @module
 */
import { throwIfAborted } from '../../core/abort.js';
import type { Clock } from '../../core/clock.js';
import { InvalidArgumentError, OffsetGoneError, OffsetOutOfRangeError, PollkitError } from '../../core/errors.js';
import type { TopicFetchResult, TopicRecord } from '../../core/protocol.js';
import { onLaterTurn } from '../purgatory/later-turn.js';
import type { DelayedOperationPurgatory } from '../purgatory/purgatory.js';
import type { TopicPosition, TopicReadResult, TopicRetention, TopicStore } from './stores/topic-store.js';

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

/** The answer built from each store read, for the readers that share the read; dropped with the read. */
const fetchResults = new WeakMap<TopicReadResult, { readonly offset: number; readonly result: TopicFetchResult }>();

/** The epoch and high watermark of a topic someone is waiting on, as the latest notification said. */
export interface Hint {
  refs: number;
  epoch: string | undefined;
  highWatermark: number;
  /** The store read in flight for readers woken together. */
  read: SharedRead | undefined;
}

/** A store read that readers woken by the same change share. */
interface SharedRead {
  readonly offset: number;
  readonly limit: number;
  readonly epoch: string | undefined;
  readonly highWatermark: number;
  readonly promise: Promise<TopicReadResult>;
}

/** What a {@link Topic} needs from the registry that made it. */
export interface TopicHost {
  readonly clock: Clock;
  readonly store: TopicStore;
  readonly purgatory: DelayedOperationPurgatory;
  readonly defaultLimit: number;
  readonly maxLimit: number;
  readonly subscribeWaitMs: number;
  readonly closed: boolean;
  retention(): TopicRetention;
  watch(name: string): Hint;
  unwatch(name: string, hint: Hint): void;
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
  // Shared by every held read of this topic rather than built per read.
  readonly #keys: readonly string[];
  #deleted = false;

  /** @internal Topics are made by {@link TopicRegistry.topic}. */
  constructor(host: TopicHost, name: string) {
    this.#host = host;
    this.name = name;
    this.#keys = [topicKey(name)];
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
    const host = this.#host;
    const limit = options.limit ?? host.defaultLimit;
    const minRecords = options.minRecords ?? 1;
    const waitMs = options.waitMs ?? 0;
    const { epoch, signal } = options;
    try {
      if (!Number.isSafeInteger(offset) || offset < 0) {
        throw new InvalidArgumentError(`offset must be an integer >= 0, got ${String(offset)}`, 'offset');
      }
      if (!Number.isInteger(limit) || limit < 1 || limit > host.maxLimit) {
        throw new InvalidArgumentError(
          `limit must be an integer from 1 to ${host.maxLimit}, got ${String(limit)}`,
          'limit',
        );
      }
      if (!Number.isInteger(minRecords) || minRecords < 0) {
        throw new InvalidArgumentError(`minRecords must be an integer >= 0, got ${String(minRecords)}`, 'minRecords');
      }
      if (typeof waitMs !== 'number' || !Number.isFinite(waitMs) || waitMs < 0) {
        throw new InvalidArgumentError(`waitMs must be a finite number >= 0, got ${String(waitMs)}`, 'waitMs');
      }
      if (epoch !== undefined && typeof epoch !== 'string') {
        throw new InvalidArgumentError('epoch must be a string', 'epoch');
      }
      throwIfAborted(signal);
      this.#assertLive();
    } catch (error) {
      return Promise.reject(error);
    }
    const enough = Math.min(minRecords, limit);
    // Watch before reading, so an append between the read and the purgatory registration still
    // reaches this read's hint (Kafka's check–watch–recheck order).
    const hint = host.watch(this.name);
    if (
      enough > 0 &&
      waitMs > 0 &&
      !host.closed &&
      hint.epoch !== undefined &&
      (epoch === undefined || epoch === hint.epoch) &&
      offset === hint.highWatermark
    ) {
      // The common long poll: a reader at the head of a log others already wait on. The shared hint is
      // as fresh as the last change notification, and the head offset is always valid, so it can wait
      // without a store read first.
      return this.#hold(hint, offset, limit, enough, hint.epoch, waitMs, signal);
    }
    return this.#readThenHold(hint, offset, limit, enough, epoch, waitMs, signal);
  }

  async #readThenHold(
    hint: Hint,
    offset: number,
    limit: number,
    enough: number,
    epoch: string | undefined,
    waitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<TopicFetchResult<Value>> {
    const host = this.#host;
    let holding = false;
    try {
      const first = await host.store.read(this.name, offset, limit, host.retention());
      const pinned = epoch ?? first.position.epoch;
      this.#check(first.position, offset, pinned);
      observe(hint, first.position);
      const available = first.position.highWatermark - offset;
      if (available >= enough || waitMs === 0 || host.closed) return this.#result(first, offset);
      holding = true;
      // Returned, not awaited: this frame ends here, and only the small one of #hold stays alive while held.
      return this.#hold(hint, offset, limit, enough, pinned, waitMs, signal);
    } finally {
      if (!holding) host.unwatch(this.name, hint);
    }
  }

  // Held reads are what a server keeps ten thousand of, so this frame is kept to the few values it needs.
  async #hold(
    hint: Hint,
    offset: number,
    limit: number,
    enough: number,
    pinned: string,
    waitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<TopicFetchResult<Value>> {
    const host = this.#host;
    try {
      await host.purgatory.waitFor(
        this.#keys,
        () =>
          hint.epoch !== pinned || hint.highWatermark - offset >= enough || host.closed || this.#deleted
            ? true
            : undefined,
        signal === undefined ? { timeoutMs: waitMs } : { timeoutMs: waitMs, signal },
      );
      this.#assertLive();
      // Whatever ended the wait (records, timeout, reset, shutdown), the answer is the log as it is now.
      const second = await sharedRead(host, this.name, hint, offset, limit);
      this.#check(second.position, offset, pinned);
      return this.#result(second, offset);
    } finally {
      host.unwatch(this.name, hint);
    }
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
    if (this.#deleted) throw new PollkitError(`Topic ${this.name} was deleted`, 'topic-not-found');
  }

  #check(position: TopicPosition, offset: number, epoch: string): void {
    if (epoch !== position.epoch || offset < position.earliestOffset) {
      throw new OffsetGoneError(this.name, offset, {
        earliestOffset: position.earliestOffset,
        epoch: position.epoch,
      });
    }
    if (offset > position.highWatermark) {
      throw new OffsetOutOfRangeError(this.name, offset, position.highWatermark);
    }
  }

  #result(read: TopicReadResult, offset: number): TopicFetchResult<Value> {
    // Readers woken together share one store read (see sharedRead), so they share its answer too: one
    // object, frozen because many callers hold it, which lets the HTTP handler serialize it once.
    const known = fetchResults.get(read);
    if (known !== undefined && known.offset === offset && known.result.topic === this.name) {
      return known.result as TopicFetchResult<Value>;
    }
    const records = Object.freeze(read.records.map((stored) => stored.record as TopicRecord<Value>));
    const result: TopicFetchResult<Value> = Object.freeze({
      topic: this.name,
      epoch: read.position.epoch,
      records,
      nextOffset: offset + records.length,
      highWatermark: read.position.highWatermark,
      earliestOffset: read.position.earliestOffset,
    });
    fetchResults.set(read, { offset, result });
    return result;
  }
}

export function topicKey(name: string): string {
  return `topic:${name}`;
}

// One append wakes every reader of the topic at once; those at the same offset would all make the
// same store read, so they share it. The shared read is tied to the hint's epoch and high watermark,
// so a reader woken by a later change never reuses a read made before that change. The purgatory
// resumes woken readers in batches a few microtasks apart, so the read stays shared until the turn
// after it settled (and no longer: retention may trim the log without any append).
function sharedRead(
  host: TopicHost,
  name: string,
  hint: Hint,
  offset: number,
  limit: number,
): Promise<TopicReadResult> {
  const shared = hint.read;
  if (
    shared !== undefined &&
    shared.offset === offset &&
    shared.limit === limit &&
    shared.epoch === hint.epoch &&
    shared.highWatermark === hint.highWatermark
  ) {
    return shared.promise;
  }
  const promise = host.store.read(name, offset, limit, host.retention());
  const entry: SharedRead = { offset, limit, epoch: hint.epoch, highWatermark: hint.highWatermark, promise };
  hint.read = entry;
  const forget = (): void => {
    if (hint.read === entry) hint.read = undefined;
  };
  const forgetLater = (): void => onLaterTurn(host.clock, forget);
  promise.then(forgetLater, forgetLater);
  return promise;
}

// A read's own view of the log seeds the shared hint only when no notification has done so yet, or
// moves it forward within the same epoch; notifications stay authoritative about epochs.
function observe(hint: Hint, position: TopicPosition): void {
  if (hint.epoch === undefined) {
    hint.epoch = position.epoch;
    hint.highWatermark = position.highWatermark;
  } else if (hint.epoch === position.epoch && position.highWatermark > hint.highWatermark) {
    hint.highWatermark = position.highWatermark;
  }
}
