/**
 * Short polling: ask, wait, ask again, until the answer says "done" or time runs out. The simplest
 * pattern and the one every server supports, so it is also where fleets hurt servers most: the waits
 * here are jittered by default (no two clients in lockstep), grow while nothing changes, honour the
 * server's `Retry-After`/`X-Poll-Interval` as a floor, and failures draw on a retry budget.
 *
 * @module
 */
import EventEmitter from 'eventemitter3';
import { abortable, linkSignals, sleep } from '../core/abort.js';
import { type BackoffPolicy, backoff, withHint } from '../core/backoff.js';
import { type Clock, systemClock } from '../core/clock.js';
import { AbortedError, InvalidArgumentError, TimeoutError } from '../core/errors.js';
import { type ActivityOptions, ActivityGate } from './activity.js';
import {
  Channel,
  checkOption,
  type EndInfo,
  type EndReason,
  jsonEqual,
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

const REPLY = Symbol.for('pollkit.pollReply');

/**
 * An answer with metadata: a value (or "unchanged") plus the server's hint for the next wait. Build one
 * with {@link pollReply} or {@link unchangedReply}; a poll function may also return the bare value.
 */
export type PollReply<T> =
  | {
      /** Brands the object as a reply, so a poll function's bare value is never mistaken for one. */
      readonly [REPLY]: true;
      /** `false`: this reply carries a new answer in `value`. */
      readonly unchanged: false;
      /** The answer to this poll. */
      readonly value: T;
      /** The least time to wait before the next poll, in milliseconds; `undefined` for no hint. */
      readonly hintMs: number | undefined;
    }
  | {
      /** Brands the object as a reply, so a poll function's bare value is never mistaken for one. */
      readonly [REPLY]: true;
      /** `true`: the answer is the same as the last one, so the poller keeps its current value. */
      readonly unchanged: true;
      /** The least time to wait before the next poll, in milliseconds; `undefined` for no hint. */
      readonly hintMs: number | undefined;
    };

/** Metadata for {@link pollReply} and {@link unchangedReply}. */
export interface PollReplyOptions {
  /** The least time to wait before the next poll, in milliseconds (the server's `Retry-After`, say). */
  readonly hintMs?: number | undefined;
}

/**
 * Wraps a poll answer with the server's hint for the next wait.
 *
 * @example
 * ```ts
 * import { pollReply, ShortPoller } from 'pollkit/client';
 * const poller = new ShortPoller({
 *   poll: async ({ signal }) => {
 *     const response = await fetch('https://example.com/status', { signal });
 *     return pollReply(await response.json(), { hintMs: Number(response.headers.get('retry-after')) * 1000 });
 *   },
 * });
 * ```
 */
export function pollReply<T>(value: T, options: PollReplyOptions = {}): PollReply<T> {
  return { [REPLY]: true, unchanged: false, value, hintMs: options.hintMs };
}

/**
 * Says "nothing changed since the last answer" (an HTTP 304, say) without repeating the value.
 *
 * @example
 * ```ts
 * import { unchangedReply } from 'pollkit/client';
 * const poll = async () => unchangedReply({ hintMs: 2000 });
 * ```
 */
export function unchangedReply(options: PollReplyOptions = {}): PollReply<never> {
  return { [REPLY]: true, unchanged: true, hintMs: options.hintMs };
}

function isReply<T>(value: unknown): value is PollReply<T> {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[REPLY] === true;
}

/** What an interval function sees. */
export interface IntervalContext {
  /** The number of the request just answered. */
  readonly attempt: number;
  /** Answers in a row that brought no change (0 right after a change). */
  readonly unchanged: number;
}

/** An interval computed from the last value, in milliseconds. */
export type IntervalFunction<T> = (last: T | undefined, context: IntervalContext) => number;

/**
 * The default interval: 1 s, ×1.5 for every answer that brings no change, capped at 15 s, ±20 %
 * jitter. Quick to notice early changes, cheap on work that takes minutes.
 *
 * @example
 * ```ts
 * import { DEFAULT_POLL_INTERVAL } from 'pollkit/client';
 * console.log(DEFAULT_POLL_INTERVAL.options.max); // 15000
 * ```
 */
export const DEFAULT_POLL_INTERVAL: BackoffPolicy = backoff({
  strategy: 'proportional',
  initial: 1000,
  factor: 1.5,
  max: 15_000,
  jitter: 0.2,
});

/**
 * The default delay policy after a retryable failure: equal jitter from 1 s, doubling to 30 s, so a
 * retry never comes sooner than half the curve.
 *
 * @example
 * ```ts
 * import { DEFAULT_RETRY_POLICY } from 'pollkit/client';
 * console.log(DEFAULT_RETRY_POLICY.options.strategy); // "equal"
 * ```
 */
export const DEFAULT_RETRY_POLICY: BackoffPolicy = backoff({
  strategy: 'equal',
  initial: 1000,
  factor: 2,
  max: 30_000,
});

/** Options for {@link ShortPoller}. */
export interface ShortPollerOptions<T> extends ActivityOptions {
  /**
   * Asks once. Gets the last value as `cursor`; returns the value, or a {@link pollReply} /
   * {@link unchangedReply} carrying the server's hint. Required.
   */
  readonly poll: (context: PollContext<T>) => T | PollReply<T> | Promise<T | PollReply<T>>;
  /**
   * The wait between answers: milliseconds, a function of the last value, or a backoff policy walked
   * while nothing changes (reset by a change). Default {@link DEFAULT_POLL_INTERVAL}.
   */
  readonly interval?: number | IntervalFunction<T> | BackoffPolicy;
  /**
   * The relative spread applied to `number` and function intervals: the wait is uniform in
   * interval × [1 − jitter, 1 + jitter]. Policies carry their own jitter. `0` polls in lockstep. Default `0.2`.
   */
  readonly jitter?: number;
  /** Whether a value is final; the poller then resolves `result()` with it. Default: never. */
  readonly done?: (value: T) => boolean;
  /** An error to end with for a value that is final but a failure (a failed job). Default: none. */
  readonly failed?: (value: T) => unknown;
  /** Whether two answers are the same, so `update` fires on change only. Default: structural JSON equality. */
  readonly equals?: (previous: T, next: T) => boolean;
  /** Extracts progress from a value; `progress` fires when it changes. Default: none. */
  readonly progressOf?: (value: T) => unknown;
  /** The overall deadline in milliseconds; past it the poller ends with a {@link TimeoutError}. Default `Infinity`. */
  readonly timeoutMs?: number;
  /** The deadline of one request; a late answer counts as a retryable failure. Default `30000`. */
  readonly requestTimeoutMs?: number;
  /** The delay policy after retryable failures; the server's `Retry-After` is a floor. Default {@link DEFAULT_RETRY_POLICY}. */
  readonly retry?: BackoffPolicy;
  /** Consecutive retryable failures tolerated before ending with code `retries-exhausted`. Default `Infinity`. */
  readonly maxRetries?: number;
  /** The retry budget (share one between pollers to budget them together); `false` for none. Default: a `new RetryBudget()` per poller. */
  readonly budget?: RetryBudget | false;
  /** Ends the poller, including the request in flight. */
  readonly signal?: AbortSignal;
  /** Time and randomness. Default `systemClock`. */
  readonly clock?: Clock;
}

/** Payload of the `request` event. */
export interface PollRequestInfo {
  /** Which request this is, counting every request the poller has made from 1. */
  readonly attempt: number;
}

/** Payload of the `response` event. */
export interface PollResponseInfo {
  /** The request this answers, counting from 1 (matches its `request` event). */
  readonly attempt: number;
  /** Whether the answer differed from the last one. */
  readonly changed: boolean;
  /** How long the request took, in milliseconds. */
  readonly durationMs: number;
}

/** The events of a {@link ShortPoller}. */
export interface ShortPollerEvents<T> {
  /** A request is about to be sent. */
  request: [info: PollRequestInfo];
  /** A request was answered (changed or not). */
  response: [info: PollResponseInfo];
  /** The value changed (the first answer counts as a change). */
  update: [value: T, info: PollRequestInfo];
  /** The progress extracted by `progressOf` changed. */
  progress: [progress: unknown, value: T];
  /** The next request is scheduled. */
  schedule: [info: ScheduleInfo];
  /** A request failed and will be retried after `info.delayMs`. */
  error: [error: unknown, info: RetryInfo];
  /** Polling paused (hidden page, offline). */
  pause: [info: PauseInfo];
  /** Polling resumed. */
  resume: [info: ResumeInfo];
  /** The final value arrived. */
  result: [value: T];
  /** The poller ended, however it ended. */
  end: [info: EndInfo];
}

function isPolicy(value: unknown): value is BackoffPolicy {
  return typeof value === 'object' && value !== null && typeof (value as BackoffPolicy).delay === 'function';
}

const OWNER = 'ShortPoller';

/**
 * Polls until a `done` predicate holds, emitting each distinct value.
 *
 * @example
 * ```ts
 * import { ShortPoller, pollReply } from 'pollkit/client';
 *
 * const poller = new ShortPoller<{ status: string; percent: number }>({
 *   poll: async ({ signal }) => (await fetch('https://example.com/export/42', { signal })).json(),
 *   interval: 2000,
 *   done: (value) => value.status === 'ready',
 *   progressOf: (value) => value.percent,
 *   timeoutMs: 10 * 60_000,
 * });
 * poller.on('progress', (percent) => console.log(`${String(percent)} %`));
 * const final = await poller.result(); // starts the poller
 * ```
 */
export class ShortPoller<T> extends EventEmitter<ShortPollerEvents<T>> implements AsyncIterable<T> {
  readonly #poll: ShortPollerOptions<T>['poll'];
  readonly #interval: number | IntervalFunction<T> | BackoffPolicy;
  readonly #jitter: number;
  readonly #done: (value: T) => boolean;
  readonly #failed: ((value: T) => unknown) | undefined;
  readonly #equals: (previous: T, next: T) => boolean;
  readonly #progressOf: ((value: T) => unknown) | undefined;
  readonly #timeoutMs: number;
  readonly #requestTimeoutMs: number;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #retries: RetrySchedule;
  readonly #gate: ActivityGate;
  readonly #signal: AbortSignal | undefined;
  readonly #controller = new AbortController();
  readonly #channels = new Set<Channel<T>>();
  readonly #result: Promise<T>;
  readonly #ended: Promise<EndInfo>;
  #settle!: (info: EndInfo, value: T | undefined) => void;
  #state: PollerState = 'idle';
  #endInfo: EndInfo | undefined;
  #halting: { reason: EndReason; error: unknown } | undefined;
  #latest: { value: T } | undefined;
  #progress: unknown;
  #attempts = 0;
  #timeoutTimer: unknown;
  #onUserAbort: (() => void) | undefined;

  constructor(options: ShortPollerOptions<T>) {
    super();
    if (typeof options !== 'object' || options === null || typeof options.poll !== 'function') {
      throw new InvalidArgumentError(`${OWNER} option "poll" must be a function`, 'poll');
    }
    const interval = options.interval ?? DEFAULT_POLL_INTERVAL;
    if (typeof interval === 'number') {
      checkOption(OWNER, 'interval', interval, (v) => Number.isFinite(v) && v >= 0, 'a finite number >= 0');
    } else if (typeof interval !== 'function' && !isPolicy(interval)) {
      throw new InvalidArgumentError(
        `${OWNER} option "interval" must be a number, a function or a backoff policy`,
        'interval',
      );
    }
    checkOption(OWNER, 'jitter', options.jitter, (v) => v >= 0 && v <= 1, 'a number in [0, 1]');
    checkOption(OWNER, 'timeoutMs', options.timeoutMs, (v) => v > 0, 'a number > 0');
    checkOption(OWNER, 'requestTimeoutMs', options.requestTimeoutMs, (v) => v > 0, 'a number > 0');
    checkOption(OWNER, 'maxRetries', options.maxRetries, (v) => v >= 0, 'a number >= 0');
    for (const name of ['done', 'failed', 'equals', 'progressOf'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'function') {
        throw new InvalidArgumentError(`${OWNER} option "${name}" must be a function`, name);
      }
    }
    if (options.retry !== undefined && !isPolicy(options.retry)) {
      throw new InvalidArgumentError(`${OWNER} option "retry" must be a backoff policy`, 'retry');
    }
    if (options.budget !== undefined && options.budget !== false && !(options.budget instanceof RetryBudget)) {
      throw new InvalidArgumentError(`${OWNER} option "budget" must be a RetryBudget or false`, 'budget');
    }
    this.#poll = options.poll;
    this.#interval = interval;
    this.#jitter = options.jitter ?? 0.2;
    this.#done = options.done ?? (() => false);
    this.#failed = options.failed;
    this.#equals = options.equals ?? jsonEqual;
    this.#progressOf = options.progressOf;
    this.#timeoutMs = options.timeoutMs ?? Number.POSITIVE_INFINITY;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.#clock = options.clock ?? systemClock;
    const clock = this.#clock;
    this.#random = () => clock.random();
    this.#retries = new RetrySchedule({
      policy: options.retry ?? DEFAULT_RETRY_POLICY,
      random: this.#random,
      budget: options.budget === false ? undefined : (options.budget ?? new RetryBudget({ clock })),
      maxRetries: options.maxRetries ?? Number.POSITIVE_INFINITY,
      resetAfterSuccesses: 1,
    });
    this.#gate = new ActivityGate(options);
    this.#signal = options.signal;
    let resolveResult!: (value: T) => void;
    let rejectResult!: (error: unknown) => void;
    let resolveEnded!: (info: EndInfo) => void;
    this.#result = new Promise<T>((resolve, reject) => {
      resolveResult = resolve;
      rejectResult = reject;
    });
    // Nobody may be awaiting result(); its rejection must not surface as an unhandled one.
    this.#result.catch(() => {});
    this.#ended = new Promise((resolve) => {
      resolveEnded = resolve;
    });
    this.#settle = (info, value) => {
      if (info.reason === 'done') resolveResult(value as T);
      else rejectResult(info.error);
      resolveEnded(info);
    };
  }

  /** `idle` before `start()`, `running`, then `ended`. */
  get state(): PollerState {
    return this.#state;
  }

  /** The latest distinct value, if any arrived. */
  get latest(): T | undefined {
    return this.#latest?.value;
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
    if (Number.isFinite(this.#timeoutMs)) {
      this.#timeoutTimer = this.#clock.setTimeout(
        () => this.#halt('timeout', new TimeoutError(`Polling did not finish within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
    }
    void this.#run();
    return this;
  }

  /** Ends polling, aborting the request in flight; `result()` rejects with an {@link AbortedError}. */
  stop(): void {
    this.#halt('stopped', new AbortedError('The poller was stopped'));
  }

  /**
   * The final value: resolves when `done` holds; rejects with the error the poller ended with. Starts
   * the poller.
   */
  result(): Promise<T> {
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
   * const first = await poller.start().waitFor('update');
   * ```
   */
  waitFor<E extends keyof ShortPollerEvents<T>>(
    event: E,
    options: WaitForOptions = {},
  ): Promise<ShortPollerEvents<T>[E][0]> {
    return nextEvent(this as unknown as EventEmitter, event, () => this.#endInfo, options);
  }

  /**
   * Yields the latest value (if any), then each distinct value, ending after the final one; throws
   * the error the poller failed with. Starts the poller; breaking out of the loop stops it.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    const channel: Channel<T> = new Channel(() => {
      this.#channels.delete(channel);
      this.stop();
    });
    if (this.#latest !== undefined) channel.push(this.#latest.value);
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
    let unchanged = 0;
    let previousInterval: number | undefined;
    try {
      for (;;) {
        await this.#whenActive(signal);
        const attempt = ++this.#attempts;
        this.emit('request', { attempt });
        const started = clock.now();
        let raw: T | PollReply<T>;
        try {
          raw = await this.#request(attempt, signal);
        } catch (error) {
          if (signal.aborted) throw error;
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
        const reply: PollReply<T> = isReply<T>(raw) ? raw : pollReply(raw);
        let changed = false;
        if (!reply.unchanged) {
          const previous = this.#latest;
          changed = previous === undefined || !this.#equals(previous.value, reply.value);
          if (changed) this.#update(reply.value, attempt);
        }
        // A listener of update or progress may have stopped the poller.
        if (this.#isEnded()) return;
        this.emit('response', { attempt, changed, durationMs: clock.now() - started });
        const latest = this.#latest;
        if (latest !== undefined) {
          const failure = this.#failed?.(latest.value);
          if (failure !== undefined && failure !== null) {
            this.#finish('failed', failure);
            return;
          }
          if (this.#done(latest.value)) {
            this.emit('result', latest.value);
            this.#finish('done', undefined);
            return;
          }
        }
        unchanged = changed ? 0 : unchanged + 1;
        const computed = this.#nextInterval(unchanged, attempt, previousInterval);
        previousInterval = computed;
        const delayMs = withHint(computed, reply.hintMs, this.#random);
        this.emit('schedule', { attempt: attempt + 1, delayMs, reason: delayMs > computed ? 'hint' : 'interval' });
        await sleep(delayMs, { signal, clock });
      }
    } catch (error) {
      const halting = this.#halting;
      if (signal.aborted && halting !== undefined) this.#finish(halting.reason, halting.error);
      // Anything else is a throwing callback (done, equals, an event listener): end rather than spin.
      else this.#finish('failed', error);
    }
  }

  async #request(attempt: number, signal: AbortSignal): Promise<T | PollReply<T>> {
    const timeoutMs = this.#requestTimeoutMs;
    // A per-request signal exists only to carry the request deadline; without one the run's signal does.
    const link = Number.isFinite(timeoutMs) ? linkSignals(signal) : undefined;
    const timer =
      link === undefined
        ? undefined
        : this.#clock.setTimeout(() => link.abort(new TimeoutError(`No answer within ${timeoutMs} ms`)), timeoutMs);
    const requestSignal = link?.signal ?? signal;
    try {
      const cursor = this.#latest?.value;
      const answer = Promise.resolve().then(() => this.#poll({ signal: requestSignal, attempt, cursor }));
      return await abortable(answer, requestSignal);
    } finally {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
      link?.dispose();
    }
  }

  #update(value: T, attempt: number): void {
    this.#latest = { value };
    for (const channel of this.#channels) channel.push(value);
    this.emit('update', value, { attempt });
    if (this.#progressOf !== undefined) {
      const progress = this.#progressOf(value);
      if (progress !== undefined && progress !== null && !jsonEqual(progress, this.#progress)) {
        this.#progress = progress;
        this.emit('progress', progress, value);
      }
    }
  }

  #nextInterval(unchanged: number, attempt: number, previous: number | undefined): number {
    const interval = this.#interval;
    if (isPolicy(interval)) return interval.delay(unchanged, previous, this.#random);
    const base = typeof interval === 'number' ? interval : interval(this.#latest?.value, { attempt, unchanged });
    if (!(Number.isFinite(base) && base >= 0)) {
      throw new InvalidArgumentError(
        `${OWNER} "interval" returned ${String(base)}; expected a finite number >= 0`,
        'interval',
      );
    }
    return base * (1 + this.#jitter * (2 * this.#random() - 1));
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
    if (this.#timeoutTimer !== undefined) this.#clock.clearTimeout(this.#timeoutTimer);
    if (this.#onUserAbort !== undefined) this.#signal?.removeEventListener('abort', this.#onUserAbort);
    this.#gate.dispose();
    if (!this.#controller.signal.aborted) this.#controller.abort(error ?? new AbortedError('The poller ended'));
    for (const channel of this.#channels) closeChannel(channel, info);
    this.#channels.clear();
    this.#settle(info, this.#latest?.value);
    this.emit('end', info);
  }
}

function closeChannel<T>(channel: Channel<T>, info: EndInfo): void {
  if (info.reason === 'done' || info.reason === 'stopped') channel.close();
  else channel.close(info.error, true);
}
