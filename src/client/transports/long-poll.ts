/**
 * Long polling of a topic as a subscriber transport: the universal fallback that works through any
 * proxy that passes plain HTTP requests. Each connection is a loop of reads over
 * {@link TopicClient.fetch} that ends at its first failure, so that the subscriber's single reconnect
 * policy governs every transport alike (a {@link LongPoller} would bring retries, a budget and iterators
 * the subscriber already has). The connection "opens" with the first answer and the cursor is the last
 * delivered record's offset, resumed from the offset after it.
 *
 * @module
 */
import { onAbort, sleep } from '../../core/abort.js';
import { checkNumber, invalidOption } from '../../core/checks.js';
import { isPollkitError, OffsetGoneError, type PollkitError } from '../../core/errors.js';
import { parseTopicEventId, type TopicRecord } from '../../core/protocol.js';
import type { TopicClient } from '../http.js';
import { withDeadline } from '../poller-support.js';
import { TopicReader, type TopicReadPosition } from '../topic-reads.js';
import type { ConnectRequest, Transport, TransportClose, TransportConnection, TransportSink } from './transport.js';
import { describeFailure } from './transport.js';

const OWNER = 'LongPollTransport';

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
    if (typeof options?.client?.fetch !== 'function') invalidOption(OWNER, 'client', 'a TopicClient', options?.client);
    if (typeof options.topic !== 'string' || options.topic === '') {
      invalidOption(OWNER, 'topic', 'a non-empty string', options.topic);
    }
    checkNumber(OWNER, 'startOffset', options.startOffset, 0, 'integer');
    this.#options = options;
  }

  connect(request: ConnectRequest, sink: TransportSink<TopicRecord<Value>>): TransportConnection {
    const { client, topic, limit, waitMs = 25_000, minIntervalMs = 1000 } = this.#options;
    const { cursor, clock } = request;
    // Aborted by the subscriber (through the request's signal) or by close(): either ends the loop quietly.
    const controller = new AbortController();
    const { signal } = controller;
    const removeAbort = onAbort(request.signal, () => controller.abort());
    const reader = new TopicReader<Value>(client, topic, limit === undefined ? {} : { limit });
    // A cursor from an SSE id carries the epoch: asking with it makes a reset log answer 410.
    const at = cursor === undefined ? undefined : parseTopicEventId(cursor);
    let from: TopicReadPosition = {
      offset: at === undefined ? (this.#options.startOffset ?? 0) : at.offset + 1,
      epoch: at?.epoch,
    };
    const run = async (): Promise<never> => {
      // The first request is answered at once, so the connection "opens" in one round trip instead of
      // after a whole held wait on a quiet topic (which would also outlast the connect timeout).
      let held = false;
      let heldEmptyAt: number | undefined;
      for (;;) {
        // A held read that came back empty early means a server ignoring `wait`: keep minIntervalMs.
        const since = heldEmptyAt === undefined ? minIntervalMs : clock.now() - heldEmptyAt;
        if (since < minIntervalMs) await sleep(minIntervalMs - since, { signal, clock });
        const started = clock.now();
        // The client's deadline exceeds the server's wait, so a held read is never abandoned just before its answer.
        const { records, next } = await withDeadline(clock, waitMs + 10_000, signal, (readSignal) =>
          reader.read(from, held ? waitMs / 1000 : 0, readSignal),
        );
        sink.activity();
        if (!held) sink.opened();
        from = next;
        for (const record of records) sink.message({ data: record, id: String(record.offset), event: undefined });
        heldEmptyAt = held && records.length === 0 ? started : undefined;
        held = true;
      }
    };
    run()
      .catch((error: unknown) => {
        if (!signal.aborted) sink.closed(pollFailureToClose(error));
      })
      .finally(removeAbort);
    return { heartbeats: false, close: () => controller.abort() };
  }
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
