/**
 * Reading a topic so that shared caches can serve it (docs/cdn.md): ranges without a wait while
 * behind, so every reader at an offset sends the same URL and full ranges stay cached for good; at
 * the head, long polls that carry the cursor the server handed out, so every reader at the head sends
 * the same URL and a cache collapses them into one request to the origin. A server that sends no
 * cursor (a private topic, a server from before cursors) is read as before: every read held.
 *
 * Answers are checked against what was asked, because a cache that ignores part of the query would
 * otherwise hand a reader records of another offset or epoch, or the same empty answer forever.
 *
 * @module
 */
import { ProtocolError } from '../core/errors.js';
import type { TopicFetchResult, TopicRecord } from '../core/protocol.js';
import type { TopicClient, TopicFetchOptions } from './http.js';

/** Where a reader stands: the next offset, its epoch, and the server's cursor once at the head. */
export interface TopicReadPosition {
  /** The offset of the next record to fetch. */
  readonly offset: number;
  /** The log's epoch as last seen; `undefined` before the first answer. */
  readonly epoch: string | undefined;
  /** The cursor to long-poll the head with; `undefined` while behind (or before the first answer). */
  readonly cursor?: string;
}

/** Records read, and where to read next. */
export interface TopicReadStep<Value> {
  readonly records: readonly TopicRecord<Value>[];
  readonly next: TopicReadPosition;
}

/** One topic read by one reader; keeps whether the server speaks cursors. */
export class TopicReader<Value = unknown> {
  readonly #client: TopicClient;
  readonly #topic: string;
  readonly #limit: number | undefined;
  readonly #minRecords: number | undefined;
  /** The last answer had no cursor: read as before cursors, every read held. */
  #legacy = false;

  constructor(client: TopicClient, topic: string, options: { limit?: number; minRecords?: number } = {}) {
    this.#client = client;
    this.#topic = topic;
    this.#limit = options.limit;
    this.#minRecords = options.minRecords;
  }

  /**
   * Reads from `from`: a range while behind, a long poll of up to `waitSeconds` at the head. A range
   * that comes back empty means the head was reached, and the long poll follows at once.
   */
  async read(from: TopicReadPosition, waitSeconds: number, signal: AbortSignal): Promise<TopicReadStep<Value>> {
    const live = this.#legacy || from.cursor !== undefined;
    let answer = await this.#fetch(from, live ? waitSeconds : undefined, signal);
    let next = this.#advance(answer);
    if (!live && answer.records.length === 0 && waitSeconds > 0) {
      answer = await this.#fetch(next, waitSeconds, signal);
      next = this.#advance(answer);
    }
    return { records: answer.records, next };
  }

  #fetch(from: TopicReadPosition, waitSeconds: number | undefined, signal: AbortSignal) {
    const limit = this.#limit;
    const minRecords = this.#minRecords;
    const cursor = this.#legacy ? undefined : from.cursor;
    return this.#client.fetch<Value>(this.#topic, {
      offset: from.offset,
      ...(limit === undefined ? {} : { limit }),
      // A range read leaves out what only a held read uses, so every reader at an offset sends one URL.
      ...(waitSeconds === undefined ? {} : { waitSeconds, ...(minRecords === undefined ? {} : { minRecords }) }),
      ...(from.epoch === undefined ? {} : { epoch: from.epoch }),
      ...(waitSeconds === undefined || cursor === undefined ? {} : { cursor }),
      signal,
    });
  }

  #advance(answer: TopicFetchResult<Value>): TopicReadPosition {
    const { nextOffset: offset, epoch, cursor } = answer;
    this.#legacy = cursor === undefined;
    // Behind the head the next read is a range again, whose URL carries no cursor.
    return cursor === undefined || offset < answer.highWatermark ? { offset, epoch } : { offset, epoch, cursor };
  }
}

/**
 * Checks a fetch answer against its request: records from another offset or epoch, or an empty live
 * answer whose cursor did not move forward, can only come from a cache that ignored part of the query.
 * Throws a retryable {@link ProtocolError}, so the reader backs off instead of skipping records or
 * looping on a stale answer.
 *
 * @example
 * ```ts
 * checkFetchAnswer('orders', { offset: 5, epoch: 'e1' }, answer);
 * ```
 */
export function checkFetchAnswer(topic: string, sent: TopicFetchOptions, answer: TopicFetchResult): void {
  const stale = (what: string): ProtocolError =>
    new ProtocolError(`fetch topic "${topic}": a cached answer for another request (${what}); check the cache key`, {
      retryable: true,
    });
  if (sent.epoch !== undefined && answer.epoch !== sent.epoch) throw stale(`epoch ${answer.epoch}`);
  const first = answer.records[0];
  if (first !== undefined && first.offset !== sent.offset) throw stale(`offset ${first.offset}`);
  if (
    sent.cursor !== undefined &&
    first === undefined &&
    answer.cursor !== undefined &&
    !(Number(answer.cursor) > Number(sent.cursor))
  ) {
    throw stale(`cursor ${answer.cursor}`);
  }
}
