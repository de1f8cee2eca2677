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
import EventEmitter from 'eventemitter3';
import { abortable, linkSignals, sleep } from '../core/abort.js';
import { type BackoffPolicy, withHint } from '../core/backoff.js';
import { type Clock, systemClock } from '../core/clock.js';
import { AbortedError, InvalidArgumentError, OffsetGoneError, ProtocolError, TimeoutError } from '../core/errors.js';
import { type ActivityOptions, ActivityGate } from './activity.js';
import {
  Channel,
  checkOption,
  type DelayReason,
  type EndInfo,
  type EndReason,
  nextEvent,
  type PauseInfo,
  type PollContext,
  type PollerState,
  type ResumeInfo,
  RetrySchedule,
  type RetryInfo,
  type ScheduleInfo,
  type WaitForOptions,
} from './poller-support.js';
import { RetryBudget } from './retry-budget.js';
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
  /** The retry budget (share one between pollers to budget them together); `false` for none. Default: a `new RetryBudget()` per poller. */
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

function isPolicy(value: unknown): value is BackoffPolicy {
  return typeof value === 'object' && value !== null && typeof (value as BackoffPolicy).delay === 'function';
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
  extends EventEmitter<LongPollerEvents<Item, Cursor>>
  implements AsyncIterable<Item>
{
  readonly #poll: LongPollerOptions<Item, Cursor>['poll'];
  readonly #waitMs: number;
  readonly #requestTimeoutMs: number;
  readonly #minIntervalMs: number;
  readonly #onGone: ((error: OffsetGoneError) => Cursor | undefined) | undefined;
  readonly #failed: ((last: Item) => unknown) | undefined;
  readonly #highWaterMark: number;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #retries: RetrySchedule;
  readonly #gate: ActivityGate;
  readonly #signal: AbortSignal | undefined;
  readonly #controller = new AbortController();
  readonly #channels = new Set<Channel<Item>>();
  readonly #result: Promise<Item | undefined>;
  readonly #ended: Promise<EndInfo>;
  #settle!: (info: EndInfo) => void;
  #state: PollerState = 'idle';
  #endInfo: EndInfo | undefined;
  #halting: { reason: EndReason; error: unknown } | undefined;
  #cursor: Cursor | undefined;
  #last: Item | undefined;
  #attempts = 0;
  #onUserAbort: (() => void) | undefined;

  constructor(options: LongPollerOptions<Item, Cursor>) {
    super();
    if (typeof options !== 'object' || options === null || typeof options.poll !== 'function') {
      throw new InvalidArgumentError(`${OWNER} option "poll" must be a function`, 'poll');
    }
    checkOption(OWNER, 'waitMs', options.waitMs, (v) => Number.isFinite(v) && v >= 0, 'a finite number >= 0');
    const waitMs = options.waitMs ?? 25_000;
    checkOption(
      OWNER,
      'requestTimeoutMs',
      options.requestTimeoutMs,
      (v) => v > waitMs,
      `a number > waitMs (${waitMs}), so held requests are not abandoned`,
    );
    checkOption(
      OWNER,
      'minIntervalMs',
      options.minIntervalMs,
      (v) => Number.isFinite(v) && v >= 0,
      'a finite number >= 0',
    );
    checkOption(
      OWNER,
      'resetAfterSuccesses',
      options.resetAfterSuccesses,
      (v) => Number.isInteger(v) && v >= 1,
      'an integer >= 1',
    );
    checkOption(OWNER, 'maxRetries', options.maxRetries, (v) => v >= 0, 'a number >= 0');
    checkOption(OWNER, 'highWaterMark', options.highWaterMark, (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
    if (options.retry !== undefined && !isPolicy(options.retry)) {
      throw new InvalidArgumentError(`${OWNER} option "retry" must be a backoff policy`, 'retry');
    }
    if (options.budget !== undefined && options.budget !== false && !(options.budget instanceof RetryBudget)) {
      throw new InvalidArgumentError(`${OWNER} option "budget" must be a RetryBudget or false`, 'budget');
    }
    for (const name of ['onGone', 'failed'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'function') {
        throw new InvalidArgumentError(`${OWNER} option "${name}" must be a function`, name);
      }
    }
    this.#poll = options.poll;
    this.#waitMs = waitMs;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? waitMs + 10_000;
    this.#minIntervalMs = options.minIntervalMs ?? 1000;
    this.#onGone = options.onGone;
    this.#failed = options.failed;
    this.#highWaterMark = options.highWaterMark ?? 1000;
    this.#clock = options.clock ?? systemClock;
    const clock = this.#clock;
    this.#random = () => clock.random();
    this.#retries = new RetrySchedule({
      policy: options.retry ?? DEFAULT_RETRY_POLICY,
      random: this.#random,
      budget: options.budget === false ? undefined : (options.budget ?? new RetryBudget({ clock })),
      maxRetries: options.maxRetries ?? Number.POSITIVE_INFINITY,
      resetAfterSuccesses: options.resetAfterSuccesses ?? 2,
    });
    this.#gate = new ActivityGate(options);
    this.#signal = options.signal;
    this.#cursor = options.cursor;
    let resolveResult!: (value: Item | undefined) => void;
    let rejectResult!: (error: unknown) => void;
    let resolveEnded!: (info: EndInfo) => void;
    this.#result = new Promise((resolve, reject) => {
      resolveResult = resolve;
      rejectResult = reject;
    });
    // Nobody may be awaiting result(); its rejection must not surface as an unhandled one.
    this.#result.catch(() => {});
    this.#ended = new Promise((resolve) => {
      resolveEnded = resolve;
    });
    this.#settle = (info) => {
      if (info.reason === 'done') resolveResult(this.#last);
      else rejectResult(info.error);
      resolveEnded(info);
    };
  }

  /** `idle` before `start()`, `running`, then `ended`. */
  get state(): PollerState {
    return this.#state;
  }

  /** Where the next request starts. */
  get cursor(): Cursor | undefined {
    return this.#cursor;
  }

  /** Requests made so far. */
  get attempts(): number {
    return this.#attempts;
  }

  /** Starts polling (the first request goes out at once). Idempotent; a no-op once ended. */
  start(): this {
    if (this.#state !== 'idle') return this;
    this.#state = 'running';
    const signal = this.#signal;
    if (signal !== undefined) {
      if (signal.aborted) {
        this.#finish('aborted', signal.reason ?? new AbortedError());
        return this;
      }
      this.#onUserAbort = () => this.#halt('aborted', signal.reason ?? new AbortedError());
      signal.addEventListener('abort', this.#onUserAbort, { once: true });
    }
    void this.#run();
    return this;
  }

  /** Ends polling, aborting the request in flight. Iterators end normally; `result()` rejects. */
  stop(): void {
    this.#halt('stopped', new AbortedError('The poller was stopped'));
  }

  /**
   * Resolves with the last record when a batch says `done` (the final job snapshot, say); rejects with
   * the error the poller ended with. Starts the poller.
   */
  result(): Promise<Item | undefined> {
    this.start();
    return this.#result;
  }

  /** Resolves (never rejects) with how the poller ended. Does not start it. */
  ended(): Promise<EndInfo> {
    return this.#ended;
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
    return nextEvent(this as unknown as EventEmitter, event, () => this.#endInfo, options);
  }

  /**
   * Yields every record from now on, in order; ends when the poller is done or stopped, throws the
   * error it failed with (an {@link OffsetGoneError}, say). A slow consumer holds the poller back
   * (`highWaterMark`). Starts the poller; breaking out of the loop stops it.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<Item> {
    const channel: Channel<Item> = new Channel(() => {
      this.#channels.delete(channel);
      this.stop();
    });
    if (this.#endInfo !== undefined) {
      closeChannel(channel, this.#endInfo);
      return channel;
    }
    this.#channels.add(channel);
    this.start();
    return channel;
  }

  // A method, not an inline comparison: TypeScript would narrow #state across the awaits in #run.
  #isEnded(): boolean {
    return this.#state === 'ended';
  }

  #halt(reason: EndReason, error: unknown): void {
    if (this.#state === 'ended' || this.#halting !== undefined) return;
    if (this.#state === 'idle') {
      this.#state = 'running';
      this.#finish(reason, error);
      return;
    }
    // End now rather than when the loop next wakes, so that state, events and promises settle
    // synchronously with stop() and with the abort; the loop sees the aborted signal and exits.
    this.#halting = { reason, error };
    this.#controller.abort(error);
    this.#finish(reason, error);
  }

  async #run(): Promise<void> {
    const signal = this.#controller.signal;
    const clock = this.#clock;
    let gonesInARow = 0;
    try {
      for (;;) {
        await this.#whenActive(signal);
        for (const channel of this.#channels) {
          while (channel.size >= this.#highWaterMark && !channel.closed) {
            await channel.waitForRoom(this.#highWaterMark, signal);
          }
        }
        const attempt = ++this.#attempts;
        const previous = this.#cursor;
        this.emit('request', { attempt, cursor: previous });
        const started = clock.now();
        let batch: LongPollBatch<Item, Cursor>;
        try {
          batch = await this.#request(attempt, previous, signal);
        } catch (error) {
          if (signal.aborted) throw error;
          if (OffsetGoneError.is(error)) {
            // A cursor that is gone again right after resuming means onGone is not moving forward:
            // end instead of looping on 410s.
            const resumeFrom = ++gonesInARow > MAX_GONES_IN_A_ROW ? undefined : this.#onGone?.(error);
            this.emit('gone', error, { resumeFrom });
            if (resumeFrom === undefined) {
              this.#finish('failed', error);
              return;
            }
            this.#cursor = resumeFrom;
            this.emit('schedule', { attempt: attempt + 1, delayMs: 0, reason: 'gone' });
            continue;
          }
          const decision = this.#retries.onFailure(error);
          if (!decision.retry) {
            this.#finish('failed', decision.error);
            return;
          }
          const schedule: ScheduleInfo = { attempt: attempt + 1, delayMs: decision.delayMs, reason: decision.reason };
          this.emit('error', error, { ...schedule, failedAttempt: attempt, failures: decision.failures });
          this.emit('schedule', schedule);
          await sleep(decision.delayMs, { signal, clock });
          continue;
        }
        if (this.#isEnded()) return;
        this.#retries.onSuccess();
        gonesInARow = 0;
        const elapsed = clock.now() - started;
        const { records } = batch;
        this.#cursor = batch.cursor;
        this.emit('response', { attempt, records: records.length, durationMs: elapsed });
        if (records.length > 0) {
          this.#last = records[records.length - 1];
          for (const channel of this.#channels) for (const record of records) channel.push(record);
          this.emit('data', records, { attempt, previous, cursor: batch.cursor });
          // A listener of data may have stopped the poller.
          if (this.#isEnded()) return;
        }
        if (batch.done === true) {
          const failure = this.#last === undefined ? undefined : this.#failed?.(this.#last);
          this.#finish(failure === undefined || failure === null ? 'done' : 'failed', failure ?? undefined);
          return;
        }
        let delayMs = 0;
        let reason: DelayReason = 'rearm';
        if (records.length === 0 && elapsed < this.#minIntervalMs) {
          delayMs = this.#minIntervalMs - elapsed;
          reason = 'min-interval';
        }
        const hinted = withHint(delayMs, batch.hintMs, this.#random);
        if (hinted > delayMs) {
          delayMs = hinted;
          reason = 'hint';
        }
        this.emit('schedule', { attempt: attempt + 1, delayMs, reason });
        if (delayMs > 0) await sleep(delayMs, { signal, clock });
      }
    } catch (error) {
      const halting = this.#halting;
      if (signal.aborted && halting !== undefined) this.#finish(halting.reason, halting.error);
      // Anything else is a throwing callback or listener: end rather than spin.
      else this.#finish('failed', error);
    }
  }

  async #request(
    attempt: number,
    cursor: Cursor | undefined,
    signal: AbortSignal,
  ): Promise<LongPollBatch<Item, Cursor>> {
    const timeoutMs = this.#requestTimeoutMs;
    // A per-request signal exists only to carry the request deadline; without one the run's signal does.
    const link = Number.isFinite(timeoutMs) ? linkSignals(signal) : undefined;
    const timer =
      link === undefined
        ? undefined
        : this.#clock.setTimeout(() => link.abort(new TimeoutError(`No answer within ${timeoutMs} ms`)), timeoutMs);
    const requestSignal = link?.signal ?? signal;
    try {
      const answer = Promise.resolve().then(() =>
        this.#poll({ signal: requestSignal, attempt, cursor, waitMs: this.#waitMs }),
      );
      const batch = await abortable(answer, requestSignal);
      if (typeof batch !== 'object' || batch === null || !Array.isArray(batch.records)) {
        throw new ProtocolError(`${OWNER}: the poll function must resolve with { records: [], cursor }`);
      }
      return batch;
    } finally {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
      link?.dispose();
    }
  }

  async #whenActive(signal: AbortSignal): Promise<void> {
    const reason = this.#gate.pauseReason;
    if (reason === undefined) return;
    const pausedAt = this.#clock.now();
    this.emit('pause', { reason });
    await this.#gate.whenActive(signal);
    this.emit('resume', { pausedMs: this.#clock.now() - pausedAt });
  }

  #finish(reason: EndReason, error: unknown): void {
    if (this.#isEnded()) return;
    this.#state = 'ended';
    const info: EndInfo = { reason, error, attempts: this.#attempts };
    this.#endInfo = info;
    if (this.#onUserAbort !== undefined) this.#signal?.removeEventListener('abort', this.#onUserAbort);
    this.#gate.dispose();
    if (!this.#controller.signal.aborted) this.#controller.abort(error ?? new AbortedError('The poller ended'));
    for (const channel of this.#channels) closeChannel(channel, info);
    this.#channels.clear();
    this.#settle(info);
    this.emit('end', info);
  }
}

function closeChannel<T>(channel: Channel<T>, info: EndInfo): void {
  if (info.reason === 'done' || info.reason === 'stopped') channel.close();
  else channel.close(info.error, true);
}
