/**
 * A {@link TopicStore} on Redis Streams, so a record appended through one server process reaches the
 * readers held on every other. Each topic is a stream whose entry ids are `0-<offset + 1>`: offsets are
 * explicit and gap-free, reading from an offset is one XRANGE, and retention by count is XTRIM MAXLEN
 * (by age, XTRIM MINID up to the first young record). The epoch and high watermark live in a hash
 * beside the stream and change in the same script as the stream, so they never disagree.
 *
 * @module
 */
import type { Redis } from 'ioredis';
import type { Clock } from '../core/clock.js';
import { InvalidArgumentError } from '../core/errors.js';
import { randomToken } from '../server/ids.js';
import type {
  NewTopicRecord,
  StoredRecord,
  TopicAppendResult,
  TopicChange,
  TopicPosition,
  TopicReadResult,
  TopicRetention,
  TopicStore,
} from '../server/topics/stores/topic-store.js';
import { type CommandGuard, StoreUnavailableError, storeConnection } from './connection.js';
import type { FeedNotice, RedisChangeFeed } from './change-feed.js';
import { StoreSubscription } from './resync.js';
import { APPEND_RECORD, DELETE_TOPIC, READ_RECORDS, RESET_TOPIC, TOPIC_POSITION } from './scripts.js';

/** Options for {@link RedisTopicStore}. */
export interface RedisTopicStoreOptions {
  /** The ioredis client for commands; the store never closes it. Required. */
  readonly redis: Redis;
  /**
   * The process's subscription, shared with a {@link RedisJobStore}. Default: a feed of the store's
   * own (one more connection), closed with the store.
   */
  readonly feed?: RedisChangeFeed;
  /** Prefix of every key; stores of one deployment must agree on it. Default `"pollkit:"`. */
  readonly keyPrefix?: string;
  /** Time for command deadlines. Default `systemClock`. */
  readonly clock?: Clock;
  /** How long a command may take before it fails with {@link StoreUnavailableError}. Default `2000`. */
  readonly commandTimeoutMs?: number;
  /** Makes the epoch of a new or reset log. Default: 16 random base64url characters. */
  readonly generateEpoch?: () => string;
  /** How many recently used topics the store remembers for re-checks and outage reads. Default `10_000`. */
  readonly trackLimit?: number;
}

type PositionReply = [string, number, number];

/**
 * Topic logs in Redis Streams, shared by every process that uses the same Redis and key prefix. Values
 * are stored as JSON, so they must be JSON-serializable (they are, when they came over HTTP).
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { TopicRegistry } from 'pollkit/server';
 * import { RedisTopicStore } from 'pollkit/redis';
 *
 * const topics = new TopicRegistry({ store: new RedisTopicStore({ redis: new Redis(process.env.REDIS_URL!) }) });
 * ```
 */
export class RedisTopicStore implements TopicStore {
  readonly #guard: CommandGuard;
  readonly #subscription: StoreSubscription<TopicChange, TopicPosition>;
  readonly #prefix: string;
  readonly #generateEpoch: () => string;
  readonly #origin = randomToken();
  readonly #inflight = new Map<string, Map<string, Promise<TopicReadResult>>>();

  constructor(options: RedisTopicStoreOptions) {
    const connection = storeConnection('RedisTopicStore', options);
    this.#guard = connection.guard;
    this.#prefix = connection.keyPrefix;
    if (options.generateEpoch !== undefined && typeof options.generateEpoch !== 'function') {
      throw new InvalidArgumentError('generateEpoch must be a function', 'generateEpoch');
    }
    this.#generateEpoch = options.generateEpoch ?? (() => randomToken());
    this.#subscription = new StoreSubscription(connection, options, {
      notice: (notice) => this.#onNotice(notice),
      resync: () => this.#resync(),
    });
  }

  /** The change feed this store listens on (its own unless one was passed). */
  get feed(): RedisChangeFeed {
    return this.#subscription.feed;
  }

  async append(topic: string, entry: NewTopicRecord, retention: TopicRetention): Promise<TopicAppendResult> {
    const value = entry.value === undefined ? '' : JSON.stringify(entry.value);
    const [offset, epoch, earliestOffset, highWatermark] = (await this.#guard.run((redis) =>
      APPEND_RECORD.run(redis, this.#keys(topic), [
        this.#generateEpoch(),
        Math.floor(entry.timestampMs),
        entry.key === null ? 0 : 1,
        entry.key ?? '',
        value,
        ...retentionArgs(retention),
        this.feed.channel,
        this.#origin,
        topic,
      ]),
    )) as [number, string, number, number];
    const position = this.#remember(topic, { epoch, earliestOffset, highWatermark });
    this.#emit({ topic, position });
    return { offset, position };
  }

  async read(topic: string, offset: number, limit: number, retention: TopicRetention): Promise<TopicReadResult> {
    try {
      return await this.#sharedRead(topic, offset, limit, retention);
    } catch (error) {
      // Out of reach: "nothing new yet" is still a true answer for a reader already at the end it knew.
      const known = this.#subscription.known.get(topic);
      if (known !== undefined && offset >= known.highWatermark && StoreUnavailableError.is(error)) {
        return { records: [], position: known };
      }
      throw error;
    }
  }

  // One append wakes every reader held on the topic at once, and most of them re-read the same range:
  // identical reads started after the same change share one round trip, so a wake costs Redis O(1)
  // commands per process rather than one per reader. A change drops the topic's shared reads, so a
  // reader woken by it never joins a read that started before it. (Age retention is keyed to the
  // second, so readers sharing a read may see retention applied up to a second apart.)
  #sharedRead(topic: string, offset: number, limit: number, retention: TopicRetention): Promise<TopicReadResult> {
    const args = retentionArgs(retention);
    const key = `${offset}|${limit}|${args[0]}|${args[1] === '' ? '' : Math.floor(Number(args[1]) / 1000)}`;
    let reads = this.#inflight.get(topic);
    const shared = reads?.get(key);
    if (shared !== undefined) return shared;
    const read = this.#guard
      .run((redis) => READ_RECORDS.run(redis, this.#keys(topic), [this.#generateEpoch(), offset, limit, ...args]))
      .then((reply) => {
        const [epoch, earliestOffset, highWatermark, entries] = reply as [string, number, number, [string, string[]][]];
        const position = this.#remember(topic, { epoch, earliestOffset, highWatermark });
        return { records: entries.map(parseRecord), position };
      })
      .finally(() => {
        const current = this.#inflight.get(topic);
        if (current?.get(key) === read) {
          current.delete(key);
          if (current.size === 0) this.#inflight.delete(topic);
        }
      });
    if (reads === undefined) this.#inflight.set(topic, (reads = new Map()));
    reads.set(key, read);
    return read;
  }

  async position(topic: string, retention: TopicRetention): Promise<TopicPosition> {
    try {
      const [epoch, earliestOffset, highWatermark] = (await this.#guard.run((redis) =>
        TOPIC_POSITION.run(redis, this.#keys(topic), [this.#generateEpoch(), ...retentionArgs(retention)]),
      )) as PositionReply;
      return this.#remember(topic, { epoch, earliestOffset, highWatermark });
    } catch (error) {
      const known = this.#subscription.known.get(topic);
      if (known !== undefined && StoreUnavailableError.is(error)) return known;
      throw error;
    }
  }

  async reset(topic: string): Promise<TopicPosition> {
    const [epoch, earliestOffset, highWatermark] = (await this.#guard.run((redis) =>
      RESET_TOPIC.run(redis, this.#keys(topic), [this.#generateEpoch(), this.feed.channel, this.#origin, topic]),
    )) as PositionReply;
    const position: TopicPosition = { epoch, earliestOffset, highWatermark };
    this.#subscription.known.delete(topic);
    this.#remember(topic, position);
    this.#emit({ topic, position });
    return position;
  }

  async delete(topic: string): Promise<boolean> {
    const epoch = this.#generateEpoch();
    const existed = (await this.#guard.run((redis) =>
      DELETE_TOPIC.run(redis, this.#keys(topic), [this.feed.channel, this.#origin, topic, epoch]),
    )) as number;
    this.#subscription.known.delete(topic);
    this.#emit({ topic, position: { epoch, earliestOffset: 0, highWatermark: 0 }, deleted: true });
    return existed === 1;
  }

  onChange(listener: (change: TopicChange) => void): () => void {
    return this.#subscription.onChange(listener);
  }

  /** Stops listening (and closes the feed if the store made it); the caller's client stays open. */
  async close(): Promise<void> {
    await this.#subscription.close();
  }

  #onNotice({ header }: FeedNotice): void {
    if (header['k'] !== 't' || header['o'] === this.#origin) return;
    const { t: topic, e: epoch, ea: earliestOffset, hw: highWatermark } = header;
    if (typeof topic !== 'string' || typeof epoch !== 'string') return;
    if (typeof earliestOffset !== 'number' || typeof highWatermark !== 'number') return;
    if (header['d'] === 1) {
      this.#subscription.known.delete(topic);
      this.#emit({ topic, position: { epoch, earliestOffset, highWatermark }, deleted: true });
      return;
    }
    const known = this.#subscription.known.get(topic);
    // This process announces its own appends before an older notice of another writer can arrive.
    if (known !== undefined && known.epoch === epoch && known.highWatermark >= highWatermark) return;
    const position: TopicPosition = { epoch, earliestOffset, highWatermark };
    if (known !== undefined) this.#subscription.known.set(topic, position);
    this.#emit({ topic, position });
  }

  // Appends announced while the subscription was down are not lost from the log, only their notices:
  // re-read the position of every topic this process has served and announce what moved.
  async #resync(): Promise<void> {
    for (const [topic, known] of [...this.#subscription.known]) {
      if (this.#subscription.closed) return;
      let reply: PositionReply;
      try {
        reply = (await this.#guard.run((redis) =>
          TOPIC_POSITION.run(redis, this.#keys(topic), [this.#generateEpoch(), '', '']),
        )) as PositionReply;
      } catch {
        this.#subscription.retryResync();
        return;
      }
      const [epoch, earliestOffset, highWatermark] = reply;
      if (epoch !== known.epoch || highWatermark !== known.highWatermark || earliestOffset !== known.earliestOffset) {
        const position = { epoch, earliestOffset, highWatermark };
        this.#subscription.known.set(topic, position);
        this.#emit({ topic, position });
      }
    }
  }

  #remember(topic: string, position: TopicPosition): TopicPosition {
    // Keep the newer of two positions of the same epoch; reads can overtake appends in flight.
    this.#subscription.remember(
      topic,
      position,
      (known) => known.epoch === position.epoch && known.highWatermark > position.highWatermark,
    );
    return position;
  }

  #emit(change: TopicChange): void {
    this.#inflight.delete(change.topic);
    this.#subscription.emit(change);
  }

  #keys(topic: string): [string, string] {
    return [`${this.#prefix}topic:${topic}:log`, `${this.#prefix}topic:${topic}:meta`];
  }
}

function retentionArgs(retention: TopicRetention): [string | number, string | number] {
  const { maxRecords, minTimestampMs } = retention;
  return [
    maxRecords === undefined ? '' : Math.max(0, Math.floor(maxRecords)),
    minTimestampMs === undefined ? '' : Math.floor(minTimestampMs),
  ];
}

function parseRecord([id, fields]: [string, string[]]): StoredRecord {
  let timestampMs = 0;
  let key: string | null = null;
  let value: unknown;
  for (let index = 0; index < fields.length; index += 2) {
    const field = fields[index];
    const content = fields[index + 1]!;
    if (field === 't') timestampMs = Number(content);
    else if (field === 'k') key = content;
    else if (field === 'v') value = content === '' ? undefined : JSON.parse(content);
  }
  const offset = Number(id.slice(2)) - 1;
  return { record: { offset, timestamp: new Date(timestampMs).toISOString(), key, value }, timestampMs };
}
