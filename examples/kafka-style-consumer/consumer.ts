/**
 * A Kafka-style consumer over HTTP: it long-polls the `orders` topic from an offset, handles each
 * record, and commits the next offset to a file after handling it. Killed at any moment, it resumes
 * from the last commit: every record is handled at least once, and only the record in flight at the
 * crash can be handled twice (make handling idempotent, or key it by offset, to absorb that).
 *
 * The committed position includes the log's epoch. If the log was reset, or the consumer fell so far
 * behind that its offset was trimmed, the server answers 410 and the consumer restarts from the
 * earliest retained offset — knowingly, with a warning — instead of silently reading a different log.
 *
 * `node --import tsx examples/kafka-style-consumer/consumer.ts <server url> <offset file> [output file] [delay ms]`
 *
 * @module
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { type TopicCursor, type TopicRecord, consumeTopic, sleep } from 'pollkit/client';
import { isMain } from '../shared/serve.js';
import { type Order, TOPIC } from './orders.js';

/** What the consumer writes to its offset file. */
export interface Commit {
  /** The next offset to read. */
  readonly offset: number;
  /** The epoch the offset belongs to; `undefined` before the first answer. */
  readonly epoch: string | undefined;
}

/** Options for {@link runConsumer}. */
export interface ConsumerOptions<Value> {
  /** The server's base URL. Required. */
  readonly baseUrl: string;
  /** The file the position is committed to. Required. */
  readonly offsetFile: string;
  /** Handles one record; the next offset is committed after it resolves. Required. */
  readonly handle: (record: TopicRecord<Value>) => void | Promise<void>;
  /** The topic to read. Default `'orders'`. */
  readonly topic?: string;
  /** Stops once the committed offset reaches this. Default: never (until `signal`). */
  readonly until?: number;
  /** Called when the committed position is gone (trimmed or reset) and the consumer skips ahead. */
  readonly onSkip?: (from: Commit, to: Commit) => void;
  /** Stops the consumer. */
  readonly signal?: AbortSignal;
}

/**
 * Reads the committed position, or `undefined` when nothing was committed yet.
 *
 * @example
 * ```ts
 * const start = readCommit('/tmp/orders.offset')?.offset ?? 0;
 * ```
 */
export function readCommit(file: string): Commit | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as { offset: number; epoch?: string };
    return { offset: parsed.offset, epoch: parsed.epoch };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Commits a position atomically: a crash leaves the old file or the new one, never half of one.
 *
 * @example
 * ```ts
 * await commit('/tmp/orders.offset', { offset: 42, epoch: 'k9f' });
 * ```
 */
export async function commit(file: string, position: Commit): Promise<void> {
  const temporary = `${file}.tmp`;
  await writeFile(temporary, JSON.stringify(position));
  await rename(temporary, file);
}

/**
 * Consumes the topic from the committed position (or 0), committing after each record.
 * Resolves with the last committed position when `until` is reached or `signal` aborts.
 *
 * @example
 * ```ts
 * await runConsumer({ baseUrl: 'http://127.0.0.1:3000/', offsetFile: '/tmp/orders.offset', handle: (r) => console.log(r.value) });
 * ```
 */
export async function runConsumer<Value = Order>(options: ConsumerOptions<Value>): Promise<Commit> {
  let position: Commit = readCommit(options.offsetFile) ?? { offset: 0, epoch: undefined };
  if (options.until !== undefined && position.offset >= options.until) return position;
  const url = new URL(`pollkit/topics/${encodeURIComponent(options.topic ?? TOPIC)}`, options.baseUrl);
  const consumer = consumeTopic<Value>(url, {
    offset: position.offset,
    ...(position.epoch === undefined ? {} : { epoch: position.epoch }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    onGone: (gone): TopicCursor => {
      const to = { offset: gone.earliestOffset, epoch: gone.epoch };
      options.onSkip?.(position, to);
      return to;
    },
  });
  try {
    for await (const record of consumer) {
      await options.handle(record);
      position = { offset: record.offset + 1, epoch: consumer.cursor?.epoch ?? position.epoch };
      await commit(options.offsetFile, position);
      if (options.until !== undefined && position.offset >= options.until) break;
    }
  } catch (error) {
    // Stopping on purpose is not a failure: the position committed so far is the answer.
    if (options.signal?.aborted !== true) throw error;
  } finally {
    consumer.stop();
  }
  return position;
}

if (isMain(import.meta.url)) {
  const [baseUrl, offsetFile, outputFile, delay] = process.argv.slice(2);
  if (baseUrl === undefined || offsetFile === undefined) {
    console.error('usage: consumer.ts <server url> <offset file> [output file] [delay ms]');
    process.exit(2);
  }
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  const from = readCommit(offsetFile);
  console.log(`consuming from offset ${from?.offset ?? 0}`);
  await runConsumer<Order>({
    baseUrl,
    offsetFile,
    signal: stop.signal,
    onSkip: (skipped, to) => console.warn(`offset ${skipped.offset} is gone; restarting at ${to.offset}`),
    handle: async (record) => {
      const line = JSON.stringify({ offset: record.offset, order: record.value });
      if (outputFile === undefined) console.log(line);
      else appendFileSync(outputFile, `${line}\n`);
      if (delay !== undefined) await sleep(Number(delay));
    },
  });
}
