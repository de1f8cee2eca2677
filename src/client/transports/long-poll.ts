/**
 * Long polling of a topic as a subscriber transport: the universal fallback that works through any
 * proxy that passes plain HTTP requests. Each connection is one {@link LongPoller} over
 * {@link TopicClient.fetch}, told not to retry on its own (`maxRetries: 0`), so that the subscriber's
 * single reconnect policy governs every transport alike. The connection "opens" with the first answer
 * and the cursor is the last delivered record's offset, resumed from the offset after it.
 *
 * @module
 */
import { sleep } from '../../core/abort.js';
import { InvalidArgumentError, isPollkitError, OffsetGoneError, type PollkitError } from '../../core/errors.js';
import { parseTopicEventId, type TopicRecord } from '../../core/protocol.js';
import type { TopicClient } from '../http.js';
import { LongPoller } from '../long-poller.js';
import { TopicReader, type TopicReadPosition } from '../topic-reads.js';
import type { ConnectRequest, Transport, TransportClose, TransportConnection, TransportSink } from './transport.js';
import { describeFailure } from './transport.js';

/** Options for {@link LongPollTransport}. */
export interface LongPollTransportOptions {
  /** The client to fetch with (its `baseUrl`, `fetch`, headers). Required. */
  readonly client: TopicClient;
  /** The topic to follow. Required. */
  readonly topic: string;
  /** The offset to start from when there is no cursor yet. Default `0`. */
  readonly startOffset?: number;
  /** The server-side wait per request, in milliseconds. Default `25000`. */
  readonly waitMs?: number;
  /** The most records per request. Default: the server's. */
  readonly limit?: number;
  /**
   * The least time between the starts of two held requests when the first came back empty (a server
   * ignoring `wait` would otherwise be polled in a tight loop). Default `1000`.
   */
  readonly minIntervalMs?: number;
}

/**
 * The long-polling transport for topics.
 *
 * @example
 * ```ts
 * import { LongPollTransport, Subscriber, TopicClient } from 'pollkit/client';
 *
 * const client = new TopicClient({ baseUrl: 'https://api.example.com' });
 * const subscriber = new Subscriber({ transports: new LongPollTransport({ client, topic: 'orders' }) });
 * subscriber.on('message', ({ data }) => console.log(data.offset, data.value));
 * subscriber.start();
 * ```
 */
export class LongPollTransport<Value = unknown> implements Transport<TopicRecord<Value>> {
  readonly name = 'long-poll';
  readonly canSend = false;
  readonly #options: LongPollTransportOptions;

  constructor(options: LongPollTransportOptions) {
    if (options === null || typeof options !== 'object' || typeof options.client?.fetch !== 'function') {
      throw new InvalidArgumentError('LongPollTransport option "client" must be a TopicClient', 'client');
    }
    if (typeof options.topic !== 'string' || options.topic === '') {
      throw new InvalidArgumentError('LongPollTransport option "topic" must be a non-empty string', 'topic');
    }
    const start = options.startOffset ?? 0;
    if (!Number.isSafeInteger(start) || start < 0) {
      throw new InvalidArgumentError('LongPollTransport option "startOffset" must be a whole number', 'startOffset');
    }
    this.#options = options;
  }

  connect(request: ConnectRequest, sink: TransportSink<TopicRecord<Value>>): TransportConnection {
    const { client, topic, limit } = this.#options;
    const waitMs = this.#options.waitMs ?? 25_000;
    const minInterval = this.#options.minIntervalMs ?? 1000;
    const from = resumeOffset(request.cursor, this.#options.startOffset ?? 0);
    // A cursor from an SSE id carries the epoch: asking with it makes a reset log answer 410.
    const start: TopicReadPosition = {
      offset: from,
      epoch: request.cursor === undefined ? undefined : parseTopicEventId(request.cursor)?.epoch,
    };
    const clock = request.clock;
    let first = true;
    let heldEmptyAt: number | undefined;
    const reader = new TopicReader<Value>(client, topic, limit === undefined ? {} : { limit });
    const poller = new LongPoller<TopicRecord<Value>, TopicReadPosition>({
      cursor: start,
      waitMs,
      // The guard against servers that ignore `wait` lives in `poll` below, where it can tell the
      // connection-opening request (deliberately not held) from a held one that came back early.
      minIntervalMs: 0,
      maxRetries: 0,
      budget: false,
      signal: request.signal,
      clock,
      poll: async ({ cursor, waitMs: wait, signal }) => {
        if (heldEmptyAt !== undefined) {
          const since = clock.now() - heldEmptyAt;
          if (since < minInterval) await sleep(minInterval - since, { signal, clock });
        }
        // The first request is answered at once, so the connection "opens" in one round trip instead of
        // after a whole held wait on a quiet topic (which would also outlast the connect timeout).
        const held = !first;
        first = false;
        const started = clock.now();
        const { records, next } = await reader.read(cursor ?? start, held ? wait / 1000 : 0, signal);
        heldEmptyAt = held && records.length === 0 ? started : undefined;
        return { records, cursor: next };
      },
    });
    let open = false;
    poller.on('response', () => {
      sink.activity();
      if (!open) {
        open = true;
        sink.opened();
      }
    });
    poller.on('data', (records) => {
      for (const record of records) sink.message({ data: record, id: String(record.offset), event: undefined });
    });
    poller.on('end', (info) => {
      poller.removeAllListeners();
      if (info.reason === 'aborted' || info.reason === 'stopped') return;
      sink.closed(pollFailureToClose(info.error));
    });
    poller.start();
    return {
      heartbeats: false,
      close: () => {
        poller.removeAllListeners();
        poller.stop();
      },
    };
  }
}

/** The offset after the committed one, or the start offset without a cursor. */
function resumeOffset(cursor: string | undefined, start: number): number {
  const at = cursor === undefined ? undefined : parseTopicEventId(cursor);
  return at === undefined ? start : at.offset + 1;
}

/**
 * What a poller's failure means to the subscriber: a gone offset stops, 404/405/501 say "not here"
 * (fall back), other statuses retry or stop by their retryability, anything else retries.
 *
 * @internal
 */
export function pollFailureToClose(failure: unknown): TransportClose {
  // The poller wraps a retryable failure it was told not to retry; the original says what happened.
  const error =
    isPollkitError(failure, 'retries-exhausted') && (failure as PollkitError).cause !== undefined
      ? (failure as PollkitError).cause
      : failure;
  if (OffsetGoneError.is(error)) return { reason: 'offset-gone', error, stop: true };
  const status = (error as { status?: unknown } | undefined)?.status;
  const retryAfterMs = (error as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  const hint = typeof retryAfterMs === 'number' ? { retryAfterMs } : {};
  if (typeof status === 'number') {
    const reason = `http-${status}`;
    if (status === 404 || status === 405 || status === 501) return { reason, error, unavailable: true, ...hint };
    const retryable = isPollkitError(error) ? error.retryable : status >= 500;
    return retryable ? { reason, error, ...hint } : { reason, error, stop: true };
  }
  return { reason: describeFailure(error), error, ...hint };
}
