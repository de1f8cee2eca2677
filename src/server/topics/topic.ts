/**
 * Topics: named append-only logs with offsets, Kafka-style. A fetch names an offset and may be held in
 * the {@link DelayedOperationPurgatory} until enough records exist; push transports read the same log
 * through {@link Topic.subscribe}, which pulls by offset instead of buffering copies, so a slow
 * consumer costs one bounded batch and never unbounded memory.
 *
 * Logs live behind a {@link TopicStore}. The purgatory's `check()` is synchronous, the store is not,
 * so the registry keeps a hint per topic someone is waiting on (epoch and high watermark, updated by
 * the store's change notifications); a wake-up re-reads the store.
 *
 * @module
 */
import { throwIfAborted } from '../../core/abort.js';
import { type Clock, systemClock } from '../../core/clock.js';
import {
  InvalidArgumentError,
  OffsetGoneError,
  OffsetOutOfRangeError,
  OverloadedError,
  PollkitError,
} from '../../core/errors.js';
import type { TopicFetchResult, TopicRecord } from '../../core/protocol.js';
import { onLaterTurn } from '../purgatory/later-turn.js';
import { DelayedOperationPurgatory } from '../purgatory/purgatory.js';
import { MemoryTopicStore } from './stores/memory-topic-store.js';
import type { TopicChange, TopicPosition, TopicReadResult, TopicRetention, TopicStore } from './stores/topic-store.js';
import { integerAtLeast } from '../validate.js';

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

/**
 * Retention of every topic of a registry; records beyond either limit are dropped from the head.
 *
 * @example
 * ```ts
 * import type { TopicRetentionOptions } from 'pollkit/server';
 * const retention: TopicRetentionOptions = { maxRecords: 10_000, maxAgeMs: 24 * 3_600_000 };
 * ```
 */
export interface TopicRetentionOptions {
  /** Records kept per topic. Default: unlimited. */
  readonly maxRecords?: number;
  /** How long a record is kept, in milliseconds: it is dropped once older than this. Default: unlimited. */
  readonly maxAgeMs?: number;
}

/**
 * Options for {@link TopicRegistry}.
 *
 * @example
 * ```ts
 * import { TopicRegistry } from 'pollkit/server';
 * const topics = new TopicRegistry({ retention: { maxRecords: 1000 }, maxTopics: 100 });
 * ```
 */
export interface TopicRegistryOptions {
  /** Time and timers. Default `systemClock`. */
  readonly clock?: Clock;
  /** Where logs live. Default: a new {@link MemoryTopicStore}, closed with the registry. */
  readonly store?: TopicStore;
  /** Holds waiting reads. Default: a new purgatory on `clock`, shut down with the registry. */
  readonly purgatory?: DelayedOperationPurgatory;
  /** Retention applied to every topic. Default: keep everything. */
  readonly retention?: TopicRetentionOptions;
  /** `limit` of a read that does not give one. Default 100. */
  readonly defaultLimit?: number;
  /** The largest `limit` (and subscribe `bufferSize`) accepted. Default 1000. */
  readonly maxLimit?: number;
  /** Topics this registry creates before {@link TopicRegistry.topic} rejects with {@link OverloadedError}. Default 10,000. */
  readonly maxTopics?: number;
  /** How long one read inside {@link Topic.subscribe} is held before it is renewed, in milliseconds. Default 30,000. */
  readonly subscribeWaitMs?: number;
}

/** The answer built from each store read, for the readers that share the read; dropped with the read. */
const fetchResults = new WeakMap<TopicReadResult, { readonly offset: number; readonly result: TopicFetchResult }>();

/** Topic names: what fits in a URL path segment without escaping. */
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,200}$/;

/** The epoch and high watermark of a topic someone is waiting on, as the latest notification said. */
interface Hint {
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
interface TopicHost {
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
        () => (hint.epoch !== pinned || hint.highWatermark - offset >= enough || host.closed ? true : undefined),
        signal === undefined ? { timeoutMs: waitMs } : { timeoutMs: waitMs, signal },
      );
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
    await this.#host.store.reset(this.name);
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

/**
 * The named topics of a server: creates them on first use, validates names, applies retention, and
 * answers held reads through one purgatory.
 *
 * @example
 * ```ts
 * import { TopicRegistry } from 'pollkit/server';
 * const topics = new TopicRegistry({ retention: { maxRecords: 10_000 } });
 * await topics.topic('orders').append({ id: 1 });
 * console.log(topics.get('orders')?.name, topics.get('nope')); // "orders" undefined
 * ```
 */
export class TopicRegistry {
  readonly #topics = new Map<string, Topic>();
  readonly #hints = new Map<string, Hint>();
  readonly #host: TopicHost;
  readonly #clock: Clock;
  readonly #store: TopicStore;
  readonly #ownsStore: boolean;
  readonly #purgatory: DelayedOperationPurgatory;
  readonly #ownsPurgatory: boolean;
  readonly #maxTopics: number;
  readonly #maxRecords: number | undefined;
  readonly #maxAgeMs: number | undefined;
  readonly #unsubscribe: () => void;
  #closed = false;
  #closing: Promise<void> | undefined;
  #waiting = 0;
  #drained: (() => void) | undefined;

  constructor(options: TopicRegistryOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    const maxLimit = integerAtLeast(options.maxLimit ?? 1000, 'maxLimit', 1);
    const defaultLimit = integerAtLeast(options.defaultLimit ?? Math.min(100, maxLimit), 'defaultLimit', 1);
    if (defaultLimit > maxLimit) {
      throw new InvalidArgumentError(
        `defaultLimit (${defaultLimit}) must not exceed maxLimit (${maxLimit})`,
        'defaultLimit',
      );
    }
    this.#maxTopics = integerAtLeast(options.maxTopics ?? 10_000, 'maxTopics', 1);
    const subscribeWaitMs = options.subscribeWaitMs ?? 30_000;
    if (typeof subscribeWaitMs !== 'number' || !Number.isFinite(subscribeWaitMs) || subscribeWaitMs <= 0) {
      throw new InvalidArgumentError(
        `subscribeWaitMs must be a finite number > 0, got ${String(subscribeWaitMs)}`,
        'subscribeWaitMs',
      );
    }
    const { maxRecords, maxAgeMs } = options.retention ?? {};
    if (maxRecords !== undefined) integerAtLeast(maxRecords, 'retention.maxRecords', 1);
    if (maxAgeMs !== undefined && !(typeof maxAgeMs === 'number' && maxAgeMs > 0)) {
      throw new InvalidArgumentError(
        `retention.maxAgeMs must be a number > 0, got ${String(maxAgeMs)}`,
        'retention.maxAgeMs',
      );
    }
    this.#maxRecords = maxRecords;
    this.#maxAgeMs = maxAgeMs !== undefined && Number.isFinite(maxAgeMs) ? maxAgeMs : undefined;
    this.#ownsStore = options.store === undefined;
    this.#store = options.store ?? new MemoryTopicStore();
    this.#ownsPurgatory = options.purgatory === undefined;
    this.#purgatory = options.purgatory ?? new DelayedOperationPurgatory({ clock: this.#clock, name: 'topics' });
    // The host is the one window Topic instances have into the registry's state.
    const isClosed = (): boolean => this.#closed;
    this.#host = {
      clock: this.#clock,
      store: this.#store,
      purgatory: this.#purgatory,
      defaultLimit,
      maxLimit,
      subscribeWaitMs,
      get closed() {
        return isClosed();
      },
      retention: () => this.#retention(),
      watch: (name) => this.#watch(name),
      unwatch: (name, hint) => this.#unwatch(name, hint),
      assertOpen: () => this.#assertOpen(),
    };
    this.#unsubscribe = this.#store.onChange((change) => this.#onStoreChange(change));
  }

  /**
   * The topic named `name`, created on first use.
   *
   * @throws InvalidArgumentError (`name`) for a name outside `/^[A-Za-z0-9._-]{1,200}$/`;
   *   {@link OverloadedError} when `maxTopics` topics exist.
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * const chat = new TopicRegistry().topic<string>('chat.room-1');
   * ```
   */
  topic<V = unknown>(name: string): Topic<V> {
    const existing = this.#topics.get(name);
    if (existing !== undefined) return existing as Topic<V>;
    if (!isTopicName(name)) {
      throw new InvalidArgumentError(
        `topic name must be 1 to 200 letters, digits, '.', '_' or '-', got ${JSON.stringify(name)}`,
        'name',
      );
    }
    this.#assertOpen();
    if (this.#topics.size >= this.#maxTopics) {
      throw new OverloadedError(`Too many topics (${this.#maxTopics})`);
    }
    const topic = new Topic<V>(this.#host, name);
    this.#topics.set(name, topic as Topic);
    return topic;
  }

  /**
   * The topic named `name` if this registry has made it, else `undefined` (never creates one).
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * console.log(new TopicRegistry().get('orders')); // undefined
   * ```
   */
  get<V = unknown>(name: string): Topic<V> | undefined {
    return this.#topics.get(name) as Topic<V> | undefined;
  }

  /**
   * The names of the topics this registry has made, in creation order.
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * const topics = new TopicRegistry();
   * topics.topic('a');
   * console.log(topics.names()); // ['a']
   * ```
   */
  names(): string[] {
    return [...this.#topics.keys()];
  }

  /**
   * Stops the registry: appends and resets reject with code `shutting-down`, every held read answers
   * with the records that exist, and subscribers end. Idempotent.
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * const topics = new TopicRegistry();
   * await topics.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    for (const name of [...this.#hints.keys()]) this.#purgatory.checkAndComplete(topicKey(name));
    if (this.#waiting > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
    this.#unsubscribe();
    if (this.#ownsPurgatory) this.#purgatory.shutdown();
    if (this.#ownsStore) await this.#store.close();
  }

  #onStoreChange(change: TopicChange): void {
    const hint = this.#hints.get(change.topic);
    if (hint === undefined) return;
    const { epoch, highWatermark } = change.position;
    if (hint.epoch !== epoch) {
      hint.epoch = epoch;
      hint.highWatermark = highWatermark;
    } else if (highWatermark > hint.highWatermark) hint.highWatermark = highWatermark;
    this.#purgatory.checkAndComplete(topicKey(change.topic));
  }

  #watch(name: string): Hint {
    let hint = this.#hints.get(name);
    if (hint === undefined) {
      hint = { refs: 0, epoch: undefined, highWatermark: 0, read: undefined };
      this.#hints.set(name, hint);
    }
    hint.refs++;
    this.#waiting++;
    return hint;
  }

  #unwatch(name: string, hint: Hint): void {
    if (--hint.refs === 0 && this.#hints.get(name) === hint) this.#hints.delete(name);
    if (--this.#waiting === 0 && this.#drained !== undefined) {
      const resolve = this.#drained;
      this.#drained = undefined;
      resolve();
    }
  }

  #retention(): TopicRetention {
    const minTimestampMs = this.#maxAgeMs === undefined ? undefined : this.#clock.wallNow() - this.#maxAgeMs;
    return {
      ...(this.#maxRecords === undefined ? {} : { maxRecords: this.#maxRecords }),
      ...(minTimestampMs === undefined ? {} : { minTimestampMs }),
    };
  }

  #assertOpen(): void {
    if (this.#closed)
      throw new PollkitError('The topic registry is shutting down', 'shutting-down', { retryable: true });
  }
}

/**
 * True for a valid topic name: 1 to 200 characters of letters, digits, `.`, `_` and `-`.
 *
 * @example
 * ```ts
 * import { isTopicName } from 'pollkit/server';
 * console.log(isTopicName('orders.eu-1'), isTopicName('a/b')); // true false
 * ```
 */
export function isTopicName(name: unknown): name is string {
  return typeof name === 'string' && TOPIC_NAME.test(name);
}

function topicKey(name: string): string {
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
