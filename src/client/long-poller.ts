/**
 * Long polling: one request always outstanding, re-armed the moment an answer arrives, carrying the
 * cursor (a version, an offset, an opaque token) so nothing is missed or seen twice. Delivery latency
 * is one round trip instead of half an interval, and an idle stream costs one request per server wait
 * instead of one per interval. What makes it safe at fleet scale is on the failure path: jittered
 * backoff that resets only after stable success, a retry budget, and a hot-loop guard for servers
 * that answer "nothing" at once.
 *
 * @module
 */
import { sleep } from '../core/abort.js';
import { type BackoffPolicy, withHint } from '../core/backoff.js';
import type { Clock } from '../core/clock.js';
import { checkFunction, checkNumber } from '../core/checks.js';
import { isPollkitError, type OffsetGoneError, ProtocolError } from '../core/errors.js';
import type { ActivityOptions } from './activity.js';
import { type PollContext, type WaitForOptions, withDeadline } from './poller-support.js';
import type { DelayReason, EndInfo, PauseInfo, ResumeInfo, RetryInfo, ScheduleInfo } from './poller-support.js';
import { PollerLifecycle } from './poller-lifecycle.js';
import type { RetryBudget } from './retry-budget.js';
import { DEFAULT_RETRY_POLICY } from './short-poller.js';

/** What a long-poll function receives. */
export interface LongPollContext<Cursor> extends PollContext<Cursor> {
  /** How long the server should hold the request, in milliseconds (send it as `wait`/`Prefer: wait`). */
  readonly waitMs: number;
}

/** One long-poll answer. An empty `records` array is a normal timeout, not an error. */
export interface LongPollBatch<Item, Cursor> {
  /** The new records, in order. */
  readonly records: readonly Item[];
  /** Where the next request starts (the next offset, the version now held). */
  readonly cursor: Cursor;
  /** True when nothing more will come (a finished job); the poller ends after this batch. Default `false`. */
  readonly done?: boolean;
  /** The server asks for a pause before the next request (`Retry-After`), in milliseconds. */
  readonly hintMs?: number | undefined;
}

/** Options for {@link LongPoller}. */
export interface LongPollerOptions<Item, Cursor> extends ActivityOptions {
  /** Makes one long-poll request from `cursor`, held by the server up to `waitMs`. Required. */
  readonly poll: (context: LongPollContext<Cursor>) => Promise<LongPollBatch<Item, Cursor>>;
  /** The cursor of the first request. Default `undefined` (the poll function decides where to start). */
  readonly cursor?: Cursor;
  /** The server-side wait to ask for, in milliseconds. Default `25000` (under the server's 30 s cap). */
  readonly waitMs?: number;
  /**
   * The client-side deadline of one request; must exceed `waitMs` so that a held request is never
   * abandoned just before its answer. A missed deadline is a retryable failure. Default `waitMs + 10000`.
   */
  readonly requestTimeoutMs?: number;
  /**
   * The least time between the starts of two requests after an empty answer: a server that ignores
   * `wait` and answers "nothing" at once would otherwise be hit in a tight loop. Answers with records
   * re-arm at once regardless. Default `1000`.
   */
  readonly minIntervalMs?: number;
  /** The delay policy after retryable failures; the server's `Retry-After` is a floor. Default `DEFAULT_RETRY_POLICY`. */
  readonly retry?: BackoffPolicy;
  /**
   * Successful answers in a row after which the backoff starts over. Above 1, a server that fails every
   * other request keeps the backoff growing instead of resetting it each time. Default `2`.
   */
  readonly resetAfterSuccesses?: number;
  /** Consecutive retryable failures tolerated before ending with code `retries-exhausted`. Default `Infinity`. */
  readonly maxRetries?: number;
  /** The retry budget (share one between pollers to budget them together); `false` for none. Default: one per poller, as `new RetryBudget()` would be. */
  readonly budget?: RetryBudget | false;
  /**
   * Decides what to do when the cursor is gone (an {@link OffsetGoneError}: trimmed by retention, or
   * the log was reset): return the cursor to resume from, knowingly, or `undefined` to end the poller
   * with the error. The `gone` event fires either way. Default: end.
   */
  readonly onGone?: (error: OffsetGoneError) => Cursor | undefined;
  /**
   * An error to end with when the final batch's last record is a failure (a failed job); `result()`
   * then rejects with it instead of resolving. Default: none.
   */
  readonly failed?: (last: Item) => unknown;
  /** Records an iterator may hold unread before the poller stops re-arming until it catches up. Default `1000`. */
  readonly highWaterMark?: number;
  /** Ends the poller, including the request in flight. */
  readonly signal?: AbortSignal;
  /** Time and randomness. Default `systemClock`. */
  readonly clock?: Clock;
}

/** Payload of the `request` event. */
export interface LongPollRequestInfo<Cursor> {
  /** Which request this is, counting every request the poller has made from 1. */
  readonly attempt: number;
  /** The cursor the request starts from; `undefined` before the first batch unless a start cursor was given. */
  readonly cursor: Cursor | undefined;
}

/** Payload of the `response` event. */
export interface LongPollResponseInfo {
  /** The request this answers, counting from 1 (matches its `request` event). */
  readonly attempt: number;
  /** How many records the answer carried (0 at a timeout). */
  readonly records: number;
  /** How long the request was held, in milliseconds by the poller's clock. */
  readonly durationMs: number;
}

/** Payload of the `data` event. */
export interface DataInfo<Cursor> {
  /** The request that brought this batch, counting from 1. */
  readonly attempt: number;
  /** The cursor the request was made from. */
  readonly previous: Cursor | undefined;
  /** The cursor after this batch. */
  readonly cursor: Cursor;
}

/** Payload of the `gone` event. */
export interface GoneInfo<Cursor> {
  /** The cursor the poller resumes from, or `undefined` when it ends. */
  readonly resumeFrom: Cursor | undefined;
}

/** The events of a {@link LongPoller}. */
export interface LongPollerEvents<Item, Cursor> {
  /** A request is about to be sent. */
  request: [info: LongPollRequestInfo<Cursor>];
  /** A request was answered (with records or empty). */
  response: [info: LongPollResponseInfo];
  /** A non-empty batch arrived. */
  data: [records: readonly Item[], info: DataInfo<Cursor>];
  /** The next request is scheduled (`delayMs` 0 and reason `rearm` on the happy path). */
  schedule: [info: ScheduleInfo];
  /** A request failed and will be retried after `info.delayMs`. */
  error: [error: unknown, info: RetryInfo];
  /** The cursor is gone; `info.resumeFrom` says where the poller resumes, if it does. */
  gone: [error: OffsetGoneError, info: GoneInfo<Cursor>];
  /** Polling paused (hidden page, offline). */
  pause: [info: PauseInfo];
  /** Polling resumed. */
  resume: [info: ResumeInfo];
  /** The poller ended, however it ended. */
  end: [info: EndInfo];
}

const OWNER = 'LongPoller';
const MAX_GONES_IN_A_ROW = 3;

/**
 * Long-polls from a cursor, emitting each batch and yielding records in order.
 *
 * @example
 * ```ts
 * import { LongPoller } from 'pollkit/client';
 *
 * const poller = new LongPoller<{ id: number }, number>({
 *   cursor: 0,
 *   poll: async ({ cursor, waitMs, signal }) => {
 *     const response = await fetch(`https://example.com/events?after=${cursor}&wait=${waitMs / 1000}`, { signal });
 *     const body = (await response.json()) as { events: { id: number }[]; next: number };
 *     return { records: body.events, cursor: body.next };
 *   },
 * });
 * for await (const event of poller) console.log(event.id);
 * ```
 */
export class LongPoller<Item, Cursor = unknown>
  extends PollerLifecycle<LongPollerEvents<Item, Cursor>, Item, Item | undefined>
  implements AsyncIterable<Item>
{
  readonly #poll: LongPollerOptions<Item, Cursor>['poll'];
  readonly #waitMs: number;
  readonly #requestTimeoutMs: number;
  readonly #minIntervalMs: number;
  readonly #onGone: ((error: OffsetGoneError) => Cursor | undefined) | undefined;
  readonly #failed: ((last: Item) => unknown) | undefined;
  readonly #highWaterMark: number;
  #cursor: Cursor | undefined;
  #last: Item | undefined;

  constructor(options: LongPollerOptions<Item, Cursor>) {
    super(OWNER, options, {
      retry: DEFAULT_RETRY_POLICY,
      resetAfterSuccesses: options?.resetAfterSuccesses ?? 2,
    });
    checkNumber(OWNER, 'waitMs', options.waitMs, 0, 'finite');
    const waitMs = options.waitMs ?? 25_000;
    // Above the wait, so that a held request is never abandoned just before its answer.
    checkNumber(OWNER, 'requestTimeoutMs', options.requestTimeoutMs, waitMs, 'above');
    checkNumber(OWNER, 'minIntervalMs', options.minIntervalMs, 0, 'finite');
    checkNumber(OWNER, 'resetAfterSuccesses', options.resetAfterSuccesses, 1, 'integer');
    checkNumber(OWNER, 'highWaterMark', options.highWaterMark, 1, 'integer');
    checkFunction(OWNER, 'onGone', options.onGone);
    checkFunction(OWNER, 'failed', options.failed);
    this.#poll = options.poll;
    this.#waitMs = waitMs;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? waitMs + 10_000;
    this.#minIntervalMs = options.minIntervalMs ?? 1000;
    this.#onGone = options.onGone;
    this.#failed = options.failed;
    this.#highWaterMark = options.highWaterMark ?? 1000;
    this.#cursor = options.cursor;
  }

  /** Where the next request starts. */
  get cursor(): Cursor | undefined {
    return this.#cursor;
  }

  /** Ends polling, aborting the request in flight. Iterators end normally; `result()` rejects. */
  override stop(): void {
    super.stop();
  }

  /**
   * Resolves with the last record when a batch says `done` (the final job snapshot, say); rejects with
   * the error the poller ended with. Starts the poller.
   */
  result(): Promise<Item | undefined> {
    return this.startForResult();
  }

  /**
   * A promise for the next occurrence of `event` (its first argument); rejects if the poller ends
   * first. Does not start the poller.
   *
   * @example
   * ```ts
   * const records = await poller.start().waitFor('data');
   * ```
   */
  waitFor<E extends keyof LongPollerEvents<Item, Cursor>>(
    event: E,
    options: WaitForOptions = {},
  ): Promise<LongPollerEvents<Item, Cursor>[E][0]> {
    return this.nextEvent(event, options);
  }

  /**
   * Yields every record from now on, in order; ends when the poller is done or stopped, throws the
   * error it failed with (an {@link OffsetGoneError}, say). A slow consumer holds the poller back
   * (`highWaterMark`). Starts the poller; breaking out of the loop stops it.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<Item> {
    return this.openChannel([]);
  }

  /** @internal */
  protected override finalValue(): Item | undefined {
    return this.#last;
  }

  /** @internal */
  protected override async loop(signal: AbortSignal): Promise<void> {
    const clock = this.clock;
    let gonesInARow = 0;
    for (;;) {
      await this.whenActive(signal);
      await this.roomFor(this.#highWaterMark, signal);
      const attempt = this.nextAttempt();
      const previous = this.#cursor;
      this.emit('request', { attempt, cursor: previous });
      const started = clock.now();
      let batch: LongPollBatch<Item, Cursor>;
      try {
        batch = await this.#request(attempt, previous, signal);
      } catch (error) {
        if (signal.aborted) throw error;
        // By code rather than OffsetGoneError.is, so the class (and its message) stays out of the bundle.
        if (isPollkitError(error, 'offset-gone')) {
          const gone = error as OffsetGoneError;
          // A cursor that is gone again right after resuming means onGone is not moving forward:
          // end instead of looping on 410s.
          const resumeFrom = ++gonesInARow > MAX_GONES_IN_A_ROW ? undefined : this.#onGone?.(gone);
          this.emit('gone', gone, { resumeFrom });
          if (resumeFrom === undefined) {
            this.finish('failed', gone);
            return;
          }
          this.#cursor = resumeFrom;
          this.emit('schedule', { attempt: attempt + 1, delayMs: 0, reason: 'gone' });
          continue;
        }
        if (await this.retryAfter(error, attempt, signal)) continue;
        return;
      }
      if (this.isEnded()) return;
      this.recordSuccess();
      gonesInARow = 0;
      const elapsed = clock.now() - started;
      const { records } = batch;
      this.#cursor = batch.cursor;
      this.emit('response', { attempt, records: records.length, durationMs: elapsed });
      if (records.length > 0) {
        this.#last = records[records.length - 1];
        this.deliver(records);
        this.emit('data', records, { attempt, previous, cursor: batch.cursor });
        // A listener of data may have stopped the poller.
        if (this.isEnded()) return;
      }
      if (batch.done === true) {
        const failure = this.#last === undefined ? undefined : this.#failed?.(this.#last);
        this.finish(failure === undefined || failure === null ? 'done' : 'failed', failure ?? undefined);
        return;
      }
      let delayMs = 0;
      let reason: DelayReason = 'rearm';
      if (records.length === 0 && elapsed < this.#minIntervalMs) {
        delayMs = this.#minIntervalMs - elapsed;
        reason = 'min-interval';
      }
      const hinted = withHint(delayMs, batch.hintMs, this.random);
      if (hinted > delayMs) {
        delayMs = hinted;
        reason = 'hint';
      }
      this.emit('schedule', { attempt: attempt + 1, delayMs, reason });
      if (delayMs > 0) await sleep(delayMs, { signal, clock });
    }
  }

  async #request(
    attempt: number,
    cursor: Cursor | undefined,
    signal: AbortSignal,
  ): Promise<LongPollBatch<Item, Cursor>> {
    const batch = await withDeadline(this.clock, this.#requestTimeoutMs, signal, (requestSignal) =>
      this.#poll({ signal: requestSignal, attempt, cursor, waitMs: this.#waitMs }),
    );
    if (typeof batch !== 'object' || batch === null || !Array.isArray(batch.records)) {
      throw new ProtocolError('poll must resolve { records, cursor }');
    }
    return batch;
  }
}
