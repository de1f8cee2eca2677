/**
 * A topic store that keeps every room's log in one JSON file, so chat history — and, as important,
 * each log's epoch and offsets — survive a server restart. Clients resume from the offset they hold;
 * because the epoch is the same after the restart, the server can tell them the log is the same log,
 * and they neither miss nor repeat a message.
 *
 * One file rewritten whole on each append is fine for an example and a small room; a real deployment
 * would use the Redis store (`pollkit/redis`) or a database.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import type {
  NewTopicRecord,
  StoredRecord,
  TopicAppendResult,
  TopicChange,
  TopicPosition,
  TopicReadResult,
  TopicRetention,
  TopicStore,
} from 'pollkit/server';

interface Log {
  epoch: string;
  earliestOffset: number;
  records: StoredRecord[];
}

/**
 * A {@link TopicStore} persisted to a JSON file, written atomically (temporary file, then rename)
 * after every change and read back at construction.
 *
 * @example
 * ```ts
 * const topics = new TopicRegistry({ store: new JsonFileTopicStore('/tmp/chat.json') });
 * ```
 */
export class JsonFileTopicStore implements TopicStore {
  readonly #path: string;
  readonly #logs: Map<string, Log>;
  readonly #listeners = new Set<(change: TopicChange) => void>();
  #writing: Promise<void> = Promise.resolve();

  constructor(path: string) {
    this.#path = path;
    this.#logs = new Map(Object.entries(load(path)));
  }

  async append(topic: string, entry: NewTopicRecord, retention: TopicRetention): Promise<TopicAppendResult> {
    const log = this.#log(topic);
    const offset = highWatermark(log);
    const record = { offset, timestamp: new Date(entry.timestampMs).toISOString(), key: entry.key, value: entry.value };
    log.records.push({ record, timestampMs: entry.timestampMs });
    trim(log, retention);
    // The record is acknowledged only once it is on disk: an offset the client saw must survive a crash.
    await this.#save();
    const position = positionOf(log);
    for (const listener of this.#listeners) listener({ topic, position });
    return { offset, position };
  }

  async read(topic: string, offset: number, limit: number, retention: TopicRetention): Promise<TopicReadResult> {
    const log = this.#log(topic);
    trim(log, retention);
    const start = offset - log.earliestOffset;
    const records = start < 0 ? [] : log.records.slice(start, start + limit);
    return { records, position: positionOf(log) };
  }

  async position(topic: string, retention: TopicRetention): Promise<TopicPosition> {
    const log = this.#log(topic);
    trim(log, retention);
    return positionOf(log);
  }

  async reset(topic: string): Promise<TopicPosition> {
    const log = { epoch: randomUUID(), earliestOffset: 0, records: [] };
    this.#logs.set(topic, log);
    await this.#save();
    const position = positionOf(log);
    for (const listener of this.#listeners) listener({ topic, position });
    return position;
  }

  async delete(topic: string): Promise<boolean> {
    if (!this.#logs.delete(topic)) return false;
    await this.#save();
    const position = { epoch: randomUUID(), earliestOffset: 0, highWatermark: 0 };
    for (const listener of this.#listeners) listener({ topic, position, deleted: true });
    return true;
  }

  onChange(listener: (change: TopicChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    await this.#writing;
    this.#listeners.clear();
  }

  #log(topic: string): Log {
    let log = this.#logs.get(topic);
    if (log === undefined) this.#logs.set(topic, (log = { epoch: randomUUID(), earliestOffset: 0, records: [] }));
    return log;
  }

  /** Writes one snapshot after the previous write, so the file never goes back in time. */
  #save(): Promise<void> {
    const text = JSON.stringify(Object.fromEntries(this.#logs));
    const temporary = `${this.#path}.${process.pid}.tmp`;
    // A failed write is reported to its own caller; the next one still runs.
    this.#writing = this.#writing
      .catch(() => undefined)
      .then(async () => {
        await writeFile(temporary, text);
        await rename(temporary, this.#path);
      });
    return this.#writing;
  }
}

function load(path: string): Record<string, Log> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, Log>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
}

function highWatermark(log: Log): number {
  return log.earliestOffset + log.records.length;
}

function positionOf(log: Log): TopicPosition {
  return { epoch: log.epoch, earliestOffset: log.earliestOffset, highWatermark: highWatermark(log) };
}

function trim(log: Log, retention: TopicRetention): void {
  let drop = 0;
  while (drop < log.records.length) {
    const oldest = log.records[drop]!;
    const tooMany = retention.maxRecords !== undefined && log.records.length - drop > retention.maxRecords;
    const tooOld = retention.minTimestampMs !== undefined && oldest.timestampMs < retention.minTimestampMs;
    if (!tooMany && !tooOld) break;
    drop++;
  }
  if (drop > 0) {
    log.records.splice(0, drop);
    log.earliestOffset += drop;
  }
}
