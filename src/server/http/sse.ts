/**
 * Server-sent events on the wire: formatting of events and comments, and {@link SseStream}, which turns
 * a source of events into the chunks an adapter writes. It sends `retry:` first, a `: hb` comment after
 * every quiet heartbeat interval so proxies and clients can tell a quiet stream from a dead one, and
 * stops at once (returning its source) when the client leaves, without waiting for the next event.
 *
 * The stream is pull-based: a heartbeat timer only runs while the adapter is waiting for the next
 * chunk, so a slow client exerts back-pressure instead of growing a queue.
 *
 * @module
 */
import { type Clock, type TimerHandle, systemClock } from '../../core/clock.js';
import { InvalidArgumentError } from '../../core/errors.js';

/**
 * One server-sent event.
 *
 * @example
 * ```ts
 * import type { SseEvent } from 'pollkit/server';
 * const event: SseEvent = { id: '7', event: 'state', data: '{"status":"running"}' };
 * ```
 */
export interface SseEvent {
  /** Sent as `id:`; becomes the client's `Last-Event-ID`. */
  readonly id?: string;
  /** Sent as `event:`; absent means the default `message` type. */
  readonly event?: string;
  /** The payload; line breaks become separate `data:` lines. */
  readonly data: string;
}

// A line break inside `id:` or `event:` would let data forge fields, so those are stripped.
const LINE_BREAKS = /\r\n|\r|\n/g;

/**
 * Formats one event as wire text, ending in the blank line that dispatches it.
 *
 * @example
 * ```ts
 * import { formatSseEvent } from 'pollkit/server';
 * console.log(formatSseEvent({ id: '1', data: 'a\nb' })); // "id: 1\ndata: a\ndata: b\n\n"
 * ```
 */
export function formatSseEvent(event: SseEvent): string {
  let text = '';
  if (event.event !== undefined) text += `event: ${event.event.replace(LINE_BREAKS, '')}\n`;
  // The id goes before data so a client that dispatches sees the id and data together.
  if (event.id !== undefined) text += `id: ${event.id.replace(LINE_BREAKS, '').replace(/\0/g, '')}\n`;
  for (const line of event.data.split(LINE_BREAKS)) text += `data: ${line}\n`;
  return `${text}\n`;
}

/**
 * Formats a comment line, which clients ignore; used for heartbeats.
 *
 * @example
 * ```ts
 * import { formatSseComment } from 'pollkit/server';
 * console.log(formatSseComment('hb')); // ": hb\n\n"
 * ```
 */
export function formatSseComment(text: string): string {
  return `: ${text.replace(LINE_BREAKS, ' ')}\n\n`;
}

/** Options for {@link SseStream}. */
export interface SseStreamOptions {
  /** Reconnection delay sent once as `retry:`, in milliseconds. Omit to send none. */
  readonly retryMs?: number;
  /** Quiet time after which a `: hb` comment is sent, in milliseconds; 0 disables. Default 15 000. */
  readonly heartbeatMs?: number;
  /** Time source for heartbeats. Default `systemClock`. */
  readonly clock?: Clock;
  /** Ends the stream when aborted (the client disconnected or the server is closing). */
  readonly signal?: AbortSignal;
  /** Called exactly once when the stream ends, however it ends. */
  readonly onClose?: (error?: unknown) => void;
}

type Raced<T> =
  { readonly kind: 'result'; readonly result: IteratorResult<T> } | { readonly kind: 'error'; readonly error: unknown };

/**
 * Chunks of a server-sent event stream: `retry:` first, then each event of `source`, with heartbeat
 * comments during quiet spells. Ends when the source ends or fails, when `signal` aborts, or when
 * `return()` is called; in the last two cases the source's `return()` is called too.
 *
 * @example
 * ```ts
 * import { SseStream } from 'pollkit/server';
 *
 * async function* ticks() {
 *   yield { id: '1', data: 'one' };
 * }
 * for await (const chunk of new SseStream(ticks(), { retryMs: 2000 })) process.stdout.write(chunk);
 * ```
 */
export class SseStream implements AsyncIterableIterator<string> {
  readonly #source: AsyncIterator<SseEvent>;
  readonly #clock: Clock;
  readonly #heartbeatMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #onClose: ((error?: unknown) => void) | undefined;
  #prelude: string | undefined;
  #pending: Promise<Raced<SseEvent>> | undefined;
  #wake: (() => void) | undefined;
  #done = false;

  constructor(source: AsyncIterable<SseEvent>, options: SseStreamOptions = {}) {
    const heartbeatMs = options.heartbeatMs ?? 15_000;
    if (!(Number.isFinite(heartbeatMs) && heartbeatMs >= 0)) {
      throw new InvalidArgumentError(`heartbeatMs must be a finite number >= 0, got ${heartbeatMs}`, 'heartbeatMs');
    }
    if (options.retryMs !== undefined && !(Number.isInteger(options.retryMs) && options.retryMs >= 0)) {
      throw new InvalidArgumentError(`retryMs must be an integer >= 0, got ${options.retryMs}`, 'retryMs');
    }
    this.#source = source[Symbol.asyncIterator]();
    this.#clock = options.clock ?? systemClock;
    this.#heartbeatMs = heartbeatMs;
    this.#signal = options.signal;
    this.#onClose = options.onClose;
    this.#prelude = options.retryMs === undefined ? undefined : `retry: ${options.retryMs}\n\n`;
    if (this.#signal?.aborted === true) this.#finish(true);
    else this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** True once the stream has ended. */
  get closed(): boolean {
    return this.#done;
  }

  /** The stream is its own iterator. */
  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The next chunk: `retry:`, an event, or a heartbeat; done once the stream has ended. */
  async next(): Promise<IteratorResult<string>> {
    if (this.#done) return { done: true, value: undefined };
    if (this.#prelude !== undefined) {
      const prelude = this.#prelude;
      this.#prelude = undefined;
      return { done: false, value: prelude };
    }
    this.#pending ??= this.#source.next().then(
      (result): Raced<SseEvent> => ({ kind: 'result', result }),
      (error: unknown): Raced<SseEvent> => ({ kind: 'error', error }),
    );
    let timer: TimerHandle | undefined;
    const interrupted = new Promise<'heartbeat' | 'wake'>((resolve) => {
      this.#wake = () => resolve('wake');
      if (this.#heartbeatMs > 0) {
        timer = this.#clock.setTimeout(() => resolve('heartbeat'), this.#heartbeatMs, { unref: true });
      }
    });
    try {
      const winner = await Promise.race([this.#pending, interrupted]);
      if (this.#done || winner === 'wake') return { done: true, value: undefined };
      if (winner === 'heartbeat') return { done: false, value: formatSseComment('hb') };
      this.#pending = undefined;
      if (winner.kind === 'error') {
        this.#finish(false, winner.error);
        return { done: true, value: undefined };
      }
      if (winner.result.done === true) {
        this.#finish(false);
        return { done: true, value: undefined };
      }
      return { done: false, value: formatSseEvent(winner.result.value) };
    } finally {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
      this.#wake = undefined;
    }
  }

  /** Ends the stream at once and returns its source (the adapter calls this when the client leaves). */
  async return(): Promise<IteratorResult<string>> {
    this.#finish(true);
    return { done: true, value: undefined };
  }

  readonly #onAbort = (): void => {
    this.#finish(true);
  };

  #finish(stopSource: boolean, error?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#wake?.();
    // The source may be parked on a wait that only its own signal ends; return() is a courtesy that
    // lets generators run their finally blocks once that wait settles.
    if (stopSource) void this.#source.return?.().catch(() => {});
    this.#onClose?.(error);
  }
}
