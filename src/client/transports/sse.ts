/**
 * Server-sent events over `fetch`, for what the browser's `EventSource` cannot do: custom headers
 * (authorization), POST bodies, an injected `fetch`, and a reconnect policy of our own instead of the
 * browser's fixed delay. Parsing follows the WHATWG rules (CR/LF/CRLF line ends, multi-line data,
 * comments, `retry:`): see ./sse-parser.ts.
 *
 * The resume cursor travels as `Last-Event-ID`; this transport only reports complete events, so an id
 * whose event was cut off never reaches the subscriber and is never committed.
 *
 * @module
 */
import { CONTENT_TYPE, EVENT_STREAM, LAST_EVENT_ID, RETRY_AFTER } from '../../core/wire.js';
import { onAbort } from '../../core/abort.js';
import { invalidOption } from '../../core/checks.js';
import { HttpError, OffsetGoneError, ProtocolError } from '../../core/errors.js';
import { parseTopicEventId } from '../../core/protocol.js';
import { parseRetryAfter } from '../../core/retry-after.js';
import { sseParser } from './sse-parser.js';
import type { ConnectRequest, Transport, TransportClose, TransportConnection, TransportSink } from './transport.js';
import { describeFailure } from './transport.js';

/** The fetch signature the transport needs (the global `fetch` fits). */
export type SseFetch = (input: string, init: RequestInit) => Promise<Response>;

/** Options for {@link SseTransport}. */
export interface SseTransportOptions<T> {
  /** The stream's URL, or a function of the cursor that builds it. Required. */
  readonly url: string | URL | ((cursor: string | undefined) => string | URL);
  /** The HTTP method. Default `"GET"`. */
  readonly method?: 'GET' | 'POST';
  /** Extra request headers, or a function returning them per connection (fresh tokens). Default none. */
  readonly headers?: Record<string, string> | (() => Record<string, string>);
  /** A body for POST streams. Default none. */
  readonly body?: string | (() => string);
  /** Send the cursor as `Last-Event-ID`. Default `true`. */
  readonly lastEventIdHeader?: boolean;
  /** Turns an event's `data` into the message payload. Default: the string itself. */
  readonly decode?: (data: string, event: string | undefined) => T;
  /** Which `event:` names to deliver; others count as activity only. Default: all. */
  readonly events?: readonly string[];
  /** `fetch` to use. Default `globalThis.fetch`, looked up at connect time. */
  readonly fetch?: SseFetch;
  /** Extra `fetch` init fields (`credentials`, `mode`, …). Default none. */
  readonly init?: Omit<RequestInit, 'method' | 'headers' | 'body' | 'signal'>;
}

/**
 * The SSE-over-fetch transport.
 *
 * @example
 * ```ts
 * import { Subscriber, SseTransport } from 'pollkit/client';
 *
 * const sse = new SseTransport<{ offset: number }>({
 *   url: 'https://api.example.com/pollkit/topics/orders/events',
 *   headers: () => ({ authorization: `Bearer ${token()}` }),
 *   decode: (data) => JSON.parse(data),
 * });
 * new Subscriber({ transports: sse }).start();
 * declare function token(): string;
 * ```
 */
export class SseTransport<T = string> implements Transport<T> {
  readonly name = 'sse';
  readonly canSend = false;
  readonly #options: SseTransportOptions<T>;
  readonly #events: readonly string[] | undefined;

  constructor(options: SseTransportOptions<T>) {
    if (options?.url === undefined) invalidOption(OWNER, 'url', 'given', undefined);
    const method = options.method ?? 'GET';
    if (method !== 'GET' && method !== 'POST') invalidOption(OWNER, 'method', 'GET or POST', method);
    this.#options = options;
    this.#events = options.events;
  }

  connect(request: ConnectRequest, sink: TransportSink<T>): TransportConnection {
    // Aborted by the subscriber (through the request's signal), by close(), or once the stream is over.
    const controller = new AbortController();
    const removeAbort = onAbort(request.signal, () => controller.abort());
    let done = false;
    const finish = (close?: TransportClose): void => {
      if (done) return;
      done = true;
      removeAbort();
      controller.abort();
      if (close) sink.closed(close);
    };
    this.#run(request, sink, controller.signal).then(finish, (error: unknown) =>
      finish({ reason: describeFailure(error), error }),
    );
    return { heartbeats: true, close: () => finish() };
  }

  async #run(request: ConnectRequest, sink: TransportSink<T>, signal: AbortSignal): Promise<TransportClose> {
    const options = this.#options;
    const { cursor } = request;
    const fetchImpl = options.fetch ?? (globalThis.fetch as SseFetch | undefined);
    if (typeof fetchImpl !== 'function' || typeof TextDecoder !== 'function') {
      return { reason: 'unsupported', unavailable: true };
    }
    const { url, body, headers } = options;
    const sent: Record<string, string> = {
      accept: EVENT_STREAM,
      'cache-control': 'no-store',
      ...(typeof headers === 'function' ? headers() : headers),
    };
    if (cursor !== undefined && options.lastEventIdHeader !== false) sent[LAST_EVENT_ID] = cursor;
    const init: RequestInit = { ...options.init, method: options.method ?? 'GET', headers: sent, signal };
    const text = typeof body === 'function' ? body() : body;
    if (text !== undefined) init.body = text;
    const response = await fetchImpl(String(typeof url === 'function' ? url(cursor) : url), init);
    sink.activity();
    const { status } = response;
    const type = response.headers.get(CONTENT_TYPE) ?? '';
    if (status === 410) {
      // The resume point was trimmed or the log reset: restarting silently elsewhere would skip records.
      const problem = await response.text().catch(() => '');
      return { reason: 'offset-gone', stop: true, error: offsetGone(problem, cursor) ?? new HttpError(410) };
    }
    const stream = response.body;
    if (status !== 200 || !type.toLowerCase().startsWith(EVENT_STREAM) || stream === null) {
      // The body is unwanted; a failure to cancel it changes nothing.
      await stream?.cancel().catch(() => {});
      // [WHATWG] 204 tells the client to stop reconnecting: a finished job's stream, say.
      if (status === 204) return { reason: 'http-204', stop: true };
      // These say "this endpoint does not speak SSE here" rather than "the server is unwell", so the
      // subscriber may fall back to another transport.
      const unavailable = [404, 405, 406, 501].includes(status);
      if (status === 200) {
        return {
          reason: 'not-event-stream',
          error: new ProtocolError(`expected ${EVENT_STREAM}, got "${type}"`),
          unavailable: true,
        };
      }
      const retryAfterMs = parseRetryAfter(response.headers.get(RETRY_AFTER), request.clock.wallNow());
      const error = new HttpError(status, retryAfterMs === undefined ? {} : { retryAfterMs });
      return {
        reason: `http-${status}`,
        error,
        ...(retryAfterMs !== undefined && { retryAfterMs }),
        // 4xx other than 408/429 will not change by asking again; 5xx, 408 and 429 may.
        ...(!error.retryable && { stop: !unavailable }),
        ...(unavailable && { unavailable }),
      };
    }
    sink.opened();
    const events = this.#events;
    const decode = options.decode;
    let failure: TransportClose | undefined;
    const feed = sseParser({
      event: ({ data, event, id }) => {
        if (failure) return;
        if (event === 'reset') {
          // pollkit's server: the log was reset or trimmed past our cursor while we were away.
          // Stop rather than read on from the new start: the caller restarts knowingly (see OffsetGoneError).
          const error = offsetGone(data, cursor) ?? new ProtocolError('reset without a resume offset');
          failure = { reason: 'offset-gone', stop: true, error };
        } else if (!events || events.includes(event ?? 'message')) {
          let message: T;
          try {
            message = decode ? decode(data, event) : (data as T);
          } catch (cause) {
            failure = { reason: 'decode', error: new ProtocolError('could not decode an event', { cause }) };
            return;
          }
          sink.message({ data: message, id, event });
        }
      },
      retry: (ms) => sink.retryHint(ms),
      comment: () => sink.activity(),
    });
    const reader = stream.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        // A partial event left in the parser at end of stream is discarded, as the spec requires.
        if (done) return { reason: 'eof' };
        sink.activity();
        feed(decoder.decode(value, { stream: true }));
        if (failure) return failure;
      }
    } finally {
      reader.releaseLock();
    }
  }
}

const OWNER = 'SseTransport';

/** The position a `410` body or a `reset` event names, as an {@link OffsetGoneError}, if it names one. */
function offsetGone(json: string, cursor: string | undefined): Error | undefined {
  let problem: { earliestOffset?: unknown; epoch?: unknown } | undefined;
  try {
    problem = JSON.parse(json) as typeof problem;
  } catch {
    // Unreadable details still mean the place is gone; the position is just unknown.
  }
  const earliestOffset = problem?.earliestOffset;
  const epoch = problem?.epoch;
  if (typeof earliestOffset !== 'number' || typeof epoch !== 'string') return undefined;
  const at = cursor === undefined ? undefined : parseTopicEventId(cursor);
  return new OffsetGoneError(
    '',
    at === undefined ? Number.NaN : at.offset + 1,
    { earliestOffset, epoch },
    {
      cause: new HttpError(410),
    },
  );
}
