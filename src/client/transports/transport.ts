/**
 * The contract between the {@link Subscriber} and the ways it can reach a server (WebSocket, SSE over
 * fetch, long polling). A transport knows its wire format and nothing about reconnecting: it opens one
 * connection, reports what happens on it through a {@link TransportSink}, and says in its final
 * {@link TransportClose} whether and when the server wants it back. Keeping every policy decision
 * (backoff, hints, fallback, dedupe, the cursor) in the subscriber is what lets one fake transport test
 * all of them deterministically.
 *
 * @module
 */
import type { Clock } from '../../core/clock.js';

/**
 * One message as a transport decoded it.
 *
 * @example
 * ```ts
 * import type { TransportMessage } from 'pollkit/client';
 * const message: TransportMessage<string> = { data: 'hello', id: '41', event: undefined };
 * ```
 */
export interface TransportMessage<T> {
  /** The decoded payload. */
  readonly data: T;
  /**
   * The message's resume token (SSE `id:`, a topic offset), or `undefined` for none. Committed as the
   * subscriber's cursor only after the message has been dispatched, and used to drop re-deliveries.
   */
  readonly id: string | undefined;
  /** The SSE `event:` name, when the wire format has one. */
  readonly event: string | undefined;
}

/**
 * How a connection ended, reported exactly once through {@link TransportSink.closed}.
 *
 * @example
 * ```ts
 * import type { TransportClose } from 'pollkit/client';
 * const close: TransportClose = { reason: 'http-503', retryAfterMs: 5000 };
 * ```
 */
export interface TransportClose {
  /** A short machine-readable reason: `"eof"`, `"network"`, `"http-503"`, `"ws-1006"`, … */
  readonly reason: string;
  /** The failure behind the close, if any. */
  readonly error?: unknown;
  /** The server's requested delay before the next attempt (Retry-After, a close code's delay). */
  readonly retryAfterMs?: number;
  /**
   * The server said not to come back (SSE 204, WebSocket 1008, a finished job, a 4xx): the subscriber
   * stops instead of reconnecting.
   */
  readonly stop?: boolean;
  /**
   * This transport cannot work here (no WebSocket constructor, the endpoint does not exist, the proxy
   * strips the stream): before a transport has ever opened, the subscriber falls back to the next one.
   */
  readonly unavailable?: boolean;
}

/**
 * Where a connection reports what happens on it. Calls after {@link TransportSink.closed} are ignored.
 *
 * @example
 * ```ts
 * import type { TransportSink } from 'pollkit/client';
 * const sink: TransportSink<string> = {
 *   opened: () => {}, message: (m) => console.log(m.data), activity: () => {},
 *   retryHint: () => {}, closed: (c) => console.log(c.reason),
 * };
 * ```
 */
export interface TransportSink<T> {
  /** The connection is established and messages may follow. */
  opened(): void;
  /** A complete message arrived; the subscriber dispatches it, then commits its id. */
  message(message: TransportMessage<T>): void;
  /** Bytes, a heartbeat comment or a pong arrived: the connection is alive. */
  activity(): void;
  /** The server set its preferred reconnection delay (SSE `retry:`), in milliseconds. */
  retryHint(ms: number): void;
  /** The connection is over; called exactly once. */
  closed(close: TransportClose): void;
}

/**
 * What a transport's `connect` receives.
 *
 * @example
 * ```ts
 * import type { ConnectRequest } from 'pollkit/client';
 * const request = (cursor: string | undefined, signal: AbortSignal, clock: import('pollkit').Clock): ConnectRequest =>
 *   ({ cursor, signal, clock });
 * ```
 */
export interface ConnectRequest {
  /** The last committed cursor, from which to resume; `undefined` to start wherever the server starts. */
  readonly cursor: string | undefined;
  /** Aborted when the subscriber drops this connection; the transport releases everything then. */
  readonly signal: AbortSignal;
  /** The subscriber's clock, for any timer the transport needs. */
  readonly clock: Clock;
}

/**
 * A live connection, as returned by {@link Transport.connect}.
 *
 * @example
 * ```ts
 * import type { TransportConnection } from 'pollkit/client';
 * const idle: TransportConnection = { heartbeats: false, close: () => {} };
 * ```
 */
export interface TransportConnection {
  /**
   * True when the server promises traffic at least every heartbeat interval (SSE `: hb` comments, or
   * pongs to {@link TransportConnection.ping}), so the subscriber's idle watchdog may judge silence.
   */
  readonly heartbeats: boolean;
  /** Hands `data` to the wire; present only where the transport can send. Throws if not open. */
  send?(data: string): void;
  /**
   * Bytes handed to {@link TransportConnection.send} but not yet written to the network (WebSocket
   * `bufferedAmount`); lets the subscriber tell a flushed message from one a dying socket may have lost.
   */
  readonly bufferedAmount?: number;
  /** Sends an application-level ping whose answer counts as activity; present where supported. */
  ping?(): void;
  /** Closes the connection without reporting a close (the subscriber already knows why). */
  close(): void;
}

/**
 * A way to reach the server. Implementations: {@link WebSocketTransport}, {@link SseTransport},
 * {@link LongPollTransport}; tests pass fakes.
 *
 * @example
 * ```ts
 * import type { Transport } from 'pollkit/client';
 * const never: Transport<string> = {
 *   name: 'never',
 *   canSend: false,
 *   connect: (_request, sink) => {
 *     sink.closed({ reason: 'unsupported', unavailable: true });
 *     return { heartbeats: false, close: () => {} };
 *   },
 * };
 * ```
 */
export interface Transport<T> {
  /** A short name reported in events (`"websocket"`, `"sse"`, `"long-poll"`). */
  readonly name: string;
  /** Whether connections offer {@link TransportConnection.send}. */
  readonly canSend: boolean;
  /**
   * Opens one connection. Must not throw: failures, even synchronous ones, are reported through
   * `sink.closed`, possibly before `connect` returns.
   */
  connect(request: ConnectRequest, sink: TransportSink<T>): TransportConnection;
}

/**
 * Turns an unknown thrown value into a short close reason for events and logs.
 *
 * @example
 * ```ts
 * import { describeFailure } from 'pollkit/client';
 * describeFailure(new TypeError('fetch failed')); // "network"
 * ```
 */
export function describeFailure(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    if ((error as { name?: unknown }).name === 'TypeError') return 'network';
  }
  return 'error';
}
