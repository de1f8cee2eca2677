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
import { HttpError, InvalidArgumentError, OffsetGoneError, ProtocolError } from '../../core/errors.js';
import { HEADERS, MEDIA_TYPES, parseTopicEventId } from '../../core/protocol.js';
import { parseRetryAfter } from '../../core/retry-after.js';
import { sseParser } from './sse-parser.js';
import type { ConnectRequest, Transport, TransportConnection, TransportSink } from './transport.js';
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
 * Statuses that mean "this endpoint does not speak SSE here" rather than "the server is unwell", so the
 * subscriber may fall back to another transport.
 */
const UNAVAILABLE_STATUSES = /* @__PURE__ */ new Set([404, 405, 406, 501]);

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
  readonly #events: ReadonlySet<string> | undefined;

  constructor(options: SseTransportOptions<T>) {
    if (options === null || typeof options !== 'object' || options.url === undefined) {
      throw new InvalidArgumentError('SseTransport option "url" is required', 'url');
    }
    const method = options.method ?? 'GET';
    if (method !== 'GET' && method !== 'POST') {
      throw new InvalidArgumentError(
        `SseTransport option "method" must be GET or POST, got ${String(method)}`,
        'method',
      );
    }
    this.#options = options;
    this.#events = options.events === undefined ? undefined : new Set(options.events);
  }

  connect(request: ConnectRequest, sink: TransportSink<T>): TransportConnection {
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    request.signal.addEventListener('abort', onAbort, { once: true });
    let done = false;
    const finish = (close: Parameters<TransportSink<T>['closed']>[0]): void => {
      if (done) return;
      done = true;
      request.signal.removeEventListener('abort', onAbort);
      controller.abort();
      sink.closed(close);
    };
    void this.#run(request, sink, controller.signal).then(finish, (error: unknown) =>
      finish({ reason: describeFailure(error), error }),
    );
    return {
      heartbeats: true,
      close: () => {
        done = true;
        request.signal.removeEventListener('abort', onAbort);
        controller.abort();
      },
    };
  }

  async #run(
    request: ConnectRequest,
    sink: TransportSink<T>,
    signal: AbortSignal,
  ): Promise<Parameters<TransportSink<T>['closed']>[0]> {
    const options = this.#options;
    const fetchImpl = options.fetch ?? (globalThis.fetch as SseFetch | undefined);
    if (typeof fetchImpl !== 'function' || typeof TextDecoder !== 'function') {
      return { reason: 'unsupported', unavailable: true };
    }
    const url = typeof options.url === 'function' ? options.url(request.cursor) : options.url;
    const headers: Record<string, string> = {
      accept: MEDIA_TYPES.eventStream,
      'cache-control': 'no-store',
      ...(typeof options.headers === 'function' ? options.headers() : options.headers),
    };
    if (request.cursor !== undefined && options.lastEventIdHeader !== false) {
      headers[HEADERS.lastEventId] = request.cursor;
    }
    const body = typeof options.body === 'function' ? options.body() : options.body;
    const response = await fetchImpl(String(url), {
      ...options.init,
      method: options.method ?? 'GET',
      headers,
      ...(body === undefined ? {} : { body }),
      signal,
    });
    sink.activity();
    if (response.status === 204) {
      await discard(response);
      // [WHATWG] 204 tells the client to stop reconnecting: a finished job's stream, say.
      return { reason: 'http-204', stop: true };
    }
    if (response.status === 410) {
      // The resume point was trimmed or the log reset: restarting silently elsewhere would skip records.
      return { reason: 'offset-gone', stop: true, error: await goneError(response, request.cursor) };
    }
    if (response.status !== 200) {
      const retryAfterMs = parseRetryAfter(response.headers.get(HEADERS.retryAfter), request.clock.wallNow());
      await discard(response);
      const error = new HttpError(response.status, retryAfterMs === undefined ? {} : { retryAfterMs });
      return {
        reason: `http-${response.status}`,
        error,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
        // 4xx other than 408/429 will not change by asking again; 5xx, 408 and 429 may.
        ...(error.retryable ? {} : { stop: !UNAVAILABLE_STATUSES.has(response.status) }),
        ...(UNAVAILABLE_STATUSES.has(response.status) ? { unavailable: true } : {}),
      };
    }
    const type = response.headers.get(HEADERS.contentType) ?? '';
    if (!type.toLowerCase().startsWith(MEDIA_TYPES.eventStream) || response.body === null) {
      await discard(response);
      return {
        reason: 'not-event-stream',
        error: new ProtocolError(`expected ${MEDIA_TYPES.eventStream}, got "${type}"`),
        unavailable: true,
      };
    }
    sink.opened();
    const events = this.#events;
    const decode = options.decode;
    let decodeError: unknown;
    let reset: Error | undefined;
    const feed = sseParser({
      event: (event) => {
        if (decodeError !== undefined || reset !== undefined) return;
        if (event.event === 'reset') {
          // pollkit's server: the log was reset or trimmed past our cursor while we were away.
          reset = resetError(event.data, request.cursor);
          return;
        }
        if (events !== undefined && !events.has(event.event ?? 'message')) return;
        let data: T;
        try {
          data = decode === undefined ? (event.data as T) : decode(event.data, event.event);
        } catch (error) {
          decodeError = error;
          return;
        }
        sink.message({ data, id: event.id, event: event.event });
      },
      retry: (ms) => sink.retryHint(ms),
      comment: () => sink.activity(),
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        sink.activity();
        feed(decoder.decode(value, { stream: true }));
        if (decodeError !== undefined) {
          return { reason: 'decode', error: new ProtocolError('could not decode an event', { cause: decodeError }) };
        }
        // Stop rather than read on from the new start: the caller restarts knowingly (see OffsetGoneError).
        if (reset !== undefined) return { reason: 'offset-gone', stop: true, error: reset };
      }
    } finally {
      reader.releaseLock();
    }
    // A partial event left in the parser at end of stream is discarded, as the spec requires.
    return { reason: 'eof' };
  }
}

async function goneError(response: Response, cursor: string | undefined): Promise<Error> {
  let problem: Record<string, unknown> = {};
  try {
    problem = (await response.json()) as Record<string, unknown>;
  } catch {
    // A 410 without a readable problem still means "gone"; the position is just unknown.
  }
  return offsetGone(problem, cursor) ?? new HttpError(410);
}

function resetError(data: string, cursor: string | undefined): Error {
  let problem: Record<string, unknown> = {};
  try {
    problem = JSON.parse(data) as Record<string, unknown>;
  } catch {
    // Unreadable details still mean the place is gone.
  }
  return offsetGone(problem, cursor) ?? new ProtocolError('the server reset the stream without saying where to resume');
}

function offsetGone(problem: Record<string, unknown>, cursor: string | undefined): Error | undefined {
  const { earliestOffset, epoch } = problem;
  const at = cursor === undefined ? undefined : parseTopicEventId(cursor);
  const offset = at === undefined ? Number.NaN : at.offset + 1;
  if (typeof earliestOffset === 'number' && typeof epoch === 'string') {
    return new OffsetGoneError('', offset, { earliestOffset, epoch }, { cause: new HttpError(410) });
  }
  return undefined;
}

async function discard(response: Response): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // The body is unwanted; a failure to cancel it changes nothing.
  }
}
