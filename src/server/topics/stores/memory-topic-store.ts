/**
 * The default {@link TopicStore}: each topic's log is an array with a moving head, so appends are
 * O(1), retention drops records from the head without copying on every trim, and reads slice by
 * offset arithmetic.
 *
 * @module
 */
import { randomToken } from '../../ids.js';
import type {
  NewTopicRecord,
  StoredRecord,
  TopicAppendResult,
  TopicChange,
  TopicPosition,
  TopicReadResult,
  TopicRetention,
  TopicStore,
} from './topic-store.js';
import { ChangeListeners } from '../../change-listeners.js';

/**
 * Options for {@link MemoryTopicStore}.
 *
 * @example
 * ```ts
 * import type { MemoryTopicStoreOptions } from 'pollkit/server';
 * let n = 0;
 * const options: MemoryTopicStoreOptions = { generateEpoch: () => `epoch-${++n}` };
 * ```
 */
export interface MemoryTopicStoreOptions {
  /** Makes a new epoch string for each new or reset log. Default: 16 random base64url characters. */
  readonly generateEpoch?: () => string;
}

// A trimmed head is compacted away only once it is large and most of the array, so trimming stays amortized O(1).
const COMPACT_MIN_HEAD = 1024;

class Log {
  epoch: string;
  records: StoredRecord[] = [];
  head = 0;
  earliestOffset = 0;
  highWatermark = 0;

  constructor(epoch: string) {
    this.epoch = epoch;
  }

  position(): TopicPosition {
    return { epoch: this.epoch, earliestOffset: this.earliestOffset, highWatermark: this.highWatermark };
  }

  trim(retention: TopicRetention): void {
    const { maxRecords, minTimestampMs } = retention;
    while (this.head < this.records.length) {
      const count = this.records.length - this.head;
      const oldest = this.records[this.head]!;
      const tooMany = maxRecords !== undefined && count > maxRecords;
      const tooOld = minTimestampMs !== undefined && oldest.timestampMs < minTimestampMs;
      if (!tooMany && !tooOld) break;
      this.head++;
      this.earliestOffset++;
    }
    if (this.head >= COMPACT_MIN_HEAD && this.head * 2 >= this.records.length) {
      this.records = this.records.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * A {@link TopicStore} in process memory.
 *
 * @example
 * ```ts
 * import { MemoryTopicStore, TopicRegistry } from 'pollkit/server';
 * let n = 0;
 * const store = new MemoryTopicStore({ generateEpoch: () => `epoch-${n++}` });
 * const topics = new TopicRegistry({ store });
 * ```
 */
export class MemoryTopicStore implements TopicStore {
  readonly #logs = new Map<string, Log>();
  readonly #listeners = new ChangeListeners<TopicChange>();
  readonly #generateEpoch: () => string;

  constructor(options: MemoryTopicStoreOptions = {}) {
    this.#generateEpoch = options.generateEpoch ?? (() => randomToken());
  }

  async append(topic: string, entry: NewTopicRecord, retention: TopicRetention): Promise<TopicAppendResult> {
    const log = this.#log(topic);
    const offset = log.highWatermark++;
    const record = Object.freeze({
      offset,
      timestamp: new Date(entry.timestampMs).toISOString(),
      key: entry.key,
      value: entry.value,
    });
    const stored = { record, timestampMs: entry.timestampMs };
    log.records.push(stored);
    log.trim(retention);
    const position = log.position();
    this.#listeners.emit({ topic, position, records: [stored] });
    return { offset, position };
  }

  async read(topic: string, offset: number, limit: number, retention: TopicRetention): Promise<TopicReadResult> {
    const log = this.#log(topic);
    log.trim(retention);
    const position = log.position();
    if (offset < log.earliestOffset || offset >= log.highWatermark) return { records: [], position };
    const start = log.head + (offset - log.earliestOffset);
    return { records: log.records.slice(start, start + limit), position };
  }

  async position(topic: string, retention: TopicRetention): Promise<TopicPosition> {
    const log = this.#log(topic);
    log.trim(retention);
    return log.position();
  }

  async reset(topic: string): Promise<TopicPosition> {
    const log = this.#log(topic);
    log.epoch = this.#generateEpoch();
    log.records = [];
    log.head = 0;
    log.earliestOffset = 0;
    log.highWatermark = 0;
    const position = log.position();
    this.#listeners.emit({ topic, position });
    return position;
  }

  async delete(topic: string): Promise<boolean> {
    if (!this.#logs.delete(topic)) return false;
    const position: TopicPosition = { epoch: this.#generateEpoch(), earliestOffset: 0, highWatermark: 0 };
    this.#listeners.emit({ topic, position, deleted: true });
    return true;
  }

  onChange(listener: (change: TopicChange) => void): () => void {
    return this.#listeners.add(listener);
  }

  async close(): Promise<void> {
    this.#listeners.clear();
  }

  #log(topic: string): Log {
    let log = this.#logs.get(topic);
    if (log === undefined) this.#logs.set(topic, (log = new Log(this.#generateEpoch())));
    return log;
  }
}
