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
import { abortReason, onAbort } from '../core/abort.js';
import { type BackoffPolicy, reconnectBackoff, withHint } from '../core/backoff.js';
import { checkNumber, invalidOption } from '../core/checks.js';
import { type Clock, systemClock, type TimerHandle } from '../core/clock.js';
import { Emitter, type EventMap } from '../core/emitter.js';
import { InvalidArgumentError, OverloadedError, PollkitError } from '../core/errors.js';
import { nextEvent } from './poller-support.js';
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
  /** The policy attempt whose (un-jittered) curve first reaches the spread, so wave two starts after wave one. */
  readonly #skip: number = 0;
  #attempt = 0;
  #policyAttempt = 0;
  #previous: number | undefined;

  constructor(options: ReconnectScheduleOptions = {}) {
    const policy = (this.#policy = options.backoff ?? reconnectBackoff);
    const spread = (this.#spread = options.spreadMs ?? 4600);
    this.#hintSpread = options.hintSpread ?? 0.2;
    this.#random = options.random ?? (() => Math.random());
    checkNumber('ReconnectSchedule', 'spreadMs', spread, 0);
    checkNumber('ReconnectSchedule', 'hintSpread', this.#hintSpread, 0);
    const { initial, factor, max, flatFor } = policy.options;
    if (spread > 0) {
      for (; this.#skip < 64; this.#skip++) {
        const curve = Math.min(max, initial * factor ** Math.max(0, this.#skip - (flatFor ?? 0)));
        if (curve >= spread || curve >= max) break;
      }
    }
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
    const random = this.#random;
    if (this.#attempt++ === 0 && this.#spread > 0) {
      const spread = random() * this.#spread;
      this.#policyAttempt = this.#skip;
      this.#previous = spread;
      // A hint moves the whole window up instead of collapsing it into the hint's narrow band: every
      // client of a restarted server got the same SSE "retry: 3000", and [3000, 3600] is a herd again.
      return hintMs! > 0 && hintMs! < Infinity ? hintMs! + spread : spread;
    }
    const delay = this.#policy.delay(this.#policyAttempt++, this.#previous, random);
    this.#previous = delay;
    return withHint(delay, hintMs, random, this.#hintSpread);
  }

  /** Starts over: the next delay is the spread again. */
  reset(): void {
    this.#attempt = this.#policyAttempt = 0;
    this.#previous = undefined;
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

/** The numeric options with their defaults and least values, in the order they are checked. */
const NUMBERS = {
  fallbackAfter: [3, 0],
  stepUpAfterMs: [60_000, 0],
  stableAfterMs: [10_000, 0],
  maxRetries: [Infinity, 0],
  connectTimeoutMs: [20_000, 0],
  idleTimeoutMs: [45_000, 0],
  pingIntervalMs: [15_000, 0],
  dedupeWindow: [1024, 0],
  sendQueueLimit: [1000, 0],
  iteratorBufferLimit: [10_000, 1],
  flushCheckMs: [50, 1],
} as const;

type Settings = { -readonly [K in keyof typeof NUMBERS]: number };

/** The subscriber's timers, one of each at most; all belong to the current connection but `reconnect`. */
type TimerName = 'connect' | 'stable' | 'idle' | 'ping' | 'flush' | 'reconnect' | 'stepUp';

const OWNER = 'Subscriber';
const utf8 = (text: string): number => new TextEncoder().encode(text).byteLength;

/** Closes a connection that is being discarded: one already broken may throw, which changes nothing. */
function discard(connection: TransportConnection | undefined): void {
  try {
    connection?.close();
  } catch {
    // It is being discarded either way.
  }
}

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
  readonly #settings: Readonly<Settings>;
  readonly #userSignal: AbortSignal | undefined;

  #state: SubscriberState = 'idle';
  #index = 0;
  #settled: Transport<T> | undefined;
  #unavailableInRound = 0;
  /** Bumped whenever a connection ends: callbacks of an older connection see a stale token and do nothing. */
  #token = 0;
  #connection: TransportConnection | undefined;
  #controller: AbortController | undefined;
  #openPending = false;
  #serverRetryMs: number | undefined;
  #lastActivity = 0;
  #cursor: string | undefined;
  #lastError: unknown;
  #removeAbort: (() => void) | undefined;

  #stepUpDelay: number;
  #stepUpFrom: number | undefined;
  #unstable = 0;
  #stableReached = false;
  readonly #timers: { [Name in TimerName]?: TimerHandle } = {};

  readonly #seen = new Set<string>();
  readonly #queue: Outbound[] = [];
  #inFlight: Outbound[] = [];
  #handedBytes = 0;
  readonly #iterators = new Set<IteratorState<T>>();
  #gone: SubscriberGoneEvent | undefined;

  constructor(options: SubscriberOptions<T>) {
    super();
    const transports = ([] as readonly Transport<T>[]).concat(options.transports);
    if (transports.length === 0 || transports.some((t) => typeof t?.connect !== 'function')) {
      invalidOption(OWNER, 'transports', 'at least one transport', options.transports);
    }
    this.#transports = transports;
    const clock = (this.#clock = options.clock ?? systemClock);
    // The schedule's options (backoff, spreadMs, hintSpread) are the subscriber's own, by the same names.
    this.#schedule = new ReconnectSchedule({ ...options, random: () => clock.random() });
    const settings = {} as Settings;
    for (const [name, [fallback, min]] of Object.entries(NUMBERS) as [keyof Settings, readonly [number, number]][]) {
      const value = options[name] ?? fallback;
      checkNumber(OWNER, name, value, min);
      settings[name] = value;
    }
    this.#settings = settings;
    this.#stepUpDelay = settings.stepUpAfterMs;
    if (options.cursor !== undefined && typeof options.cursor !== 'string') {
      invalidOption(OWNER, 'cursor', 'a string', options.cursor);
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
    const signal = this.#userSignal;
    if (signal?.aborted) {
      this.#finish('aborted', abortReason(signal));
      return this;
    }
    if (signal) this.#removeAbort = onAbort(signal, () => this.#finish('aborted', abortReason(signal)));
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
    let resolve!: Outbound['resolve'];
    const settled = new Promise<'sent' | 'dropped' | 'unknown'>((r) => (resolve = r));
    const item: Outbound = { data, status: 'queued', upTo: 0, resolve };
    const queue = this.#queue;
    const canSend = this.#settled === undefined ? this.#transports.some((t) => t.canSend) : this.#settled.canSend;
    if (this.#state === 'closed' || !canSend) settle(item, 'dropped');
    else if (this.#state === 'open' && this.#connection?.send && queue.length === 0) this.#handOff(item);
    else if (queue.length >= this.#settings.sendQueueLimit) settle(item, 'dropped');
    else queue.push(item);
    return {
      get status() {
        return item.status;
      },
      settled,
    };
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
    const iterators = this.#iterators;
    if (this.#gone === undefined) iterators.add(state);
    const detach = (): IteratorResult<SubscriberMessage<T>> => {
      iterators.delete(state);
      state.buffer.length = 0;
      return { done: true, value: undefined };
    };
    const iterator: AsyncIterableIterator<SubscriberMessage<T>> = {
      next: async () => {
        for (;;) {
          if (state.overflow) throw state.overflow;
          const message = state.buffer.shift();
          if (message) return { done: false, value: message };
          const gone = this.#gone;
          if (gone || !iterators.has(state)) {
            detach();
            if (gone && failed(gone)) throw gone.error;
            return { done: true, value: undefined };
          }
          await new Promise<void>((wake) => (state.wake = wake));
          state.wake = undefined;
        }
      },
      return: async () => detach(),
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

  #connect(): void {
    if (this.#state === 'closed') return;
    this.#state = 'connecting';
    this.#openPending = this.#stableReached = false;
    const token = ++this.#token;
    const live = (): boolean => token === this.#token;
    const transport = this.#currentTransport();
    const controller = (this.#controller = new AbortController());
    const { connectTimeoutMs } = this.#settings;
    if (connectTimeoutMs > 0) this.#arm('connect', connectTimeoutMs, () => this.#drop(token, 'connect-timeout'));
    let connection: TransportConnection;
    try {
      connection = transport.connect(
        { cursor: this.#cursor, signal: controller.signal, clock: this.#clock },
        {
          opened: () => {
            if (live() && this.#state === 'connecting') this.#open(transport);
          },
          message: (message) => {
            if (live()) this.#onMessage(transport, message);
          },
          activity: () => {
            if (live()) this.#lastActivity = this.#clock.now();
          },
          retryHint: (ms) => {
            if (live() && ms >= 0 && ms < Infinity) this.#serverRetryMs = ms;
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

  /** A transport may report `opened` (or a message) before `connect` returns: open once it has. */
  #open(transport: Transport<T>): void {
    if (this.#connection === undefined) this.#openPending = true;
    else this.#opened(transport);
  }

  #currentTransport(): Transport<T> {
    return this.#settled ?? this.#transports[this.#index]!;
  }

  #opened(transport: Transport<T>): void {
    const { stableAfterMs, idleTimeoutMs, pingIntervalMs } = this.#settings;
    this.#openPending = false;
    this.#state = 'open';
    this.#settled ??= transport;
    this.#unavailableInRound = 0;
    this.#clear('connect');
    this.#lastActivity = this.#clock.now();
    const token = this.#token;
    if (stableAfterMs === 0) this.#stable(token);
    else this.#arm('stable', stableAfterMs, () => this.#stable(token));
    const connection = this.#connection!;
    if (connection.heartbeats && idleTimeoutMs > 0) this.#armIdle(token, idleTimeoutMs);
    if (connection.ping && pingIntervalMs > 0) this.#armPing(token);
    this.#handedBytes = 0;
    if (!transport.canSend) for (const item of this.#queue.splice(0)) settle(item, 'dropped');
    this.#safeEmit('open', { transport: transport.name, cursor: this.#cursor, attempt: this.#schedule.attempt });
    this.#flushQueue();
  }

  #stable(token: number): void {
    if (token !== this.#token) return;
    this.#schedule.reset();
    this.#stableReached = true;
    this.#unstable = 0;
    if (this.#stepUpFrom !== undefined) {
      // The preferred transport held: the step up succeeded.
      this.#stepUpFrom = undefined;
      this.#stepUpDelay = this.#settings.stepUpAfterMs;
    }
    if (this.#index > 0 && this.#settings.stepUpAfterMs > 0) {
      this.#arm('stepUp', this.#stepUpDelay, () => this.#stepUp(token));
    }
  }

  #stepUp(token: number): void {
    if (token !== this.#token || this.#state !== 'open') return;
    const from = this.#currentTransport();
    const connection = this.#connection;
    this.#token++;
    this.#releaseConnection();
    // Leaving a working connection on purpose.
    discard(connection);
    this.#safeEmit('close', { transport: from.name, reason: 'step-up', error: undefined, wasOpen: true });
    if (this.#isClosed()) return;
    this.#stepUpFrom = this.#index;
    this.#switchTo(0, from, 'step-up', undefined);
    this.#connect();
  }

  /** Makes transport `index` the one in use (settled), announcing the move. */
  #switchTo(index: number, from: Transport<T>, reason: string, error: unknown): void {
    this.#index = index;
    this.#unstable = 0;
    this.#settled = this.#transports[index]!;
    this.#emitFallback(from, reason, error);
  }

  #emitFallback(from: Transport<T>, reason: string, error: unknown): void {
    this.#safeEmit('fallback', { from: from.name, to: this.#transports[this.#index]!.name, reason, error });
  }

  #armIdle(token: number, ms: number): void {
    this.#arm('idle', ms, () => {
      if (token !== this.#token) return;
      // One timer per connection, re-armed for the remainder, rather than one reset per chunk.
      const silent = this.#clock.now() - this.#lastActivity;
      const idleTimeoutMs = this.#settings.idleTimeoutMs;
      if (silent >= idleTimeoutMs) this.#drop(token, 'idle-timeout');
      else this.#armIdle(token, idleTimeoutMs - silent);
    });
  }

  #armPing(token: number): void {
    this.#arm('ping', this.#settings.pingIntervalMs, () => {
      if (token !== this.#token) return;
      try {
        this.#connection?.ping?.();
      } catch (error) {
        this.#safeEmit('error', error);
      }
      this.#armPing(token);
    });
  }

  /** Ends the current connection from our side (a timeout) and handles it like any other close. */
  #drop(token: number, reason: string): void {
    if (token !== this.#token) return;
    const connection = this.#connection;
    this.#onClosed(this.#currentTransport(), { reason });
    discard(connection);
  }

  #onMessage(transport: Transport<T>, message: TransportMessage<T>): void {
    this.#lastActivity = this.#clock.now();
    // A transport that skipped `opened` is open all the same once data flows.
    if (this.#state === 'connecting') this.#open(transport);
    this.#checkFlushed();
    const { id } = message;
    if (id !== undefined && this.#seen.has(id)) return;
    const delivered: SubscriberMessage<T> = { data: message.data, id, event: message.event, transport: transport.name };
    this.#safeEmit('message', delivered);
    const limit = this.#settings.iteratorBufferLimit;
    for (const iterator of this.#iterators) {
      if (iterator.buffer.length >= limit) {
        // A consumer this far behind is cut loose rather than allowed to grow memory without bound.
        this.#iterators.delete(iterator);
        iterator.buffer.length = 0;
        iterator.overflow = new OverloadedError(`Iterator fell ${limit} messages behind`);
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
    const seen = this.#seen;
    if (this.#settings.dedupeWindow === 0) return;
    // A Set keeps insertion order: the oldest id leaves as the newest arrives, so memory stays at the
    // window's size (only ids not already in it arrive here).
    seen.add(id);
    if (seen.size > this.#settings.dedupeWindow) seen.delete(seen.values().next().value!);
  }

  #onClosed(transport: Transport<T>, close: TransportClose): void {
    if (this.#isClosed()) return;
    const { reason, error } = close;
    const wasOpen = this.#state === 'open';
    const count = this.#transports.length;
    this.#token++;
    this.#releaseConnection();
    this.#lastError = error ?? this.#lastError;
    this.#safeEmit('close', { transport: transport.name, reason, error, wasOpen });
    // A close listener may have closed the subscriber.
    if (this.#isClosed()) return;
    if (close.stop) return this.#finish('stopped', error);
    if (this.#settled === undefined && !wasOpen) {
      if (close.unavailable) {
        if (++this.#unavailableInRound >= count) {
          return this.#finish(
            'unavailable',
            new PollkitError('No transport is available', 'no-transport', { cause: error }),
          );
        }
        if (this.#index < count - 1) {
          // A transport that cannot work here is not a failure of the server: try the next at once.
          this.#fallback(transport, close);
          return this.#connect();
        }
      }
      // An ambiguous failure before anything opened (a down server looks like a blocked upgrade):
      // rotate to the next transport on the backoff schedule, cycling, until one opens.
      if (count > 1) this.#fallback(transport, close);
    } else if (this.#settled !== undefined && !this.#stableReached && (wasOpen || this.#stepUpFrom !== undefined)) {
      const back = this.#stepUpFrom;
      if (back !== undefined) {
        // The preferred transport still fails: back at once to the one that worked, and wait longer.
        this.#stepUpFrom = undefined;
        this.#stepUpDelay = Math.min(this.#stepUpDelay * 2, 3_600_000);
        this.#switchTo(back, transport, reason, error);
        return this.#connect();
      }
      const fallbackAfter = this.#settings.fallbackAfter;
      if (++this.#unstable >= fallbackAfter && fallbackAfter > 0 && this.#index < count - 1) {
        this.#switchTo(this.#index + 1, transport, reason, error);
      }
    }
    this.#scheduleReconnect(close);
  }

  #fallback(from: Transport<T>, close: TransportClose): void {
    this.#index = (this.#index + 1) % this.#transports.length;
    if (this.#index === 0) this.#unavailableInRound = 0;
    this.#emitFallback(from, close.reason, close.error);
  }

  #scheduleReconnect({ reason, error, retryAfterMs }: TransportClose): void {
    const schedule = this.#schedule;
    if (schedule.attempt >= this.#settings.maxRetries) {
      return this.#finish(
        'max-retries',
        new PollkitError(`${schedule.attempt} reconnects failed`, 'gave-up', { cause: this.#lastError }),
      );
    }
    const hints = [retryAfterMs, this.#serverRetryMs].filter((h): h is number => h! > 0);
    const hintMs = hints.length === 0 ? undefined : Math.max(...hints);
    const delayMs = schedule.next(hintMs);
    this.#state = 'waiting';
    this.#arm('reconnect', delayMs, () => this.#connect());
    this.#safeEmit('reconnecting', {
      attempt: schedule.attempt,
      delayMs,
      reason,
      error,
      hintMs,
      transport: this.#currentTransport().name,
    });
  }

  /** Lets go of the current connection: its timers (no reconnect is ever pending with one), its signal, its unconfirmed sends. */
  #releaseConnection(): void {
    for (const name in this.#timers) this.#clear(name as TimerName);
    this.#controller?.abort();
    this.#controller = this.#connection = undefined;
    this.#openPending = false;
    for (const item of this.#inFlight.splice(0)) settle(item, 'unknown');
  }

  /** Arms timer `name` (unref'd but for the reconnect, which is what keeps a subscriber alive). */
  #arm(name: TimerName, ms: number, callback: () => void): void {
    this.#timers[name] = this.#clock.setTimeout(
      () => {
        this.#timers[name] = undefined;
        callback();
      },
      ms,
      { unref: name !== 'reconnect' },
    );
  }

  #clear(name: TimerName): void {
    const handle = this.#timers[name];
    if (handle !== undefined) this.#clock.clearTimeout(handle);
    this.#timers[name] = undefined;
  }

  // A method, not an inline comparison: TypeScript would narrow #state across the emits above.
  #isClosed(): boolean {
    return this.#state === 'closed';
  }

  #finish(reason: GoneReason, error: unknown): void {
    if (this.#isClosed()) return;
    const connection = this.#connection;
    this.#state = 'closed';
    this.#token++;
    this.#releaseConnection();
    discard(connection);
    this.#removeAbort?.();
    this.#removeAbort = undefined;
    for (const item of this.#queue.splice(0)) settle(item, 'dropped');
    const gone: SubscriberGoneEvent = (this.#gone = { reason, error });
    for (const iterator of this.#iterators) iterator.wake?.();
    this.#iterators.clear();
    this.#safeEmit('gone', gone);
  }

  // ---- outbound ---------------------------------------------------------------------------------

  #flushQueue(): void {
    while (this.#state === 'open' && this.#connection?.send && this.#queue.length > 0)
      this.#handOff(this.#queue.shift()!);
  }

  #handOff(item: Outbound): void {
    try {
      this.#connection!.send!(item.data);
    } catch (error) {
      // The socket refused it synchronously (already closing): it never left, so keep it for the next one.
      this.#queue.unshift(item);
      this.#safeEmit('error', error);
      return;
    }
    item.upTo = this.#handedBytes += utf8(item.data);
    item.status = 'buffered';
    this.#inFlight.push(item);
    this.#checkFlushed();
  }

  #checkFlushed(): void {
    const inFlight = this.#inFlight;
    if (inFlight.length === 0) return;
    const written = this.#handedBytes - (this.#connection?.bufferedAmount ?? 0);
    let done = 0;
    while (done < inFlight.length && inFlight[done]!.upTo <= written) done++;
    for (const item of inFlight.splice(0, done)) settle(item, 'sent');
    if (inFlight.length > 0 && this.#timers.flush === undefined && this.#connection) {
      this.#arm('flush', this.#settings.flushCheckMs, () => this.#checkFlushed());
    }
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

function settle(item: Outbound, status: 'sent' | 'dropped' | 'unknown'): void {
  item.status = status;
  item.resolve(status);
}

function failed(gone: SubscriberGoneEvent): boolean {
  return gone.error !== undefined && gone.reason !== 'closed';
}

function goneError(gone: SubscriberGoneEvent, event: string): unknown {
  return failed(gone)
    ? gone.error
    : new PollkitError(`Ended before ${event}`, 'subscriber-closed', { cause: gone.error });
}
