/**
 * Held requests and streams: the slots they take (with the global and per-caller limits), and ending
 * them all on shutdown (internal, not exported from `pollkit/server`).
 *
 * A held long poll is its purgatory operation (`held-polls.ts`); a stream, or a long poll on a
 * `HandlerJobs`/`HandlerTopic` that is not pollkit's own registry, is a {@link Held} entry with an
 * `AbortController` of its own. Both take their place in one intrusive list, so holding costs two
 * fields per request rather than a set entry.
 *
 * @module
 */
import { abortReason } from '../../core/abort.js';
import { AbortedError, PollkitError } from '../../core/errors.js';
import { HEADERS, MEDIA_TYPES, problem } from '../../core/protocol.js';
import type { Call } from './caller.js';
import type { Exchange } from './exchange.js';
import { errorToProblem, problemResponse } from './problems.js';
import { CLIENT_GONE } from './responses.js';
import type { HandlerSettings } from './settings.js';
import { type SseEvent, SseStream } from './sse.js';
import type { PollkitRequest, PollkitResponse } from './types.js';

/** A place in the handler's list of held requests and streams. */
export interface HeldSlot {
  /** The caller it counts against, when the per-caller limit is kept. */
  _heldKey: string | undefined;
  _heldPrev: HeldSlot | null;
  _heldNext: HeldSlot | null;
  /** The handler is closing: a poll answers with the current state, a stream sends its last event. */
  _shutdown(reason: PollkitError): void;
}

/** One held stream, or one long poll on a registry that only speaks promises. */
export class Held implements HeldSlot {
  _heldKey: string | undefined;
  _heldPrev: HeldSlot | null = null;
  _heldNext: HeldSlot | null = null;
  readonly #source: AbortSignal;
  readonly #controller = new AbortController();
  /** The handler, not the client, aborted the signal (shutdown, or the stream ended). */
  abortedByHandler = false;
  stream: SseStream | undefined;

  constructor(key: string | undefined, source: AbortSignal) {
    this._heldKey = key;
    this.#source = source;
    if (source.aborted) this.#controller.abort(abortReason(source));
    else source.addEventListener('abort', this);
  }

  /** Aborts when the client leaves, when the handler shuts down, or when {@link Held.abort} is called. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The client's signal aborted. */
  handleEvent(): void {
    this.dispose();
    this.#controller.abort(abortReason(this.#source));
  }

  abort(reason?: unknown): void {
    this.dispose();
    if (this.#controller.signal.aborted) return;
    this.abortedByHandler = true;
    this.#controller.abort(reason ?? new AbortedError());
  }

  _shutdown(reason: PollkitError): void {
    this.abort(reason);
  }

  dispose(): void {
    this.#source.removeEventListener('abort', this);
  }
}

/** Every held request and stream of one handler. */
export class HeldRequests<Context> {
  readonly #settings: HandlerSettings;
  readonly #onError: ((error: unknown, request: PollkitRequest<Context>) => void) | undefined;
  #head: HeldSlot | null = null;
  #size = 0;
  readonly #heldByCaller = new Map<string, number>();
  /** A per-caller limit at or above the global one can never refuse anything, so it is not counted. */
  readonly #perCaller: boolean;
  #closing = false;
  #closed: Promise<void> | undefined;
  #empty: (() => void) | undefined;

  constructor(
    settings: HandlerSettings,
    onError: ((error: unknown, request: PollkitRequest<Context>) => void) | undefined,
  ) {
    this.#settings = settings;
    this.#onError = onError;
    this.#perCaller = settings.maxHeldPerCaller < settings.maxHeldRequests;
  }

  /** How many requests and streams are held right now. */
  get size(): number {
    return this.#size;
  }

  /** True once {@link HeldRequests.close} has been called. */
  get closing(): boolean {
    return this.#closing;
  }

  /** The 503 every request gets once the handler is shutting down. */
  shuttingDown(): PollkitResponse {
    return problemResponse(
      problem('shutting-down', 'The server is shutting down.'),
      this.#settings.heldRetryAfterSeconds,
    );
  }

  /** The key `call` counts against for the per-caller limit, or `undefined` when none is kept. */
  keyOf(call: Call<Context>): string | undefined {
    if (!this.#perCaller) return undefined;
    return call.caller?.id ?? call.caller?.owner ?? call.request.remoteAddress;
  }

  /** Takes a place for `slot`; returns the refusal (503, 429) when a limit is reached, else `undefined`. */
  take(slot: HeldSlot): PollkitResponse | undefined {
    if (this.#closing) return this.shuttingDown();
    const settings = this.#settings;
    if (this.#size >= settings.maxHeldRequests) {
      return problemResponse(
        problem('overloaded', `The server holds its maximum of ${settings.maxHeldRequests} requests.`),
        settings.heldRetryAfterSeconds,
      );
    }
    const key = slot._heldKey;
    if (key !== undefined) {
      const count = this.#heldByCaller.get(key) ?? 0;
      if (count >= settings.maxHeldPerCaller) {
        return problemResponse(
          problem('too-many-held-requests', `This caller already holds ${count} requests.`),
          settings.heldRetryAfterSeconds,
        );
      }
      this.#heldByCaller.set(key, count + 1);
    }
    const head = this.#head;
    slot._heldPrev = null;
    slot._heldNext = head;
    if (head !== null) head._heldPrev = slot;
    this.#head = slot;
    this.#size++;
    return undefined;
  }

  /** Gives `slot`'s place back; does nothing when it holds none. */
  leave(slot: HeldSlot): void {
    const prev = slot._heldPrev;
    const next = slot._heldNext;
    if (prev === null && this.#head !== slot) return;
    if (prev === null) this.#head = next;
    else prev._heldNext = next;
    if (next !== null) next._heldPrev = prev;
    slot._heldPrev = slot._heldNext = null;
    this.#size--;
    const key = slot._heldKey;
    if (key !== undefined) {
      const count = (this.#heldByCaller.get(key) ?? 1) - 1;
      if (count <= 0) this.#heldByCaller.delete(key);
      else this.#heldByCaller.set(key, count);
    }
    if (this.#size === 0 && this.#empty !== undefined) this.#empty();
  }

  /** A held stream's entry, or the refusal when no place is left. */
  enter(call: Call<Context>): Held | PollkitResponse {
    const entry = new Held(this.keyOf(call), call.request.signal);
    const refusal = this.take(entry);
    if (refusal === undefined) return entry;
    entry.dispose();
    return refusal;
  }

  /**
   * Runs a promise-only wait (a registry that is not pollkit's own) in a held slot. A client hang-up
   * yields {@link CLIENT_GONE}; a shutdown answers with `current()`, the state as it is now.
   */
  async hold<T>(
    call: Call<Context>,
    wait: (signal: AbortSignal) => Promise<T>,
    current: () => Promise<T>,
  ): Promise<T | PollkitResponse> {
    // Arrived before close() but reached its wait after: answered like the ones close() found waiting.
    if (this.#closing) return await current();
    const entry = this.enter(call);
    if (!(entry instanceof Held)) return entry;
    try {
      return await wait(entry.signal);
    } catch (error) {
      if (this.#closing && entry.abortedByHandler) return await current();
      if (call.request.signal.aborted) return CLIENT_GONE;
      throw error;
    } finally {
      entry.dispose();
      this.leave(entry);
    }
  }

  /** The answer to a failure: nothing for a client that left, else the problem (5xx reported to `onError`). */
  failure(exchange: Exchange<Context>, error: unknown): PollkitResponse {
    // A body cut off by a hang-up, or a wait ended by one, is nobody's fault and has nobody to tell.
    if (exchange.gone) return CLIENT_GONE;
    const { problem, retryAfterSeconds } = errorToProblem(error);
    if (problem.status >= 500 && problem.code !== 'overloaded' && problem.code !== 'shutting-down') {
      this.#onError?.(error, exchange.request);
    }
    return problemResponse(problem, retryAfterSeconds);
  }

  /** The 200 answer that streams `events` as server-sent events while `entry` holds its slot. */
  stream(entry: Held, call: Call<Context>, events: AsyncGenerator<SseEvent>): PollkitResponse {
    const stream = new SseStream(events, {
      retryMs: this.#settings.sseRetryMs,
      heartbeatMs: this.#settings.heartbeatMs,
      clock: this.#settings.clock,
      // Only the client's hang-up cuts the stream short; a shutdown lets the source send its last event.
      signal: call.request.signal,
      onClose: (error) => {
        entry.abort();
        this.leave(entry);
        if (error !== undefined) this.#onError?.(error, call.request);
      },
    });
    entry.stream = stream;
    return {
      status: 200,
      headers: {
        [HEADERS.contentType]: `${MEDIA_TYPES.eventStream}; charset=utf-8`,
        [HEADERS.cacheControl]: 'no-store',
        'x-accel-buffering': 'no',
      },
      body: stream,
    };
  }

  /**
   * Answers every held request with the current state and lets streams send their last event;
   * resolves once all have left, cutting streams still open after `closeGraceMs`. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#closing = true;
    const all = this.#size === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.#empty = resolve));
    const reason = new PollkitError('The server is shutting down', 'shutting-down');
    for (const slot of this.#slots()) slot._shutdown(reason);
    const clock = this.#settings.clock;
    let timer: unknown;
    const grace = new Promise<'grace'>((resolve) => {
      timer = clock.setTimeout(() => resolve('grace'), this.#settings.closeGraceMs, { unref: true });
    });
    const winner = await Promise.race([all, grace]);
    clock.clearTimeout(timer);
    if (winner === 'grace') {
      for (const slot of this.#slots()) if (slot instanceof Held) void slot.stream?.return();
      await all;
    }
  }

  /** A snapshot of the list: shutting a slot down may make it leave. */
  #slots(): HeldSlot[] {
    const slots: HeldSlot[] = [];
    for (let slot = this.#head; slot !== null; slot = slot._heldNext) slots.push(slot);
    return slots;
  }
}
