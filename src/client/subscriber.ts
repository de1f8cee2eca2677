/**
 * The reconnecting subscriber: one API for push over WebSocket, SSE and long polling that neither
 * stampedes a restarting server nor loses or repeats messages across a reconnect.
 *
 * Why each piece exists:
 * - The herd. When a server restarts, every client sees the drop in the same millisecond. A ±20 %
 *   jitter around one second (gRPC's curve) still lands a thousand clients inside 400 ms, so the first
 *   reconnect after a healthy connection drops is spread uniformly over `spreadMs` (AWS "full jitter")
 *   and the curve then continues from the first step that is longer than that spread, so the second
 *   wave never piles onto the tail of the first. Later attempts follow the backoff policy
 *   ({@link reconnectBackoff} by default: a cycle near the spread, growing slowly, so that whenever the
 *   server returns the herd arrives spread over one cycle and is back within it); server hints (SSE
 *   `retry:`, `Retry-After`, close codes) are floors with jitter above.
 * - Fallback. A transport that keeps failing (opening, then closing before it is stable,
 *   `fallbackAfter` times in a row) hands over to the next in the list; after `stepUpAfterMs` of stable service there, the
 *   preferred one is tried again, and a failed try returns at once to the one that works.
 * - The cursor. A message's id becomes the resume point only after every listener and iterator has it,
 *   and ids seen within a window are dropped on replay, so a cut anywhere (even between an `id:` line
 *   and the end of its event) neither skips nor repeats.
 * - Silence. A half-open TCP connection delivers nothing forever; where the server promises heartbeats,
 *   an idle watchdog turns silence into a reconnect.
 * - Leaks. Everything is callback-driven on an injected clock: each connection's timers, listeners and
 *   abort controller are released when it ends, which a 10,000-cycle test counts.
 *
 * @module
 */
import { abortReason, linkSignals, type LinkedSignal, onAbort } from '../core/abort.js';
import { type BackoffPolicy, reconnectBackoff, withHint } from '../core/backoff.js';
import { type Clock, systemClock, type TimerHandle } from '../core/clock.js';
import { Emitter, type EventMap } from '../core/emitter.js';
import { nextEvent } from './poller-support.js';
import { InvalidArgumentError, OverloadedError, PollkitError } from '../core/errors.js';
import type { Transport, TransportClose, TransportConnection, TransportMessage } from './transports/transport.js';

/** Options for {@link ReconnectSchedule}. */
export interface ReconnectScheduleOptions {
  /** The curve of delays between failed attempts. Default {@link reconnectBackoff} (4.6 s four times, then ×1.25 to 8 s, ±2 %). */
  readonly backoff?: BackoffPolicy;
  /**
   * The first reconnect after a reset waits a uniform random delay in [0, `spreadMs`]; `0` starts
   * straight on the backoff curve. Default `4600`.
   */
  readonly spreadMs?: number;
  /** The width of the random band above a server's hint, relative to it. Default `0.2`. */
  readonly hintSpread?: number;
  /** A source of uniform numbers in [0, 1), drawn per attempt. Default `Math.random` looked up per call. */
  readonly random?: () => number;
}

/**
 * The subscriber's reconnect delays as a pure, stateful walk: {@link ReconnectSchedule.next} gives the
 * delay before the next attempt, {@link ReconnectSchedule.reset} starts over once a connection has
 * proved stable. Exported so simulations (bench/storm.ts) drive the very code the subscriber runs.
 *
 * @example
 * ```ts
 * import { ReconnectSchedule, seededRandom } from 'pollkit/client';
 *
 * const schedule = new ReconnectSchedule({ random: seededRandom(7) });
 * schedule.next();     // 0..4600 ms: the herd's spread
 * schedule.next();     // the curve from the first step at least as long as the spread (4.6 s ± 2 %)
 * schedule.next(5000); // a server hint is a floor, with jitter above it: 5000..6000 ms
 * schedule.reset();
 * ```
 */
export class ReconnectSchedule {
  readonly #policy: BackoffPolicy;
  readonly #spread: number;
  readonly #hintSpread: number;
  readonly #random: () => number;
  readonly #skip: number;
  #attempt = 0;
  #policyAttempt = 0;
  #previous: number | undefined;

  constructor(options: ReconnectScheduleOptions = {}) {
    this.#policy = options.backoff ?? reconnectBackoff;
    this.#spread = options.spreadMs ?? 4600;
    this.#hintSpread = options.hintSpread ?? 0.2;
    this.#random = options.random ?? (() => Math.random());
    checkNumber('ReconnectSchedule', 'spreadMs', this.#spread, 0);
    checkNumber('ReconnectSchedule', 'hintSpread', this.#hintSpread, 0);
    this.#skip = firstStepAtLeast(this.#policy, this.#spread);
  }

  /** Attempts taken since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /**
   * The delay in milliseconds before the next attempt, advancing the count.
   *
   * @param hintMs - the server's requested delay, honoured as a floor with jitter above it.
   */
  next(hintMs?: number): number {
    if (this.#attempt === 0 && this.#spread > 0) {
      const spread = this.#random() * this.#spread;
      this.#policyAttempt = this.#skip;
      this.#previous = spread;
      this.#attempt++;
      // A hint moves the whole window up instead of collapsing it into the hint's narrow band: every
      // client of a restarted server got the same SSE "retry: 3000", and [3000, 3600] is a herd again.
      return hintMs !== undefined && Number.isFinite(hintMs) && hintMs > 0 ? hintMs + spread : spread;
    }
    const delay = this.#policy.delay(this.#policyAttempt, this.#previous, this.#random);
    this.#policyAttempt++;
    this.#previous = delay;
    this.#attempt++;
    return withHint(delay, hintMs, this.#random, this.#hintSpread);
  }

  /** Starts over: the next delay is the spread again. */
  reset(): void {
    this.#attempt = 0;
    this.#policyAttempt = 0;
    this.#previous = undefined;
  }
}

/** The policy attempt whose (un-jittered) curve first reaches `spread`, so wave two starts after wave one. */
function firstStepAtLeast(policy: BackoffPolicy, spread: number): number {
  const { initial, factor, max, flatFor } = policy.options;
  if (spread <= 0) return 0;
  for (let attempt = 0; attempt < 64; attempt++) {
    const curve = Math.min(max, initial * factor ** Math.max(0, attempt - (flatFor ?? 0)));
    if (curve >= spread || curve >= max) return attempt;
  }
  return 64;
}

function checkNumber(owner: string, name: string, value: number, min: number): void {
  if (!(typeof value === 'number' && value >= min && !Number.isNaN(value))) {
    throw new InvalidArgumentError(`${owner} option "${name}" must be a number >= ${min}, got ${String(value)}`, name);
  }
}

/** A message as the subscriber delivers it. */
export interface SubscriberMessage<T> {
  /** The decoded payload. */
  readonly data: T;
  /** The message's id (SSE `id:`, topic offset); becomes {@link Subscriber.cursor} once dispatched. */
  readonly id: string | undefined;
  /** The SSE event name, if any. */
  readonly event: string | undefined;
  /** The transport it came over. */
  readonly transport: string;
}

/** Payload of the `open` event. */
export interface SubscriberOpenEvent {
  /** The transport that opened: the one the subscriber settled on. */
  readonly transport: string;
  /** The cursor the connection resumed from. */
  readonly cursor: string | undefined;
  /** Reconnect attempts since the backoff last reset (0 for a first connection). */
  readonly attempt: number;
}

/** Payload of the `close` event: one connection ended. */
export interface SubscriberCloseEvent {
  /** The transport of the connection that ended. */
  readonly transport: string;
  /** Why: `"eof"`, `"network"`, `"http-503"`, `"ws-1013"`, `"idle-timeout"`, `"connect-timeout"`, … */
  readonly reason: string;
  /** The failure behind the close, if any. */
  readonly error: unknown;
  /** Whether the connection had opened before it ended. */
  readonly wasOpen: boolean;
}

/** Payload of the `reconnecting` event. */
export interface ReconnectingEvent {
  /** 1 for the first reconnect since the backoff reset, 2 for the next, … */
  readonly attempt: number;
  /** How long the subscriber waits before trying, in milliseconds. */
  readonly delayMs: number;
  /** The reason of the close that caused it. */
  readonly reason: string;
  /** The failure behind that close, if any. */
  readonly error: unknown;
  /** The server's hint that floored the delay, if any. */
  readonly hintMs: number | undefined;
  /** The transport the next attempt uses. */
  readonly transport: string;
}

/** Payload of the `fallback` event. */
export interface FallbackEvent {
  /** The transport given up on. */
  readonly from: string;
  /** The transport tried next. */
  readonly to: string;
  /** Why `from` was left: its close reason, or `"step-up"`. */
  readonly reason: string;
  /** The failure behind it, if any. */
  readonly error: unknown;
}

/** Why a subscriber ended for good. */
export type GoneReason = 'closed' | 'aborted' | 'stopped' | 'max-retries' | 'unavailable';

/** Payload of the `gone` event, emitted exactly once when the subscriber ends. */
export interface SubscriberGoneEvent {
  /**
   * `closed` (by {@link Subscriber.close}), `aborted` (its signal), `stopped` (the server said not to
   * come back: SSE 204, WebSocket 1008, a 4xx), `max-retries` (gave up), `unavailable` (no transport
   * works here).
   */
  readonly reason: GoneReason;
  /** The failure behind it, if any. */
  readonly error: unknown;
}

/** Payload of the `commit` event. */
export interface CommitEvent {
  /** The new cursor: persist it to resume elsewhere with {@link SubscriberOptions.cursor}. */
  readonly cursor: string;
}

/** The typed events of a {@link Subscriber}. */
export interface SubscriberEvents<T> {
  /** A connection opened; the first one settles the transport. */
  open: [event: SubscriberOpenEvent];
  /** A message, after dedupe, before its id is committed. */
  message: [message: SubscriberMessage<T>];
  /** A message's id became the cursor (every listener and iterator has it). */
  commit: [event: CommitEvent];
  /** A connection ended. */
  close: [event: SubscriberCloseEvent];
  /** A reconnect is scheduled. */
  reconnecting: [event: ReconnectingEvent];
  /**
   * The subscriber moved to another transport: before one opened, after the one in use kept failing
   * (`fallbackAfter`), or back up to the preferred one (`reason: "step-up"`) and back down if that failed.
   */
  fallback: [event: FallbackEvent];
  /** The subscriber ended for good; emitted exactly once. */
  gone: [event: SubscriberGoneEvent];
  /** A listener threw, or a non-fatal failure worth logging. Never ends the subscriber. */
  error: [error: unknown];
}

/**
 * Where an outbound message stands: `queued` (waiting for a connection), `buffered` (handed to the
 * socket, not yet confirmed written), `sent` (the socket's buffer drained past it), `dropped` (never
 * reached a socket: the queue overflowed, the subscriber closed, or the transport cannot send),
 * `unknown` (the socket died while the message was in its buffer: it may or may not have arrived).
 */
export type SendStatus = 'queued' | 'buffered' | 'sent' | 'dropped' | 'unknown';

/** The outcome of one {@link Subscriber.send}. */
export interface SendReceipt {
  /** The current status. */
  readonly status: SendStatus;
  /** Resolves with the final status: `sent`, `dropped` or `unknown`. Never rejects. */
  readonly settled: Promise<'sent' | 'dropped' | 'unknown'>;
}

/** Options for {@link Subscriber}. */
export interface SubscriberOptions<T> {
  /** The transports to try, in order of preference (one, or several for SignalR-style fallback). Required. */
  readonly transports: Transport<T> | readonly Transport<T>[];
  /** The backoff curve between failed attempts. Default {@link reconnectBackoff}. */
  readonly backoff?: BackoffPolicy;
  /**
   * The window over which the first reconnect after a healthy connection drops is spread uniformly;
   * `0` reconnects on the backoff curve alone. Default `4600`.
   */
  readonly spreadMs?: number;
  /** The random band above a server's hint, relative to it. Default `0.2`. */
  readonly hintSpread?: number;
  /** How long a connection must stay open before the backoff resets. Default `10000`. */
  readonly stableAfterMs?: number;
  /** Consecutive reconnect attempts (since the backoff last reset) before giving up. Default `Infinity`. */
  readonly maxRetries?: number;
  /** A connection that has not opened within this time is abandoned and retried; `0` disables. Default `20000`. */
  readonly connectTimeoutMs?: number;
  /**
   * With a transport that promises heartbeats (SSE, WebSocket with a ping), a connection silent this long
   * is presumed dead and replaced; `0` disables. Default `45000` (three of the protocol's 15 s heartbeats).
   */
  readonly idleTimeoutMs?: number;
  /** How often to send an application ping where the transport has one; `0` disables. Default `15000`. */
  readonly pingIntervalMs?: number;
  /** The cursor to resume from (e.g. one you persisted from a `commit` event). Default none. */
  readonly cursor?: string;
  /**
   * Connections in a row that open and then end before `stableAfterMs` after which a transport that
   * used to work hands over to the next one in the list (a proxy that cuts streams, say). Attempts
   * that do not connect at all do not count: that is what a server outage looks like, and another
   * transport would not help. `0` never falls back once settled. Default `3`.
   */
  readonly fallbackAfter?: number;
  /**
   * After a fallback, how long the lower transport must serve (counted from its becoming stable) before
   * the preferred one is tried again; a failed try returns at once and doubles the wait (up to 1 h).
   * `0` never steps back up. Default `60000`.
   */
  readonly stepUpAfterMs?: number;
  /** How many recent message ids to remember for dropping re-deliveries. Default `1024`. */
  readonly dedupeWindow?: number;
  /** The most messages {@link Subscriber.send} queues while disconnected; more are dropped. Default `1000`. */
  readonly sendQueueLimit?: number;
  /**
   * The most messages one {@link Subscriber.messages} iterator holds for a consumer that has not read
   * them yet. A consumer further behind than this gets an {@link OverloadedError} from `next()` instead
   * of unbounded memory; listeners and other iterators are unaffected. Default `10000`.
   */
  readonly iteratorBufferLimit?: number;
  /** How often to check whether buffered sends have been written out. Default `50` ms. */
  readonly flushCheckMs?: number;
  /** Ends the subscriber (reason `aborted`). */
  readonly signal?: AbortSignal;
  /** Time, timers and randomness. Default `systemClock`. */
  readonly clock?: Clock;
}

/**
 * Where a {@link Subscriber} is: `idle` before `start()`, `connecting` while a transport opens, `open`
 * while connected, `waiting` between a drop and the next reconnect, `closed` once ended.
 *
 * @example
 * ```ts
 * import type { SubscriberState } from 'pollkit/client';
 * const live = (state: SubscriberState) => state === 'open';
 * ```
 */
export type SubscriberState = 'idle' | 'connecting' | 'open' | 'waiting' | 'closed';

interface Outbound {
  readonly data: string;
  status: SendStatus;
  upTo: number;
  resolve: (status: 'sent' | 'dropped' | 'unknown') => void;
}

interface IteratorState<T> {
  readonly buffer: SubscriberMessage<T>[];
  wake: (() => void) | undefined;
  overflow: OverloadedError | undefined;
}

const utf8 = (text: string): number => new TextEncoder().encode(text).byteLength;

/**
 * A push subscription that reconnects with jittered backoff, resumes from the last dispatched message
 * without loss or repetition, falls back between transports, watches for silent connections, and
 * queues outbound messages while disconnected.
 *
 * @example
 * ```ts
 * import { Subscriber, WebSocketTransport, SseTransport } from 'pollkit/client';
 *
 * const subscriber = new Subscriber<string>({
 *   transports: [
 *     new WebSocketTransport({ url: (cursor) => `wss://api.example.com/pollkit/topics/chat/ws?offset=${next(cursor)}` }),
 *     new SseTransport({ url: 'https://api.example.com/pollkit/topics/chat/events' }),
 *   ],
 *   cursor: localStorage.getItem('chat-cursor') ?? undefined,
 * });
 * subscriber.on('commit', ({ cursor }) => localStorage.setItem('chat-cursor', cursor));
 * subscriber.on('reconnecting', ({ attempt, delayMs, reason }) => console.log(attempt, delayMs, reason));
 * subscriber.start();
 * for await (const message of subscriber) console.log(message.data);
 *
 * function next(cursor: string | undefined) { return cursor === undefined ? 0 : Number(cursor) + 1; }
 * ```
 */
export class Subscriber<T = string> extends Emitter<SubscriberEvents<T>> {
  readonly #transports: readonly Transport<T>[];
  readonly #clock: Clock;
  readonly #schedule: ReconnectSchedule;
  readonly #stableAfter: number;
  readonly #maxRetries: number;
  readonly #connectTimeout: number;
  readonly #idleTimeout: number;
  readonly #pingInterval: number;
  readonly #dedupeWindow: number;
  readonly #sendQueueLimit: number;
  readonly #iteratorBufferLimit: number;
  readonly #flushCheck: number;
  readonly #userSignal: AbortSignal | undefined;

  #state: SubscriberState = 'idle';
  #index = 0;
  #settled: Transport<T> | undefined;
  #unavailableInRound = 0;
  #token = 0;
  #connection: TransportConnection | undefined;
  #controller: AbortController | undefined;
  #link: LinkedSignal | undefined;
  #openPending = false;
  #serverRetryMs: number | undefined;
  #lastActivity = 0;
  #cursor: string | undefined;
  #lastError: unknown;
  #removeAbort: (() => void) | undefined;

  readonly #fallbackAfter: number;
  readonly #stepUpAfter: number;
  #stepUpDelay = 0;
  #stepUpFrom: number | undefined;
  #stepUpTimer: TimerHandle | undefined;
  #unstable = 0;
  #stableReached = false;

  #reconnectTimer: TimerHandle | undefined;
  #connectTimer: TimerHandle | undefined;
  #stableTimer: TimerHandle | undefined;
  #idleTimer: TimerHandle | undefined;
  #pingTimer: TimerHandle | undefined;
  #flushTimer: TimerHandle | undefined;

  readonly #seen = new Set<string>();
  readonly #seenOrder: string[] = [];
  #seenHead = 0;
  readonly #queue: Outbound[] = [];
  #inFlight: Outbound[] = [];
  #handedBytes = 0;
  readonly #iterators = new Set<IteratorState<T>>();
  #gone: SubscriberGoneEvent | undefined;

  constructor(options: SubscriberOptions<T>) {
    super();
    const transports = Array.isArray(options.transports)
      ? (options.transports as readonly Transport<T>[])
      : [options.transports as Transport<T>];
    if (transports.length === 0 || transports.some((t) => typeof t?.connect !== 'function')) {
      throw new InvalidArgumentError('Subscriber option "transports" needs at least one transport', 'transports');
    }
    this.#transports = transports;
    this.#clock = options.clock ?? systemClock;
    const clock = this.#clock;
    this.#schedule = new ReconnectSchedule({
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
      ...(options.spreadMs === undefined ? {} : { spreadMs: options.spreadMs }),
      ...(options.hintSpread === undefined ? {} : { hintSpread: options.hintSpread }),
      random: () => clock.random(),
    });
    this.#stableAfter = options.stableAfterMs ?? 10_000;
    this.#maxRetries = options.maxRetries ?? Number.POSITIVE_INFINITY;
    this.#connectTimeout = options.connectTimeoutMs ?? 20_000;
    this.#idleTimeout = options.idleTimeoutMs ?? 45_000;
    this.#pingInterval = options.pingIntervalMs ?? 15_000;
    this.#dedupeWindow = options.dedupeWindow ?? 1024;
    this.#sendQueueLimit = options.sendQueueLimit ?? 1000;
    this.#iteratorBufferLimit = options.iteratorBufferLimit ?? 10_000;
    this.#flushCheck = options.flushCheckMs ?? 50;
    this.#fallbackAfter = options.fallbackAfter ?? 3;
    this.#stepUpAfter = options.stepUpAfterMs ?? 60_000;
    this.#stepUpDelay = this.#stepUpAfter;
    checkNumber('Subscriber', 'fallbackAfter', this.#fallbackAfter, 0);
    checkNumber('Subscriber', 'stepUpAfterMs', this.#stepUpAfter, 0);
    checkNumber('Subscriber', 'stableAfterMs', this.#stableAfter, 0);
    checkNumber('Subscriber', 'maxRetries', this.#maxRetries, 0);
    checkNumber('Subscriber', 'connectTimeoutMs', this.#connectTimeout, 0);
    checkNumber('Subscriber', 'idleTimeoutMs', this.#idleTimeout, 0);
    checkNumber('Subscriber', 'pingIntervalMs', this.#pingInterval, 0);
    checkNumber('Subscriber', 'dedupeWindow', this.#dedupeWindow, 0);
    checkNumber('Subscriber', 'sendQueueLimit', this.#sendQueueLimit, 0);
    checkNumber('Subscriber', 'iteratorBufferLimit', this.#iteratorBufferLimit, 1);
    checkNumber('Subscriber', 'flushCheckMs', this.#flushCheck, 1);
    if (options.cursor !== undefined && typeof options.cursor !== 'string') {
      throw new InvalidArgumentError('Subscriber option "cursor" must be a string', 'cursor');
    }
    this.#cursor = options.cursor;
    this.#userSignal = options.signal;
  }

  /** The last committed cursor: the id of the last message dispatched. */
  get cursor(): string | undefined {
    return this.#cursor;
  }

  /** The name of the transport the subscriber settled on (the first that opened), if any yet. */
  get transport(): string | undefined {
    return this.#settled?.name;
  }

  /** `idle` before {@link Subscriber.start}, then `connecting`, `open`, `waiting` (to reconnect), `closed`. */
  get state(): SubscriberState {
    return this.#state;
  }

  /** How many messages {@link Subscriber.send} holds until a connection opens. */
  get queuedSends(): number {
    return this.#queue.length;
  }

  /**
   * Connects, resuming from `cursor` when given (it overrides the constructor's). Returns `this`;
   * calling it again is a no-op.
   *
   * @example
   * ```ts
   * subscriber.start(savedCursor);
   * ```
   */
  start(cursor?: string): this {
    if (this.#state !== 'idle') return this;
    if (cursor !== undefined) this.#cursor = cursor;
    this.#link = linkSignals(this.#userSignal);
    if (this.#link.signal.aborted) {
      this.#finish('aborted', abortReason(this.#link.signal));
      return this;
    }
    this.#removeAbort = onAbort(this.#link.signal, this.#onAbort);
    this.#connect();
    return this;
  }

  /**
   * Ends the subscriber: closes the connection, cancels every timer, drops queued sends, ends the
   * iterators and emits `gone` with reason `closed`. Idempotent.
   *
   * @example
   * ```ts
   * subscriber.close();
   * ```
   */
  close(): void {
    this.#finish('closed', undefined);
  }

  /**
   * Sends `data` over the connection where the transport allows it (WebSocket). While reconnecting the
   * message waits in a bounded queue and goes out, in order, when the next connection opens.
   *
   * @example
   * ```ts
   * const receipt = subscriber.send(JSON.stringify({ type: 'typing' }));
   * if (receipt.status === 'dropped') console.warn('outbound queue full');
   * console.log(await receipt.settled); // "sent" | "dropped" | "unknown"
   * ```
   */
  send(data: string): SendReceipt {
    if (typeof data !== 'string') throw new InvalidArgumentError('Subscriber.send takes a string', 'data');
    let resolve!: (status: 'sent' | 'dropped' | 'unknown') => void;
    const settled = new Promise<'sent' | 'dropped' | 'unknown'>((r) => (resolve = r));
    const item: Outbound = { data, status: 'queued', upTo: 0, resolve };
    const receipt: SendReceipt = {
      get status() {
        return item.status;
      },
      settled,
    };
    const canSend = this.#settled === undefined ? this.#transports.some((t) => t.canSend) : this.#settled.canSend;
    if (this.#state === 'closed' || !canSend) {
      this.#settle(item, 'dropped');
    } else if (this.#state === 'open' && this.#connection?.send !== undefined && this.#queue.length === 0) {
      this.#handOff(item);
    } else if (this.#queue.length >= this.#sendQueueLimit) {
      this.#settle(item, 'dropped');
    } else {
      this.#queue.push(item);
    }
    return receipt;
  }

  /**
   * The messages from now on as an async iterator. It ends when the subscriber is closed or stopped
   * cleanly, and throws the failure when it gives up; breaking out of the loop detaches the iterator
   * without closing the subscriber.
   *
   * @example
   * ```ts
   * for await (const message of subscriber.messages()) {
   *   if (message.data === 'bye') break;
   * }
   * ```
   */
  messages(): AsyncIterableIterator<SubscriberMessage<T>> {
    const state: IteratorState<T> = { buffer: [], wake: undefined, overflow: undefined };
    if (this.#gone === undefined) this.#iterators.add(state);
    const detach = (): void => {
      this.#iterators.delete(state);
      state.buffer.length = 0;
    };
    const iterator: AsyncIterableIterator<SubscriberMessage<T>> = {
      next: async () => {
        for (;;) {
          if (state.overflow !== undefined) throw state.overflow;
          const message = state.buffer.shift();
          if (message !== undefined) return { done: false, value: message };
          const gone = this.#gone;
          if (gone !== undefined || !this.#iterators.has(state)) {
            detach();
            if (gone !== undefined && failed(gone)) throw gone.error;
            return { done: true, value: undefined };
          }
          await new Promise<void>((wake) => (state.wake = wake));
          state.wake = undefined;
        }
      },
      return: async () => {
        detach();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** Same as {@link Subscriber.messages}. */
  [Symbol.asyncIterator](): AsyncIterableIterator<SubscriberMessage<T>> {
    return this.messages();
  }

  /**
   * Resolves with the payload of the next `event`; rejects if the subscriber ends first (unless the
   * event is `gone`) or `signal` aborts. Its listeners are removed however it settles.
   *
   * @example
   * ```ts
   * const { transport } = await subscriber.waitFor('open');
   * ```
   */
  waitFor<E extends 'open' | 'close' | 'reconnecting' | 'fallback' | 'gone' | 'commit' | 'message'>(
    event: E,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<SubscriberEvents<T>[E][0]> {
    return nextEvent(this as unknown as Emitter<EventMap>, event, 'gone', () => this.#gone, goneError, options);
  }

  // ---- connection lifecycle -------------------------------------------------------------------

  readonly #onAbort = (): void => {
    this.#finish('aborted', this.#link === undefined ? undefined : abortReason(this.#link.signal));
  };

  #connect(): void {
    this.#reconnectTimer = undefined;
    if (this.#state === 'closed') return;
    this.#state = 'connecting';
    this.#openPending = false;
    this.#stableReached = false;
    const token = ++this.#token;
    const transport = this.#currentTransport();
    const controller = new AbortController();
    this.#controller = controller;
    if (this.#connectTimeout > 0) {
      this.#connectTimer = this.#clock.setTimeout(() => this.#drop(token, 'connect-timeout'), this.#connectTimeout, {
        unref: true,
      });
    }
    const live = (): boolean => token === this.#token;
    let connection: TransportConnection | undefined;
    try {
      connection = transport.connect(
        { cursor: this.#cursor, signal: controller.signal, clock: this.#clock },
        {
          opened: () => {
            if (!live() || this.#state !== 'connecting') return;
            if (this.#connection === undefined) this.#openPending = true;
            else this.#opened(transport);
          },
          message: (message) => {
            if (live()) this.#onMessage(transport, message);
          },
          activity: () => {
            if (live()) this.#lastActivity = this.#clock.now();
          },
          retryHint: (ms) => {
            if (live() && Number.isFinite(ms) && ms >= 0) this.#serverRetryMs = ms;
          },
          closed: (close) => {
            if (live()) this.#onClosed(transport, close);
          },
        },
      );
    } catch (error) {
      if (live()) this.#onClosed(transport, { reason: 'error', error });
      return;
    }
    if (!live()) {
      // The transport failed synchronously and a successor may already be running; this one is done.
      connection.close();
      return;
    }
    this.#connection = connection;
    if (this.#openPending) this.#opened(transport);
  }

  #currentTransport(): Transport<T> {
    return this.#settled ?? this.#transports[this.#index]!;
  }

  #opened(transport: Transport<T>): void {
    this.#openPending = false;
    this.#state = 'open';
    this.#settled ??= transport;
    this.#unavailableInRound = 0;
    this.#clear('connect');
    this.#lastActivity = this.#clock.now();
    const token = this.#token;
    if (this.#stableAfter === 0) this.#stable(token);
    else this.#stableTimer = this.#clock.setTimeout(() => this.#stable(token), this.#stableAfter, { unref: true });
    const connection = this.#connection!;
    if (connection.heartbeats && this.#idleTimeout > 0) this.#armIdle(token, this.#idleTimeout);
    if (connection.ping !== undefined && this.#pingInterval > 0) this.#armPing(token);
    this.#handedBytes = 0;
    if (!transport.canSend) {
      for (const item of this.#queue.splice(0)) this.#settle(item, 'dropped');
    }
    this.#safeEmit('open', { transport: transport.name, cursor: this.#cursor, attempt: this.#schedule.attempt });
    this.#flushQueue();
  }

  #stable(token: number): void {
    this.#stableTimer = undefined;
    if (token !== this.#token) return;
    this.#schedule.reset();
    this.#stableReached = true;
    this.#unstable = 0;
    if (this.#stepUpFrom !== undefined) {
      // The preferred transport held: the step up succeeded.
      this.#stepUpFrom = undefined;
      this.#stepUpDelay = this.#stepUpAfter;
    }
    if (this.#index > 0 && this.#stepUpAfter > 0) {
      this.#stepUpTimer = this.#clock.setTimeout(() => this.#stepUp(token), this.#stepUpDelay, { unref: true });
    }
  }

  #stepUp(token: number): void {
    this.#stepUpTimer = undefined;
    if (token !== this.#token || this.#state !== 'open') return;
    const from = this.#currentTransport();
    const connection = this.#connection;
    this.#token++;
    this.#releaseConnection();
    try {
      connection?.close();
    } catch {
      // Leaving a working connection on purpose; a failure to close it changes nothing.
    }
    this.#safeEmit('close', { transport: from.name, reason: 'step-up', error: undefined, wasOpen: true });
    if ((this.#state as SubscriberState) === 'closed') return;
    this.#stepUpFrom = this.#index;
    this.#switchTo(0, from, 'step-up', undefined);
    this.#connect();
  }

  /** Makes transport `index` the one in use (settled), announcing the move. */
  #switchTo(index: number, from: Transport<T>, reason: string, error: unknown): void {
    this.#index = index;
    this.#unstable = 0;
    const to = this.#transports[index]!;
    this.#settled = to;
    this.#safeEmit('fallback', { from: from.name, to: to.name, reason, error });
  }

  #armIdle(token: number, ms: number): void {
    this.#idleTimer = this.#clock.setTimeout(
      () => {
        this.#idleTimer = undefined;
        if (token !== this.#token) return;
        // One timer per connection, re-armed for the remainder, rather than one reset per chunk.
        const silent = this.#clock.now() - this.#lastActivity;
        if (silent >= this.#idleTimeout) this.#drop(token, 'idle-timeout');
        else this.#armIdle(token, this.#idleTimeout - silent);
      },
      ms,
      { unref: true },
    );
  }

  #armPing(token: number): void {
    this.#pingTimer = this.#clock.setTimeout(
      () => {
        this.#pingTimer = undefined;
        if (token !== this.#token) return;
        try {
          this.#connection?.ping?.();
        } catch (error) {
          this.#safeEmit('error', error);
        }
        this.#armPing(token);
      },
      this.#pingInterval,
      { unref: true },
    );
  }

  /** Ends the current connection from our side (a timeout) and handles it like any other close. */
  #drop(token: number, reason: string): void {
    if (token !== this.#token) return;
    const connection = this.#connection;
    const transport = this.#currentTransport();
    this.#onClosed(transport, { reason });
    try {
      connection?.close();
    } catch {
      // Closing a broken connection may throw; it is being discarded either way.
    }
  }

  #onMessage(transport: Transport<T>, message: TransportMessage<T>): void {
    this.#lastActivity = this.#clock.now();
    if (this.#state === 'connecting') {
      // A transport that skipped `opened` is open all the same once data flows.
      if (this.#connection === undefined) this.#openPending = true;
      else this.#opened(transport);
    }
    this.#checkFlushed();
    const { id } = message;
    if (id !== undefined && this.#seen.has(id)) return;
    const delivered: SubscriberMessage<T> = {
      data: message.data,
      id,
      event: message.event,
      transport: transport.name,
    };
    this.#safeEmit('message', delivered);
    for (const iterator of this.#iterators) {
      if (iterator.buffer.length >= this.#iteratorBufferLimit) {
        // A consumer this far behind is cut loose rather than allowed to grow memory without bound.
        this.#iterators.delete(iterator);
        iterator.buffer.length = 0;
        iterator.overflow = new OverloadedError(
          `The subscriber's iterator fell ${this.#iteratorBufferLimit} messages behind and was ended`,
        );
      } else {
        iterator.buffer.push(delivered);
      }
      iterator.wake?.();
    }
    // Committed only now, after every listener and iterator has the message: a cut before this line
    // makes the resume ask for it again, a cut after it never repeats it.
    if (id !== undefined) {
      this.#remember(id);
      this.#cursor = id;
      this.#safeEmit('commit', { cursor: id });
    }
  }

  #remember(id: string): void {
    if (this.#dedupeWindow === 0) return;
    this.#seen.add(id);
    if (this.#seenOrder.length < this.#dedupeWindow) {
      this.#seenOrder.push(id);
      return;
    }
    // A ring: the oldest id leaves as the newest arrives, so memory stays at the window's size.
    const evicted = this.#seenOrder[this.#seenHead]!;
    this.#seen.delete(evicted);
    this.#seenOrder[this.#seenHead] = id;
    this.#seenHead = (this.#seenHead + 1) % this.#dedupeWindow;
  }

  #onClosed(transport: Transport<T>, close: TransportClose): void {
    if (this.#state === 'closed') return;
    const wasOpen = this.#state === 'open';
    this.#token++;
    this.#releaseConnection();
    this.#lastError = close.error ?? this.#lastError;
    this.#safeEmit('close', { transport: transport.name, reason: close.reason, error: close.error, wasOpen });
    // A close listener may have closed the subscriber.
    if ((this.#state as SubscriberState) === 'closed') return;
    if (close.stop === true) {
      this.#finish('stopped', close.error);
      return;
    }
    if (this.#settled === undefined && !wasOpen) {
      const last = this.#index === this.#transports.length - 1;
      if (close.unavailable === true) {
        this.#unavailableInRound++;
        if (this.#unavailableInRound >= this.#transports.length) {
          this.#finish(
            'unavailable',
            new PollkitError('No transport is available', 'no-transport', { cause: close.error }),
          );
          return;
        }
        if (!last) {
          // A transport that cannot work here is not a failure of the server: try the next at once.
          this.#fallback(transport, close);
          this.#connect();
          return;
        }
      }
      // An ambiguous failure before anything opened (a down server looks like a blocked upgrade):
      // rotate to the next transport on the backoff schedule, cycling, until one opens.
      if (this.#transports.length > 1) this.#fallback(transport, close);
    } else if (this.#settled !== undefined && !this.#stableReached && (wasOpen || this.#stepUpFrom !== undefined)) {
      if (this.#stepUpFrom !== undefined) {
        // The preferred transport still fails: back at once to the one that worked, and wait longer.
        const back = this.#stepUpFrom;
        this.#stepUpFrom = undefined;
        this.#stepUpDelay = Math.min(this.#stepUpDelay * 2, 3_600_000);
        this.#switchTo(back, transport, close.reason, close.error);
        this.#connect();
        return;
      }
      this.#unstable++;
      if (
        this.#fallbackAfter > 0 &&
        this.#unstable >= this.#fallbackAfter &&
        this.#index < this.#transports.length - 1
      ) {
        this.#switchTo(this.#index + 1, transport, close.reason, close.error);
      }
    }
    this.#scheduleReconnect(close);
  }

  #fallback(from: Transport<T>, close: TransportClose): void {
    this.#index = (this.#index + 1) % this.#transports.length;
    if (this.#index === 0) this.#unavailableInRound = 0;
    const to = this.#transports[this.#index]!;
    this.#safeEmit('fallback', { from: from.name, to: to.name, reason: close.reason, error: close.error });
  }

  #scheduleReconnect(close: TransportClose): void {
    if (this.#schedule.attempt >= this.#maxRetries) {
      const attempts = this.#schedule.attempt;
      this.#finish(
        'max-retries',
        new PollkitError(`Gave up after ${attempts} reconnect attempts`, 'gave-up', { cause: this.#lastError }),
      );
      return;
    }
    const hints = [close.retryAfterMs, this.#serverRetryMs].filter((h): h is number => h !== undefined && h > 0);
    const hintMs = hints.length === 0 ? undefined : Math.max(...hints);
    const delayMs = this.#schedule.next(hintMs);
    this.#state = 'waiting';
    this.#reconnectTimer = this.#clock.setTimeout(() => this.#connect(), delayMs);
    this.#safeEmit('reconnecting', {
      attempt: this.#schedule.attempt,
      delayMs,
      reason: close.reason,
      error: close.error,
      hintMs,
      transport: this.#currentTransport().name,
    });
  }

  #releaseConnection(): void {
    this.#clear('connect');
    this.#clear('stable');
    this.#clear('idle');
    this.#clear('ping');
    this.#clear('flush');
    this.#clear('stepUp');
    this.#controller?.abort();
    this.#controller = undefined;
    this.#connection = undefined;
    this.#openPending = false;
    for (const item of this.#inFlight.splice(0)) this.#settle(item, 'unknown');
  }

  #clear(which: 'connect' | 'stable' | 'idle' | 'ping' | 'flush' | 'reconnect' | 'stepUp'): void {
    const clock = this.#clock;
    switch (which) {
      case 'connect':
        if (this.#connectTimer !== undefined) clock.clearTimeout(this.#connectTimer);
        this.#connectTimer = undefined;
        break;
      case 'stable':
        if (this.#stableTimer !== undefined) clock.clearTimeout(this.#stableTimer);
        this.#stableTimer = undefined;
        break;
      case 'idle':
        if (this.#idleTimer !== undefined) clock.clearTimeout(this.#idleTimer);
        this.#idleTimer = undefined;
        break;
      case 'ping':
        if (this.#pingTimer !== undefined) clock.clearTimeout(this.#pingTimer);
        this.#pingTimer = undefined;
        break;
      case 'flush':
        if (this.#flushTimer !== undefined) clock.clearTimeout(this.#flushTimer);
        this.#flushTimer = undefined;
        break;
      case 'reconnect':
        if (this.#reconnectTimer !== undefined) clock.clearTimeout(this.#reconnectTimer);
        this.#reconnectTimer = undefined;
        break;
      case 'stepUp':
        if (this.#stepUpTimer !== undefined) clock.clearTimeout(this.#stepUpTimer);
        this.#stepUpTimer = undefined;
        break;
    }
  }

  #finish(reason: GoneReason, error: unknown): void {
    if (this.#state === 'closed') return;
    const connection = this.#connection;
    this.#state = 'closed';
    this.#token++;
    this.#releaseConnection();
    this.#clear('reconnect');
    try {
      connection?.close();
    } catch {
      // Already broken; nothing to release beyond what the abort above did.
    }
    if (this.#link !== undefined) {
      this.#removeAbort?.();
      this.#link.dispose();
      this.#link = undefined;
    }
    for (const item of this.#queue.splice(0)) this.#settle(item, 'dropped');
    const gone: SubscriberGoneEvent = { reason, error };
    this.#gone = gone;
    for (const iterator of this.#iterators) iterator.wake?.();
    this.#iterators.clear();
    this.#safeEmit('gone', gone);
  }

  // ---- outbound ---------------------------------------------------------------------------------

  #flushQueue(): void {
    while (this.#state === 'open' && this.#connection?.send !== undefined && this.#queue.length > 0) {
      this.#handOff(this.#queue.shift()!);
    }
  }

  #handOff(item: Outbound): void {
    const connection = this.#connection!;
    try {
      connection.send!(item.data);
    } catch (error) {
      // The socket refused it synchronously (already closing): it never left, so keep it for the next one.
      this.#queue.unshift(item);
      this.#safeEmit('error', error);
      return;
    }
    this.#handedBytes += utf8(item.data);
    item.upTo = this.#handedBytes;
    item.status = 'buffered';
    this.#inFlight.push(item);
    this.#checkFlushed();
  }

  #checkFlushed(): void {
    if (this.#inFlight.length === 0) return;
    const buffered = this.#connection?.bufferedAmount ?? 0;
    const written = this.#handedBytes - buffered;
    let done = 0;
    while (done < this.#inFlight.length && this.#inFlight[done]!.upTo <= written) done++;
    for (const item of this.#inFlight.splice(0, done)) this.#settle(item, 'sent');
    if (this.#inFlight.length > 0 && this.#flushTimer === undefined && this.#connection !== undefined) {
      this.#flushTimer = this.#clock.setTimeout(
        () => {
          this.#flushTimer = undefined;
          this.#checkFlushed();
        },
        this.#flushCheck,
        { unref: true },
      );
    }
  }

  #settle(item: Outbound, status: 'sent' | 'dropped' | 'unknown'): void {
    item.status = status;
    item.resolve(status);
  }

  #safeEmit<E extends keyof SubscriberEvents<T>>(event: E, payload: SubscriberEvents<T>[E][0]): void {
    try {
      (this.emit as (event: E, payload: unknown) => boolean)(event, payload);
    } catch (error) {
      if (event === 'error') return;
      // A throwing listener must not break the connection's bookkeeping; it is reported, not rethrown.
      try {
        this.emit('error', error);
      } catch {
        // An error listener that throws has nowhere left to report to.
      }
    }
  }
}

function failed(gone: SubscriberGoneEvent): boolean {
  return gone.error !== undefined && gone.reason !== 'closed';
}

function goneError(gone: SubscriberGoneEvent, event: string): unknown {
  return failed(gone)
    ? gone.error
    : new PollkitError(`the subscriber ended before "${event}"`, 'subscriber-closed', { cause: gone.error });
}
