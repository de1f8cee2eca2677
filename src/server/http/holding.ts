/**
 * Held requests and streams: the slots they take (with the global and per-caller limits), waiting in
 * them, and ending them all on shutdown (internal, not exported from `pollkit/server`).
 *
 * A long poll whose adapter offered its request's controller (see `request-abort.ts`) waits on the
 * request's own signal; otherwise its entry links a signal of its own, being itself the abort listener
 * (`handleEvent`) so the link costs no closures. The handler keeps thousands of these at once.
 *
 * @module
 */
import { abortReason } from '../../core/abort.js';
import { AbortedError, PollkitError } from '../../core/errors.js';
import { HEADERS, MEDIA_TYPES, problem } from '../../core/protocol.js';
import type { Call } from './caller.js';
import { problemResponse } from './problems.js';
import { offeredController } from './request-abort.js';
import { CLIENT_GONE } from './responses.js';
import type { HandlerSettings } from './settings.js';
import { type SseEvent, SseStream } from './sse.js';
import type { PollkitRequest, PollkitResponse } from './types.js';

/** One held request or stream. */
export class Held {
  readonly key: string | undefined;
  readonly #source: AbortSignal;
  readonly #controller: AbortController;
  /** True when `#controller` is the entry's own, listening to `#source`. */
  readonly #linked: boolean;
  /** The handler, not the client, aborted the signal (shutdown, or the stream ended). */
  abortedByHandler = false;
  /** Made only when `close()` has to wait for this request, not for every held request. */
  settled: Promise<void> | undefined;
  settle: (() => void) | undefined;
  stream: SseStream | undefined;

  constructor(key: string | undefined, source: AbortSignal, shared: AbortController | undefined) {
    this.key = key;
    this.#source = source;
    this.#linked = shared === undefined;
    this.#controller = shared ?? new AbortController();
    if (shared !== undefined) return;
    if (source.aborted) this.#controller.abort(abortReason(source));
    else source.addEventListener('abort', this);
  }

  /** Aborts when the client leaves, when the handler shuts down, or when {@link Held.abort} is called. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The client's signal aborted (linked entries only). */
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

  dispose(): void {
    if (this.#linked) this.#source.removeEventListener('abort', this);
  }

  /** Resolves once the request has left the handler. */
  whenSettled(): Promise<void> {
    this.settled ??= new Promise<void>((resolve) => {
      this.settle = resolve;
    });
    return this.settled;
  }
}

/** Every held request and stream of one handler. */
export class HeldRequests<Context> {
  readonly #settings: HandlerSettings;
  readonly #onError: ((error: unknown, request: PollkitRequest<Context>) => void) | undefined;
  readonly #held = new Set<Held>();
  readonly #heldByCaller = new Map<string, number>();
  #closing = false;
  #closed: Promise<void> | undefined;
  /** What `close()` aborted held requests with; a request signal aborted with it is no hang-up. */
  #shutdownReason: unknown;

  constructor(
    settings: HandlerSettings,
    onError: ((error: unknown, request: PollkitRequest<Context>) => void) | undefined,
  ) {
    this.#settings = settings;
    this.#onError = onError;
  }

  /** How many requests and streams are held right now. */
  get size(): number {
    return this.#held.size;
  }

  /** True once {@link HeldRequests.close} has been called. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Whether `request` was aborted by the shutdown rather than by its client. */
  abortedByShutdown(request: PollkitRequest<Context>): boolean {
    return request.signal.reason === this.#shutdownReason;
  }

  /** The 503 every request gets once the handler is shutting down. */
  shuttingDown(): PollkitResponse {
    return problemResponse(
      problem('shutting-down', 'The server is shutting down.'),
      this.#settings.heldRetryAfterSeconds,
    );
  }

  /** Takes a held slot; `shareSignal` (one-shot waits, never streams) waits on the request's own signal if offered. */
  enter(call: Call<Context>, shareSignal = false): Held | PollkitResponse {
    if (this.#closing) return this.shuttingDown();
    const settings = this.#settings;
    if (this.#held.size >= settings.maxHeldRequests) {
      return problemResponse(
        problem('overloaded', `The server holds its maximum of ${settings.maxHeldRequests} requests.`),
        settings.heldRetryAfterSeconds,
      );
    }
    const key = call.caller?.id ?? call.caller?.owner ?? call.request.remoteAddress;
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
    const shared = shareSignal ? offeredController(call.request) : undefined;
    const entry = new Held(key, call.request.signal, shared);
    this.#held.add(entry);
    return entry;
  }

  leave(entry: Held): void {
    if (!this.#held.delete(entry)) return;
    entry.dispose();
    if (entry.key !== undefined) {
      const count = (this.#heldByCaller.get(entry.key) ?? 1) - 1;
      if (count <= 0) this.#heldByCaller.delete(entry.key);
      else this.#heldByCaller.set(entry.key, count);
    }
    entry.settle?.();
  }

  /**
   * Runs a wait in a held slot. A client hang-up yields {@link CLIENT_GONE}; a shutdown answers with
   * `current()`, the state as it is now.
   */
  async hold<T>(
    call: Call<Context>,
    wait: (signal: AbortSignal) => Promise<T>,
    current: () => Promise<T>,
  ): Promise<T | PollkitResponse> {
    // Arrived before close() but reached its wait after: answered like the ones close() found waiting.
    if (this.#closing) return await current();
    const entry = this.enter(call, true);
    if (!(entry instanceof Held)) return entry;
    try {
      return await wait(entry.signal);
    } catch (error) {
      if (this.#closing && entry.abortedByHandler) return await current();
      if (call.request.signal.aborted) return CLIENT_GONE;
      if (this.#closing && entry.signal.aborted) return await current();
      throw error;
    } finally {
      this.leave(entry);
    }
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
   * Aborts every held request (each answers with the current state) and lets streams send their last
   * event; resolves once all have left, cutting streams still open after `closeGraceMs`. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#closing = true;
    const held = [...this.#held];
    const all = Promise.all(held.map((entry) => entry.whenSettled()));
    const reason = new PollkitError('The server is shutting down', 'shutting-down');
    this.#shutdownReason = reason;
    for (const entry of held) entry.abort(reason);
    const clock = this.#settings.clock;
    let timer: unknown;
    const grace = new Promise<'grace'>((resolve) => {
      timer = clock.setTimeout(() => resolve('grace'), this.#settings.closeGraceMs, { unref: true });
    });
    const winner = await Promise.race([all, grace]);
    clock.clearTimeout(timer);
    if (winner === 'grace') {
      for (const entry of this.#held) void entry.stream?.return();
      await all;
    }
  }
}
