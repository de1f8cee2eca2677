/**
 * The WebSocket transport: the browser's `WebSocket` or any constructor with its shape (such as `ws`
 * on Node 20, which has no global one). The constructor is looked up when connecting, never at import,
 * so a polyfill installed later still counts and a missing one is reported as "unavailable" (letting
 * the subscriber fall back) instead of throwing at load time.
 *
 * Close codes carry the server's wishes: 1008 (policy violation) and 4410 (offset gone) mean "do not
 * come back" (as is), while 1001, 1013 (try again later) and the application range 4000–4999 may carry
 * a delay in the close reason (pollkit's JSON `retryAfterMs`, `"retry-after=5"` or a bare number of
 * seconds), which the subscriber honours as a floor.
 *
 * @module
 */
import { InvalidArgumentError, OffsetGoneError, PollkitError } from '../../core/errors.js';
import type { ConnectRequest, Transport, TransportClose, TransportConnection, TransportSink } from './transport.js';

/** The part of a WebSocket instance the transport uses (browser `WebSocket` and `ws` both fit). */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** Bytes queued by `send` and not yet written to the network. */
  readonly bufferedAmount: number;
  /** Set to `"arraybuffer"` so binary frames can be decoded as UTF-8 text. */
  binaryType: string;
  /** Queues a text frame. */
  send(data: string): void;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
  /** Adds a listener for `open`, `message`, `error` or `close`. */
  addEventListener(type: string, listener: (event: WebSocketEventLike) => void): void;
  /** Removes a listener added with `addEventListener`. */
  removeEventListener(type: string, listener: (event: WebSocketEventLike) => void): void;
}

/**
 * What the transport reads from a socket event. `any` on purpose: every socket class types its
 * listener by event name (the DOM's and the `ws` package's alike), and only a bivariant parameter lets
 * both be accepted as they are, without a cast.
 *
 * @example
 * ```ts
 * import type { WebSocketEventLike } from 'pollkit/client';
 * const onClose = (event: WebSocketEventLike): void => console.log(event.code);
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export type WebSocketEventLike = any;

/**
 * A WebSocket class: the browser's, undici's (Node 22+), or the `ws` package's.
 *
 * @example
 * ```ts
 * import { WebSocket } from 'ws';
 * import type { WebSocketConstructor } from 'pollkit/client';
 * const Socket: WebSocketConstructor = WebSocket;
 * ```
 */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Options for {@link WebSocketTransport}. */
export interface WebSocketTransportOptions<T> {
  /** The socket's URL, or a function of the cursor that builds it (to resume with `?offset=`). Required. */
  readonly url: string | URL | ((cursor: string | undefined) => string | URL);
  /** Sub-protocols to offer. Default none. */
  readonly protocols?: string | string[];
  /** The constructor to use. Default `globalThis.WebSocket`, looked up at connect time. */
  readonly WebSocket?: WebSocketConstructor;
  /** Turns a text frame into the message payload. Default: the string itself. */
  readonly decode?: (data: string) => T;
  /** The message's resume id, if it has one (a topic record's offset). Default: none. */
  readonly idOf?: (message: T) => string | undefined;
  /**
   * An application-level ping: browsers cannot send protocol pings, so liveness needs a message the
   * server answers. When set, the subscriber sends it every `pingIntervalMs` and its idle watchdog
   * applies. Default none (no pings, no watchdog).
   */
  readonly ping?: {
    /** The text to send. */
    readonly message: string;
    /** Recognises the server's answer, which is then counted as activity and not delivered. */
    readonly isPong: (data: string) => boolean;
  };
  /** The delay assumed for a 1013 close without one in its reason, in milliseconds. Default `5000`. */
  readonly tryAgainLaterMs?: number;
}

const OPEN = 1;
const ignore = (): void => {};

/**
 * Reads a delay from a close reason: pollkit's JSON reason (`{"code":"overloaded","retryAfterMs":2000}`),
 * `"retry-after=N"`, or a bare `N` (both in seconds, like `Retry-After`).
 *
 * @example
 * ```ts
 * import { closeReasonDelay } from 'pollkit/client';
 * closeReasonDelay('{"code":"shutting-down","retryAfterMs":1000}'); // 1000
 * closeReasonDelay('retry-after=2.5'); // 2500
 * closeReasonDelay('going away');      // undefined
 * ```
 */
export function closeReasonDelay(reason: string): number | undefined {
  const json = parseReason(reason);
  if (json !== undefined) {
    const ms = json['retryAfterMs'];
    return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? ms : undefined;
  }
  const match = /^\s*(?:retry-after\s*[=:]\s*)?(\d+(?:\.\d+)?)\s*$/i.exec(reason);
  return match === null ? undefined : Math.round(Number(match[1]) * 1000);
}

function parseReason(reason: string): Record<string, unknown> | undefined {
  if (!reason.trimStart().startsWith('{')) return undefined;
  try {
    const value = JSON.parse(reason) as unknown;
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** pollkit's close code for a resume offset that is no longer retained (HTTP 410's counterpart). */
const OFFSET_GONE = 4410;

/**
 * What a close code tells the subscriber: 1008 and 4410 (offset gone) stop it; 1001, 1013 and
 * 4000–4999 may carry a delay in the reason, honoured as a floor (1013 without one assumes
 * `tryAgainLaterMs`); 1002, 1003 and 1010 mean this endpoint will never work here.
 *
 * @example
 * ```ts
 * import { classifyClose } from 'pollkit/client';
 * classifyClose(1013, '', 5000); // { reason: 'ws-1013', retryAfterMs: 5000 }
 * classifyClose(1008, 'banned', 5000); // { reason: 'ws-1008', stop: true }
 * ```
 */
export function classifyClose(code: number, reason: string, tryAgainLaterMs: number): TransportClose {
  const name = `ws-${code}`;
  if (code === 1008) return { reason: name, stop: true };
  if (code === OFFSET_GONE) return { reason: 'offset-gone', stop: true, error: offsetGone(reason) };
  const delay = closeReasonDelay(reason);
  if (code === 1013) return { reason: name, retryAfterMs: delay ?? tryAgainLaterMs };
  if (code === 1001 || (code >= 4000 && code <= 4999)) {
    return delay === undefined ? { reason: name } : { reason: name, retryAfterMs: delay };
  }
  if (code === 1002 || code === 1003 || code === 1010) return { reason: name, unavailable: true };
  return { reason: name };
}

function offsetGone(reason: string): Error {
  const json = parseReason(reason);
  const earliestOffset = json?.['earliestOffset'];
  const epoch = json?.['epoch'];
  if (typeof earliestOffset === 'number' && typeof epoch === 'string') {
    // The socket does not say which topic or offset; the subscriber's cursor does.
    return new OffsetGoneError('', Number.NaN, { earliestOffset, epoch });
  }
  return new PollkitError('The resume offset is no longer retained', 'offset-gone');
}

/**
 * The WebSocket transport.
 *
 * @example
 * ```ts
 * import WebSocket from 'ws';
 * import { Subscriber, WebSocketTransport } from 'pollkit/client';
 *
 * const ws = new WebSocketTransport<{ offset: number; value: unknown }>({
 *   url: (cursor) => `ws://localhost:8080/pollkit/topics/chat/ws?offset=${cursor === undefined ? 0 : Number(cursor) + 1}`,
 *   WebSocket: WebSocket as never,
 *   decode: (text) => JSON.parse(text),
 *   idOf: (record) => String(record.offset),
 *   ping: { message: 'ping', isPong: (text) => text === 'pong' },
 * });
 * new Subscriber({ transports: ws }).start();
 * ```
 */
export class WebSocketTransport<T = string> implements Transport<T> {
  readonly name = 'websocket';
  readonly canSend = true;
  readonly #options: WebSocketTransportOptions<T>;
  readonly #tryAgainLater: number;

  constructor(options: WebSocketTransportOptions<T>) {
    if (options === null || typeof options !== 'object' || options.url === undefined) {
      throw new InvalidArgumentError('WebSocketTransport option "url" is required', 'url');
    }
    this.#tryAgainLater = options.tryAgainLaterMs ?? 5000;
    if (!(this.#tryAgainLater >= 0)) {
      throw new InvalidArgumentError('WebSocketTransport option "tryAgainLaterMs" must be >= 0', 'tryAgainLaterMs');
    }
    this.#options = options;
  }

  connect(request: ConnectRequest, sink: TransportSink<T>): TransportConnection {
    const options = this.#options;
    const Constructor =
      options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ?? undefined;
    const inert: TransportConnection = { heartbeats: false, close: () => {} };
    if (typeof Constructor !== 'function') {
      sink.closed({ reason: 'unsupported', unavailable: true });
      return inert;
    }
    let socket: WebSocketLike;
    try {
      const url = typeof options.url === 'function' ? options.url(request.cursor) : options.url;
      socket =
        options.protocols === undefined
          ? new Constructor(String(url))
          : new Constructor(String(url), options.protocols);
      socket.binaryType = 'arraybuffer';
    } catch (error) {
      // A malformed URL or a forbidden port: no server answer will change that.
      sink.closed({ reason: 'invalid-url', error, unavailable: true });
      return inert;
    }

    let done = false;
    let error: unknown;
    const decoder = new TextDecoder();
    const decode = options.decode;
    const idOf = options.idOf;
    const ping = options.ping;

    const onOpen = (): void => sink.opened();
    const onMessage = (event: { data: unknown }): void => {
      sink.activity();
      const raw = event.data;
      const text =
        typeof raw === 'string'
          ? raw
          : raw instanceof ArrayBuffer || ArrayBuffer.isView(raw)
            ? decoder.decode(raw as ArrayBuffer)
            : String(raw);
      if (ping !== undefined && ping.isPong(text)) return;
      let data: T;
      try {
        data = decode === undefined ? (text as T) : decode(text);
      } catch (cause) {
        finish({ reason: 'decode', error: cause });
        try {
          socket.close(1003, 'undecodable message');
        } catch {
          // Closing an already failing socket may throw; the connection is over either way.
        }
        return;
      }
      sink.message({ data, id: idOf?.(data), event: undefined });
    };
    const onError = (event: { error?: unknown; message?: unknown }): void => {
      error = event.error ?? new Error(typeof event.message === 'string' ? event.message : 'WebSocket error');
    };
    const onClose = (event: { code: number; reason: string }): void => {
      const verdict = classifyClose(event.code, event.reason ?? '', this.#tryAgainLater);
      finish(error === undefined ? verdict : { ...verdict, error });
    };
    const listeners: [string, (event: WebSocketEventLike) => void][] = [
      ['open', onOpen],
      ['message', onMessage as (event: WebSocketEventLike) => void],
      ['error', onError as (event: WebSocketEventLike) => void],
      ['close', onClose as (event: WebSocketEventLike) => void],
    ];
    const detach = (): void => {
      for (const [type, listener] of listeners) socket.removeEventListener(type, listener);
      request.signal.removeEventListener('abort', onAbort);
    };
    const finish = (close: TransportClose): void => {
      if (done) return;
      done = true;
      detach();
      sink.closed(close);
    };
    const shut = (): void => {
      if (done) return;
      done = true;
      detach();
      // Node's ws emits "error" when a socket still connecting is closed, and an EventEmitter error
      // without a listener throws; the socket is being abandoned, so its last words are ignored.
      socket.addEventListener('error', ignore);
      try {
        socket.close(1000);
      } catch {
        // A socket still connecting may refuse a code; it is being abandoned either way.
        try {
          socket.close();
        } catch {
          // Nothing left to release.
        }
      }
    };
    const onAbort = (): void => shut();
    for (const [type, listener] of listeners) socket.addEventListener(type, listener);
    request.signal.addEventListener('abort', onAbort, { once: true });

    return {
      heartbeats: ping !== undefined,
      get bufferedAmount() {
        return socket.bufferedAmount;
      },
      send: (data: string) => {
        if (socket.readyState !== OPEN) throw new Error('WebSocket is not open');
        socket.send(data);
      },
      ...(ping === undefined
        ? {}
        : {
            ping: () => {
              if (socket.readyState === OPEN) socket.send(ping.message);
            },
          }),
      close: shut,
    };
  }
}
