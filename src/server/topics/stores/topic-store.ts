/**
 * The storage seam of topics: an append-only log per topic name behind an async interface, so a
 * shared store (Redis streams, a database) can replace the in-memory default without changing the
 * public API. Offsets advance inside the store, gap-free within an epoch, and the store announces
 * every append or reset — from this process or another — through {@link TopicStore.onChange}.
 *
 * @module
 */
import type { TopicRecord } from '../../../core/protocol.js';

/**
 * Where a topic's log stands.
 *
 * @example
 * ```ts
 * import type { TopicPosition } from 'pollkit/server';
 * const lag = (position: TopicPosition, offset: number) => position.highWatermark - offset;
 * ```
 */
export interface TopicPosition {
  /** Changes whenever the log is reset; offsets restart at 0 in a new epoch. */
  readonly epoch: string;
  /** The first offset still retained. */
  readonly earliestOffset: number;
  /** The offset the next appended record will get. */
  readonly highWatermark: number;
}

/**
 * A record as a store keeps it: the wire record, built once at append time and shared by every read
 * (ten thousand readers woken by one append get the same object, not ten thousand copies), and its
 * append time in milliseconds for retention by age.
 *
 * @example
 * ```ts
 * import type { StoredRecord } from 'pollkit/server';
 * const stored: StoredRecord<string> = {
 *   record: { offset: 0, timestamp: '2026-01-01T00:00:00.000Z', key: null, value: 'hi' },
 *   timestampMs: Date.UTC(2026, 0, 1),
 * };
 * ```
 */
export interface StoredRecord<Value = unknown> {
  /** The record as clients see it. Treated as immutable. */
  readonly record: TopicRecord<Value>;
  /** Wall-clock epoch milliseconds of the append. */
  readonly timestampMs: number;
}

/**
 * What a store may drop, applied on every call that passes it: the oldest records beyond
 * `maxRecords`, and records appended before `minTimestampMs`.
 *
 * @example
 * ```ts
 * import type { TopicRetention } from 'pollkit/server';
 * const retention: TopicRetention = { maxRecords: 10_000, minTimestampMs: Date.now() - 3_600_000 };
 * ```
 */
export interface TopicRetention {
  /** Keep at most this many records, dropping the oldest first. Default: no count limit. */
  readonly maxRecords?: number;
  /** Drop records appended before this wall-clock time, in epoch milliseconds. Default: no age limit. */
  readonly minTimestampMs?: number;
}

/**
 * A change announced by {@link TopicStore.onChange}: an append, a reset or a deletion.
 *
 * @example
 * ```ts
 * import type { TopicChange } from 'pollkit/server';
 * const log = (change: TopicChange) => console.log(change.topic, change.position.highWatermark);
 * ```
 */
export interface TopicChange {
  /** The name of the topic that was appended to, reset or deleted. */
  readonly topic: string;
  /** The topic's position right after the change; after a deletion, an empty log in a fresh epoch. */
  readonly position: TopicPosition;
  /**
   * The records an append added, when the store has them at hand (the in-memory store always does).
   * Held reads woken by the append are then answered from them without a read; a store that omits
   * them is read instead.
   */
  readonly records?: readonly StoredRecord[];
  /** True when the topic was deleted ({@link TopicStore.delete}), here or in another process. */
  readonly deleted?: boolean;
}

/**
 * The answer of {@link TopicStore.read}: the records and the position they were read at, taken
 * together so the caller can validate the offset against the same state the records came from.
 *
 * @example
 * ```ts
 * import type { TopicReadResult } from 'pollkit/server';
 * const empty = (result: TopicReadResult) => result.records.length === 0;
 * ```
 */
export interface TopicReadResult<Value = unknown> {
  /** Records from the requested offset, empty when it is outside the retained range. */
  readonly records: readonly StoredRecord<Value>[];
  /** The topic's position at the moment of the read, after retention was applied. */
  readonly position: TopicPosition;
}

/**
 * A record to append, as the registry hands it to a store.
 *
 * @example
 * ```ts
 * import type { NewTopicRecord } from 'pollkit/server';
 * const entry: NewTopicRecord = { key: 'order-7', value: { total: 42 }, timestampMs: Date.now() };
 * ```
 */
export interface NewTopicRecord {
  /** The record's key, or `null`. */
  readonly key: string | null;
  /** The value to store; JSON-serializable for shared stores. */
  readonly value: unknown;
  /** The append time in epoch milliseconds, kept for retention by age. */
  readonly timestampMs: number;
}

/**
 * What a store answers to an append.
 *
 * @example
 * ```ts
 * import type { TopicAppendResult } from 'pollkit/server';
 * const describe = (appended: TopicAppendResult) => `offset ${appended.offset} of ${appended.position.highWatermark}`;
 * ```
 */
export interface TopicAppendResult {
  /** The offset the appended record got. */
  readonly offset: number;
  /** The topic's position right after the append, after retention was applied. */
  readonly position: TopicPosition;
}

/**
 * Where topic logs live. A topic springs into existence (empty, with a fresh epoch) the first time
 * any operation names it.
 *
 * @example
 * ```ts
 * import { MemoryTopicStore, TopicRegistry } from 'pollkit/server';
 * const topics = new TopicRegistry({ store: new MemoryTopicStore() });
 * ```
 */
export interface TopicStore {
  /** Appends one record, applying retention first, and returns its offset and the new position. */
  append(topic: string, entry: NewTopicRecord, retention: TopicRetention): Promise<TopicAppendResult>;
  /** Up to `limit` records from `offset`, after applying retention. */
  read(topic: string, offset: number, limit: number, retention: TopicRetention): Promise<TopicReadResult>;
  /** The current position, after applying retention. */
  position(topic: string, retention: TopicRetention): Promise<TopicPosition>;
  /** Empties the log and starts a new epoch at offset 0. */
  reset(topic: string): Promise<TopicPosition>;
  /**
   * Removes the topic's log and everything kept about it, announcing a change with `deleted: true`;
   * resolves to whether there was one. Naming the topic again later starts a new, empty log.
   */
  delete(topic: string): Promise<boolean>;
  /** Calls `listener` after every append, reset and deletion; returns a function that removes it. */
  onChange(listener: (change: TopicChange) => void): () => void;
  /** Releases connections; the in-memory store drops its listeners. */
  close(): Promise<void>;
}
