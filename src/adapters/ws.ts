/**
 * Topic WebSockets (`{prefix}/topics/{t}/ws?offset=120`) on a `ws` server, served by the same
 * {@link PollkitHandler} — and so the same `authorize` hook, held-request limits, offset checks and
 * shutdown — as the HTTP routes.
 *
 * The adapter only translates: it asks the handler for the topic's event stream
 * (`{prefix}/topics/{t}/events`) and forwards each event's data as one text message
 * `{ "offset", "timestamp", "key", "value" }`; a refusal becomes a close code. Reusing the stream
 * rather than reading the topic itself is what keeps the two push transports from drifting apart.
 *
 * The stream is pulled, never pushed: while the socket's `bufferedAmount` is above the high-water mark
 * the adapter stops reading the subscription, so a slow client costs a bounded buffer, and one that
 * stays slow for `slowConsumerTimeoutMs` is closed with 1013 to reconnect from its offset later.
 *
 * `ws` is an optional peer dependency and is imported here as types only: the application creates the
 * `WebSocketServer` and hands it over.
 *
 * @module pollkit/ws
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket, WebSocketServer } from 'ws';
import { AbortedError, InvalidArgumentError } from '../core/errors.js';
import { type Clock, type TimerHandle, systemClock } from '../core/clock.js';
import { HEADERS } from '../core/protocol.js';
import type { PollkitHandler } from '../server/http/handler.js';
import { type PollkitRequest, type PollkitResponse, getHeader, isStreamBody } from '../server/http/types.js';

/**
 * Close codes the adapter sends, and what a client should do on each.
 *
 * @example
 * ```ts
 * import { WS_CLOSE_CODES } from 'pollkit/ws';
 * socket.addEventListener('close', (event) => {
 *   if (event.code === WS_CLOSE_CODES.policyViolation) console.log('do not reconnect');
 * });
 * ```
 */
export const WS_CLOSE_CODES = Object.freeze({
  /** The server is closing (the handler or the adapter was closed); reconnect with backoff. */
  goingAway: 1001,
  /** Unauthorized, unknown or hidden topic, malformed request: do not reconnect. */
  policyViolation: 1008,
  /** The server failed; reconnect with backoff. */
  internalError: 1011,
  /** Overloaded, shutting down or too slow a reader: reconnect after `retryAfterMs` from the reason. */
  tryAgainLater: 1013,
  /** The offset is below the retained log or the epoch changed: restart from `earliestOffset` knowingly. */
  offsetGone: 4410,
});

/** Options for {@link PollkitWebSocketServer}. */
export interface PollkitWebSocketOptions<Context = unknown> {
  /**
   * Derives the caller's context (a session, a user) from the upgrade request; it reaches the
   * handler's `authorize` hook as `request.context`. Default: none.
   */
  readonly context?: (request: IncomingMessage) => Context | Promise<Context>;
  /**
   * Bytes queued on a socket above which the adapter stops reading the topic until the queue drains.
   * Default 1 048 576 (1 MiB).
   */
  readonly highWaterMarkBytes?: number;
  /**
   * How long a socket may stay above the high-water mark before it is closed with 1013 (its client
   * then reconnects from its last offset, losing nothing); 0 waits forever. A socket that does not
   * answer the close frame within a second is destroyed, with whatever was queued on it, rather than
   * left to `ws`'s 30-second close timeout. Default 30 000 ms.
   */
  readonly slowConsumerTimeoutMs?: number;
  /**
   * The delay suggested in the close reason of 1001 and 1013 closes when the handler gives none, in
   * milliseconds. Default 1000.
   */
  readonly retryAfterMs?: number;
  /** Time source for the slow-consumer timer. Default `systemClock`. */
  readonly clock?: Clock;
}

/** The `ws` socket's OPEN ready state, spelled out because `ws` is not imported at run time. */
const OPEN = 1;
/** The longest close reason RFC 6455 allows, in bytes. */
const MAX_REASON_BYTES = 123;
/** How often a paused socket re-checks its buffer even without a send callback, in milliseconds. */
const DRAIN_RECHECK_MS = 1000;
/** How long a socket the adapter closes may take to answer the close frame before it is destroyed. */
const CLOSE_GRACE_MS = 1000;

/**
 * Serves topic WebSockets for a {@link PollkitHandler} on a `ws` `WebSocketServer`. It listens to the
 * server's `connection` event; with `noServer: true`, route upgrades through
 * {@link PollkitWebSocketServer.handleUpgrade}.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { WebSocketServer } from 'ws';
 * import { PollkitHandler, TopicRegistry } from 'pollkit/server';
 * import { createNodeListener } from 'pollkit/node';
 * import { PollkitWebSocketServer } from 'pollkit/ws';
 *
 * const handler = new PollkitHandler({ topics: new TopicRegistry() });
 * const server = createServer(createNodeListener(handler));
 * const sockets = new PollkitWebSocketServer(new WebSocketServer({ noServer: true }), handler);
 * server.on('upgrade', (request, socket, head) => {
 *   if (!sockets.handleUpgrade(request, socket, head)) socket.destroy();
 * });
 * server.listen(8080);
 * ```
 */
export class PollkitWebSocketServer<Context = unknown> {
  readonly #wss: WebSocketServer;
  readonly #handler: PollkitHandler<Context>;
  readonly #context: ((request: IncomingMessage) => Context | Promise<Context>) | undefined;
  readonly #highWaterMark: number;
  readonly #slowConsumerTimeoutMs: number;
  readonly #retryAfterMs: number;
  readonly #clock: Clock;
  readonly #sockets = new Set<WebSocket>();
  #closing = false;

  constructor(wss: WebSocketServer, handler: PollkitHandler<Context>, options: PollkitWebSocketOptions<Context> = {}) {
    if (wss === null || typeof wss !== 'object' || typeof wss.on !== 'function') {
      throw new InvalidArgumentError('wss must be a ws WebSocketServer', 'wss');
    }
    if (handler === null || typeof handler !== 'object' || typeof handler.handle !== 'function') {
      throw new InvalidArgumentError('handler must be a PollkitHandler', 'handler');
    }
    if (options.context !== undefined && typeof options.context !== 'function') {
      throw new InvalidArgumentError('context must be a function', 'context');
    }
    this.#wss = wss;
    this.#handler = handler;
    this.#context = options.context;
    this.#highWaterMark = nonNegativeInteger(options.highWaterMarkBytes ?? 1_048_576, 'highWaterMarkBytes');
    this.#slowConsumerTimeoutMs = nonNegativeInteger(options.slowConsumerTimeoutMs ?? 30_000, 'slowConsumerTimeoutMs');
    this.#retryAfterMs = nonNegativeInteger(options.retryAfterMs ?? 1000, 'retryAfterMs');
    this.#clock = options.clock ?? systemClock;
    wss.on('connection', this.#onConnection);
  }

  /** How many topic sockets are open right now. */
  get connections(): number {
    return this.#sockets.size;
  }

  /**
   * For a `noServer` `WebSocketServer`: upgrades the request when its path is a topic socket under the
   * handler's prefix and returns true; returns false (touching nothing) otherwise, so the caller can
   * route the upgrade elsewhere or destroy the socket.
   *
   * @example
   * ```ts
   * server.on('upgrade', (request, socket, head) => {
   *   if (!sockets.handleUpgrade(request, socket, head)) socket.destroy();
   * });
   * ```
   */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (topicOf(request.url ?? '', this.#handler.prefix) === undefined) return false;
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      this.#wss.emit('connection', ws, request);
    });
    return true;
  }

  /**
   * Stops serving: every open topic socket is closed with 1001 and later connections are refused with
   * 1001. Does not close the `WebSocketServer` or the handler, which the application owns.
   *
   * @example
   * ```ts
   * process.on('SIGTERM', () => void sockets.close().then(() => handler.close()));
   * ```
   */
  async close(): Promise<void> {
    // The connection listener stays: sockets that still arrive are closed with 1001 rather than left open.
    this.#closing = true;
    const closed = [...this.#sockets].map(
      (socket) =>
        new Promise<void>((resolve) => {
          if (socket.readyState === 3) {
            resolve();
            return;
          }
          socket.once('close', () => resolve());
          this.#close(socket, WS_CLOSE_CODES.goingAway, { code: 'shutting-down', retryAfterMs: this.#retryAfterMs });
        }),
    );
    await Promise.all(closed);
  }

  readonly #onConnection = (socket: WebSocket, request: IncomingMessage): void => {
    void this.#serve(socket, request);
  };

  async #serve(socket: WebSocket, upgrade: IncomingMessage): Promise<void> {
    this.#sockets.add(socket);
    const controller = new AbortController();
    const onClose = (): void => {
      this.#sockets.delete(socket);
      controller.abort(new AbortedError('The WebSocket closed'));
    };
    // ws emits 'error' before 'close' on a broken socket; 'close' does the cleanup.
    const onError = (): void => {};
    const onMessage = (data: RawData, isBinary: boolean): void => {
      if (isBinary) return;
      const reply = pingReply(rawText(data));
      if (reply !== undefined && socket.readyState === OPEN) socket.send(reply);
    };
    socket.once('close', onClose);
    socket.on('error', onError);
    socket.on('message', onMessage);
    try {
      if (this.#closing) {
        this.#close(socket, WS_CLOSE_CODES.goingAway, { code: 'shutting-down', retryAfterMs: this.#retryAfterMs });
        return;
      }
      const request = await this.#toRequest(upgrade, controller.signal);
      if (request === undefined) {
        this.#close(socket, WS_CLOSE_CODES.policyViolation, { code: 'not-found' });
        return;
      }
      const response = await this.#handler.handle(request);
      if (response !== null && isStreamBody(response.body) && (controller.signal.aborted || response.status !== 200)) {
        await response.body[Symbol.asyncIterator]().return?.();
      }
      if (controller.signal.aborted) return;
      if (response === null) {
        this.#close(socket, WS_CLOSE_CODES.policyViolation, { code: 'not-found' });
        return;
      }
      if (response.status !== 200 || !isStreamBody(response.body)) {
        this.#refuse(socket, response);
        return;
      }
      await this.#pump(socket, response.body, controller.signal);
    } catch {
      // handle() never rejects; a failing context hook or socket is a server-side fault.
      this.#close(socket, WS_CLOSE_CODES.internalError, { code: 'internal-error' });
    } finally {
      socket.off('error', onError);
      socket.off('message', onMessage);
    }
  }

  async #toRequest(upgrade: IncomingMessage, signal: AbortSignal): Promise<PollkitRequest<Context> | undefined> {
    const url = upgrade.url ?? '';
    const prefix = this.#handler.prefix;
    const topic = topicOf(url, prefix);
    if (topic === undefined) return undefined;
    const mark = url.indexOf('?');
    const query = mark < 0 ? '' : url.slice(mark);
    // On a socket the offset in the URL is the resume point; a stray Last-Event-ID must not override it.
    let headers = upgrade.headers;
    if (headers[HEADERS.lastEventId] !== undefined) {
      headers = { ...headers };
      delete headers[HEADERS.lastEventId];
    }
    const context = this.#context === undefined ? undefined : await this.#context(upgrade);
    const secure = (upgrade.socket as { encrypted?: boolean }).encrypted === true;
    return {
      method: 'GET',
      url: `${prefix}/topics/${topic}/events${query}`,
      headers,
      signal,
      secure,
      ...(upgrade.socket.remoteAddress === undefined ? {} : { remoteAddress: upgrade.socket.remoteAddress }),
      ...(context === undefined ? {} : { context }),
    };
  }

  /** Turns a refusal (a problem response) into the close code a client can act on. */
  #refuse(socket: WebSocket, response: PollkitResponse): void {
    const code = problemCode(response);
    const status = response.status;
    if (status === 503 || status === 429) {
      const retryAfter = Number(getHeader(response.headers, HEADERS.retryAfter));
      const retryAfterMs = Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter * 1000 : this.#retryAfterMs;
      this.#close(socket, WS_CLOSE_CODES.tryAgainLater, { code, retryAfterMs });
    } else if (status === 410) {
      this.#close(socket, WS_CLOSE_CODES.offsetGone, goneReason(response.body));
    } else if (status >= 500) {
      this.#close(socket, WS_CLOSE_CODES.internalError, { code });
    } else {
      this.#close(socket, WS_CLOSE_CODES.policyViolation, { code });
    }
  }

  /** Forwards events while the socket keeps up; pauses the subscription while it does not. */
  async #pump(socket: WebSocket, body: AsyncIterable<string>, signal: AbortSignal): Promise<void> {
    const events = body[Symbol.asyncIterator]();
    let flushed: (() => void) | undefined;
    const onSent = (): void => {
      const wake = flushed;
      flushed = undefined;
      wake?.();
    };
    let awaitingPong = false;
    const onPong = (): void => {
      awaitingPong = false;
    };
    socket.on('pong', onPong);
    try {
      for (;;) {
        if (socket.readyState !== OPEN) return;
        if (socket.bufferedAmount > this.#highWaterMark) {
          const drained = await this.#drain(socket, signal, (wake) => {
            flushed = wake;
          });
          if (!drained) {
            this.#close(socket, WS_CLOSE_CODES.tryAgainLater, {
              code: 'slow-consumer',
              retryAfterMs: this.#retryAfterMs,
            });
            return;
          }
          if (socket.readyState !== OPEN) return;
        }
        const next = await events.next();
        if (socket.readyState !== OPEN) return;
        if (next.done === true) {
          this.#ended(socket);
          return;
        }
        const chunk = next.value;
        if (chunk.startsWith(':')) {
          // The stream's heartbeat doubles as a liveness probe: a peer that ignored the last ping is gone.
          if (awaitingPong) {
            socket.terminate();
            return;
          }
          awaitingPong = true;
          socket.ping(undefined, undefined, onSent);
          continue;
        }
        const event = parseEvent(chunk);
        if (event === undefined) continue;
        if (event.event === 'problem') {
          // In-band problems end the stream: a log that moved past the reader, or a deleted topic.
          const reason = goneReason(event.data);
          if (reason['code'] === 'topic-not-found') this.#close(socket, WS_CLOSE_CODES.policyViolation, reason);
          else this.#close(socket, WS_CLOSE_CODES.offsetGone, reason);
          return;
        }
        socket.send(event.data, onSent);
      }
    } finally {
      socket.off('pong', onPong);
      await events.return?.();
    }
  }

  /**
   * Waits until the socket's queue falls to half the high-water mark. Resolves false when it stays
   * above the mark for `slowConsumerTimeoutMs`, true otherwise (including when the socket closes).
   */
  async #drain(socket: WebSocket, signal: AbortSignal, onFlush: (wake: () => void) => void): Promise<boolean> {
    const deadline = this.#slowConsumerTimeoutMs === 0 ? Infinity : this.#clock.now() + this.#slowConsumerTimeoutMs;
    const lowWater = this.#highWaterMark / 2;
    while (socket.readyState === OPEN && !signal.aborted && socket.bufferedAmount > lowWater) {
      const remaining = deadline - this.#clock.now();
      if (remaining <= 0) return false;
      let timer: TimerHandle | undefined;
      let onAbort: (() => void) | undefined;
      try {
        await new Promise<void>((resolve) => {
          onFlush(resolve);
          onAbort = resolve;
          signal.addEventListener('abort', onAbort, { once: true });
          timer = this.#clock.setTimeout(resolve, Math.min(remaining, DRAIN_RECHECK_MS), { unref: true });
        });
      } finally {
        if (timer !== undefined) this.#clock.clearTimeout(timer);
        if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
      }
    }
    return true;
  }

  #ended(socket: WebSocket): void {
    if (this.#closing || this.#handler.closing) {
      this.#close(socket, WS_CLOSE_CODES.goingAway, { code: 'shutting-down', retryAfterMs: this.#retryAfterMs });
    } else {
      this.#close(socket, WS_CLOSE_CODES.internalError, { code: 'internal-error' });
    }
  }

  #close(socket: WebSocket, code: number, reason: Readonly<Record<string, unknown>>): void {
    if (socket.readyState !== OPEN && socket.readyState !== 0) return;
    socket.close(code, closeReason(reason));
    // ws waits 30 s for the peer's close frame, keeping the socket and everything queued on it. A
    // client that reads the close frame answers in milliseconds; one that stopped reading (a slow
    // consumer, above all) never will, so its socket is destroyed after a short grace instead.
    const timer = this.#clock.setTimeout(() => socket.terminate(), CLOSE_GRACE_MS, { unref: true });
    socket.once('close', () => this.#clock.clearTimeout(timer));
  }
}

/**
 * Serves topic WebSockets for `handler` on `wss`; shorthand for `new PollkitWebSocketServer(...)`.
 *
 * @example
 * ```ts
 * import { WebSocketServer } from 'ws';
 * import { attachWebSocket } from 'pollkit/ws';
 * const sockets = attachWebSocket(new WebSocketServer({ server }), handler);
 * ```
 */
export function attachWebSocket<Context = unknown>(
  wss: WebSocketServer,
  handler: PollkitHandler<Context>,
  options: PollkitWebSocketOptions<Context> = {},
): PollkitWebSocketServer<Context> {
  return new PollkitWebSocketServer(wss, handler, options);
}

/** The (still percent-encoded) topic segment of `{prefix}/topics/{t}/ws`, or undefined for other paths. */
function topicOf(url: string, prefix: string): string | undefined {
  const mark = url.indexOf('?');
  let path = mark < 0 ? url : url.slice(0, mark);
  if (!path.startsWith('/')) {
    try {
      path = new URL(path).pathname;
    } catch {
      return undefined;
    }
  }
  if (!path.startsWith(`${prefix}/topics/`)) return undefined;
  const rest = path.slice(prefix.length + '/topics/'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0 || rest.slice(slash) !== '/ws') return undefined;
  return rest.slice(0, slash);
}

/** The `event:` and `data:` of one formatted server-sent event; comments and `retry:` give undefined. */
function parseEvent(chunk: string): { readonly event: string | undefined; readonly data: string } | undefined {
  let event: string | undefined;
  const data: string[] = [];
  for (const line of chunk.split('\n')) {
    if (line.startsWith('data: ')) data.push(line.slice(6));
    else if (line.startsWith('event: ')) event = line.slice(7);
  }
  return data.length === 0 ? undefined : { event, data: data.join('\n') };
}

/** The answer to an application ping (`ping` or `{"type":"ping","id":…}`), or undefined for other text. */
function pingReply(text: string): string | undefined {
  if (text === 'ping') return 'pong';
  if (!text.startsWith('{') || text.length > 1024) return undefined;
  try {
    const message = JSON.parse(text) as { type?: unknown; id?: unknown };
    if (message.type !== 'ping') return undefined;
    return JSON.stringify(message.id === undefined ? { type: 'pong' } : { type: 'pong', id: message.id });
  } catch {
    return undefined;
  }
}

function rawText(data: RawData): string {
  if (typeof data === 'string') return data;
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}

function problemCode(response: PollkitResponse): string {
  if (typeof response.body !== 'string') return `http-${response.status}`;
  try {
    const code = (JSON.parse(response.body) as { code?: unknown }).code;
    return typeof code === 'string' ? code : `http-${response.status}`;
  } catch {
    return `http-${response.status}`;
  }
}

/** The 410 problem's resume position, for the close reason of an offset-gone close. */
function goneReason(body: unknown): Record<string, unknown> {
  if (typeof body !== 'string') return { code: 'offset-gone' };
  try {
    const problem = JSON.parse(body) as { code?: unknown; earliestOffset?: unknown; epoch?: unknown };
    if (problem.code === 'topic-not-found') return { code: 'topic-not-found' };
    return { code: 'offset-gone', earliestOffset: problem.earliestOffset, epoch: problem.epoch };
  } catch {
    return { code: 'offset-gone' };
  }
}

/** A JSON close reason within the 123 bytes RFC 6455 allows; extension members go first when it must shrink. */
function closeReason(reason: Readonly<Record<string, unknown>>): string {
  const full = JSON.stringify(reason);
  if (Buffer.byteLength(full) <= MAX_REASON_BYTES) return full;
  const minimal = JSON.stringify({ code: reason['code'] });
  return Buffer.byteLength(minimal) <= MAX_REASON_BYTES ? minimal : '';
}

function nonNegativeInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(`${name} must be an integer >= 0, got ${String(value)}`, name);
  }
  return value;
}
