/**
 * The life of a poller, written once: start and stop, the user's signal and the overall deadline, the
 * pause while the page is hidden or offline, the retry path after a failed request, the per-request
 * deadline, the async iterators' channels, and the promises and `end` event that settle exactly once.
 * {@link ShortPoller} and {@link LongPoller} extend it and keep only their own loop, so a fix to how a
 * poller ends cannot land in one and miss the other.
 *
 * @module
 */
import { abortable, linkSignals, onAbort, sleep } from '../core/abort.js';
import type { BackoffPolicy } from '../core/backoff.js';
import { type Clock, systemClock } from '../core/clock.js';
import { Emitter, type EventMap } from '../core/emitter.js';
import { AbortedError, InvalidArgumentError, TimeoutError } from '../core/errors.js';
import { type ActivityOptions, ActivityGate } from './activity.js';
import {
  Channel,
  checkOption,
  isPolicy,
  type EndInfo,
  type EndReason,
  nextEvent,
  endError,
  type PauseInfo,
  type PollerState,
  type ResumeInfo,
  RetrySchedule,
  type RetryInfo,
  type ScheduleInfo,
  type WaitForOptions,
} from './poller-support.js';
import { RetryBudget } from './retry-budget.js';

/**
 * The events every poller emits, whatever else it emits.
 *
 * @internal
 */
export interface PollerLifecycleEvents {
  /** The next request is scheduled. */
  schedule: [info: ScheduleInfo];
  /** A request failed and will be retried after `info.delayMs`. */
  error: [error: unknown, info: RetryInfo];
  /** Polling paused (hidden page, offline). */
  pause: [info: PauseInfo];
  /** Polling resumed. */
  resume: [info: ResumeInfo];
  /** The poller ended, however it ended. */
  end: [info: EndInfo];
}

/**
 * The options every poller takes and the lifecycle validates.
 *
 * @internal
 */
export interface PollerCommonOptions extends ActivityOptions {
  /** The poll function; only checked to be a function here. */
  readonly poll: unknown;
  /** The delay policy after retryable failures. */
  readonly retry?: BackoffPolicy;
  /** Consecutive retryable failures tolerated. */
  readonly maxRetries?: number;
  /** The retry budget, or `false` for none. */
  readonly budget?: RetryBudget | false;
  /** Ends the poller. */
  readonly signal?: AbortSignal;
  /** Time and randomness. */
  readonly clock?: Clock;
}

/**
 * What differs between pollers in the shared part of their lifecycle.
 *
 * @internal
 */
export interface PollerLifecycleSettings {
  /** The delay policy after failures when the options name none. */
  readonly retry: BackoffPolicy;
  /** Successful answers in a row after which the retry backoff starts over. */
  readonly resetAfterSuccesses: number;
  /** The overall deadline in milliseconds, `Infinity` for none. */
  readonly timeoutMs: number;
}

/**
 * The lifecycle a poller extends. `Item` is what its iterators yield, `Result` what `result()` resolves with.
 *
 * @example
 * ```ts
 * class EveryTick extends PollerLifecycle<PollerLifecycleEvents, number, undefined> {
 *   protected async loop(signal: AbortSignal): Promise<void> {
 *     for (;;) await this.retryAfter(new Error('never answers'), this.nextAttempt(), signal);
 *   }
 *   protected finalValue(): undefined {
 *     return undefined;
 *   }
 * }
 * ```
 *
 * @internal
 */
export abstract class PollerLifecycle<
  Events extends PollerLifecycleEvents & EventMap<Events>,
  Item,
  Result,
> extends Emitter<Events> {
  /** @internal */
  protected readonly clock: Clock;
  /** @internal */
  protected readonly random: () => number;
  readonly #retries: RetrySchedule;
  readonly #gate: ActivityGate;
  readonly #signal: AbortSignal | undefined;
  readonly #timeoutMs: number;
  readonly #controller = new AbortController();
  readonly #channels = new Set<Channel<Item>>();
  readonly #result: Promise<Result>;
  readonly #ended: Promise<EndInfo>;
  #settle!: (info: EndInfo) => void;
  #state: PollerState = 'idle';
  #endInfo: EndInfo | undefined;
  #halting: { reason: EndReason; error: unknown } | undefined;
  #attempts = 0;
  #timeoutTimer: unknown;
  #removeUserAbort: (() => void) | undefined;

  constructor(owner: string, options: PollerCommonOptions, settings: PollerLifecycleSettings) {
    super();
    if (typeof options !== 'object' || options === null || typeof options.poll !== 'function') {
      throw new InvalidArgumentError(`${owner} option "poll" must be a function`, 'poll');
    }
    checkOption(owner, 'maxRetries', options.maxRetries, (v) => v >= 0, 'a number >= 0');
    if (options.retry !== undefined && !isPolicy(options.retry)) {
      throw new InvalidArgumentError(`${owner} option "retry" must be a backoff policy`, 'retry');
    }
    if (options.budget !== undefined && options.budget !== false && !(options.budget instanceof RetryBudget)) {
      throw new InvalidArgumentError(`${owner} option "budget" must be a RetryBudget or false`, 'budget');
    }
    const clock = options.clock ?? systemClock;
    this.clock = clock;
    this.random = () => clock.random();
    this.#retries = new RetrySchedule({
      policy: options.retry ?? settings.retry,
      random: this.random,
      budget: options.budget === false ? undefined : (options.budget ?? new RetryBudget({ clock })),
      maxRetries: options.maxRetries ?? Number.POSITIVE_INFINITY,
      resetAfterSuccesses: settings.resetAfterSuccesses,
    });
    this.#gate = new ActivityGate(options);
    this.#signal = options.signal;
    this.#timeoutMs = settings.timeoutMs;
    let resolveResult!: (value: Result) => void;
    let rejectResult!: (error: unknown) => void;
    let resolveEnded!: (info: EndInfo) => void;
    this.#result = new Promise<Result>((resolve, reject) => {
      resolveResult = resolve;
      rejectResult = reject;
    });
    // Nobody may be awaiting result(); its rejection must not surface as an unhandled one.
    this.#result.catch(() => {});
    this.#ended = new Promise((resolve) => {
      resolveEnded = resolve;
    });
    this.#settle = (info) => {
      if (info.reason === 'done') resolveResult(this.finalValue());
      else rejectResult(info.error);
      resolveEnded(info);
    };
  }

  /** `idle` before `start()`, `running`, then `ended`. */
  get state(): PollerState {
    return this.#state;
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
        this.finish('aborted', signal.reason ?? new AbortedError());
        return this;
      }
      this.#removeUserAbort = onAbort(signal, () => this.halt('aborted', signal.reason ?? new AbortedError()));
    }
    if (Number.isFinite(this.#timeoutMs)) {
      this.#timeoutTimer = this.clock.setTimeout(
        () => this.halt('timeout', new TimeoutError(`Polling did not finish within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
    }
    void this.#run();
    return this;
  }

  /** Resolves (never rejects) with how the poller ended. Does not start it. */
  ended(): Promise<EndInfo> {
    return this.#ended;
  }

  /**
   * The poller's own loop: request, deliver, schedule, until it finishes or its signal aborts.
   *
   * @internal
   */
  protected abstract loop(signal: AbortSignal): Promise<void>;

  /**
   * What `result()` resolves with when the poller ends `done`.
   *
   * @internal
   */
  protected abstract finalValue(): Result;

  /**
   * Starts the poller and returns the promise behind `result()`.
   *
   * @internal
   */
  protected startForResult(): Promise<Result> {
    this.start();
    return this.#result;
  }

  /**
   * The promise behind `waitFor()`.
   *
   * @internal
   */
  protected nextEvent<Value>(event: string, options: WaitForOptions): Promise<Value> {
    return nextEvent(this as unknown as Emitter<EventMap>, event, 'end', () => this.#endInfo, endError, options);
  }

  /**
   * A new iterator over the poller's items, starting with `initial`; ending it early stops the poller.
   *
   * @internal
   */
  protected openChannel(initial: readonly Item[]): Channel<Item> {
    const channel: Channel<Item> = new Channel(() => {
      this.#channels.delete(channel);
      this.stop();
    });
    for (const value of initial) channel.push(value);
    if (this.#endInfo !== undefined) {
      closeChannel(channel, this.#endInfo);
      return channel;
    }
    this.#channels.add(channel);
    this.start();
    return channel;
  }

  /**
   * The open iterators, for the loop to feed.
   *
   * @internal
   */
  protected get channels(): ReadonlySet<Channel<Item>> {
    return this.#channels;
  }

  /**
   * Ends polling with reason `stopped`.
   *
   * @internal
   */
  protected stop(): void {
    this.halt('stopped', new AbortedError('The poller was stopped'));
  }

  /**
   * Counts a new request and returns its number.
   *
   * @internal
   */
  protected nextAttempt(): number {
    return ++this.#attempts;
  }

  /**
   * Whether the poller has ended; a listener may end it between two awaits of the loop.
   *
   * @internal
   */
  // A method, not an inline comparison: TypeScript would narrow #state across the awaits in the loop.
  protected isEnded(): boolean {
    return this.#state === 'ended';
  }

  /**
   * Waits while the page is hidden or offline, announcing the pause and the resumption.
   *
   * @internal
   */
  protected async whenActive(signal: AbortSignal): Promise<void> {
    const reason = this.#gate.pauseReason;
    if (reason === undefined) return;
    const pausedAt = this.clock.now();
    this.#emit('pause', { reason });
    await this.#gate.whenActive(signal);
    this.#emit('resume', { pausedMs: this.clock.now() - pausedAt });
  }

  /**
   * Runs one poll call under the request deadline.
   *
   * @internal
   */
  protected async request<Answer>(
    timeoutMs: number,
    signal: AbortSignal,
    call: (signal: AbortSignal) => Answer | PromiseLike<Answer>,
  ): Promise<Answer> {
    // A per-request signal exists only to carry the request deadline; without one the run's signal does.
    const link = Number.isFinite(timeoutMs) ? linkSignals(signal) : undefined;
    const timer =
      link === undefined
        ? undefined
        : this.clock.setTimeout(() => link.abort(new TimeoutError(`No answer within ${timeoutMs} ms`)), timeoutMs);
    const requestSignal = link?.signal ?? signal;
    try {
      const answer = Promise.resolve().then(() => call(requestSignal));
      return await abortable(answer, requestSignal);
    } finally {
      if (timer !== undefined) this.clock.clearTimeout(timer);
      link?.dispose();
    }
  }

  /**
   * Counts a successful answer towards forgiving past failures.
   *
   * @internal
   */
  protected recordSuccess(): void {
    this.#retries.onSuccess();
  }

  /**
   * After a failed request: ends the poller and returns false when the failure is final; otherwise
   * announces the retry, waits it out and returns true.
   *
   * @internal
   */
  protected async retryAfter(error: unknown, attempt: number, signal: AbortSignal): Promise<boolean> {
    const decision = this.#retries.onFailure(error);
    if (!decision.retry) {
      this.finish('failed', decision.error);
      return false;
    }
    const schedule: ScheduleInfo = { attempt: attempt + 1, delayMs: decision.delayMs, reason: decision.reason };
    this.#emit('error', error, { ...schedule, failedAttempt: attempt, failures: decision.failures });
    this.#emit('schedule', schedule);
    await sleep(decision.delayMs, { signal, clock: this.clock });
    return true;
  }

  /**
   * Ends the poller at once: state, iterators, promises and the `end` event. Runs once.
   *
   * @internal
   */
  protected finish(reason: EndReason, error: unknown): void {
    if (this.isEnded()) return;
    this.#state = 'ended';
    const info: EndInfo = { reason, error, attempts: this.#attempts };
    this.#endInfo = info;
    if (this.#timeoutTimer !== undefined) this.clock.clearTimeout(this.#timeoutTimer);
    this.#removeUserAbort?.();
    this.#gate.dispose();
    if (!this.#controller.signal.aborted) this.#controller.abort(error ?? new AbortedError('The poller ended'));
    for (const channel of this.#channels) closeChannel(channel, info);
    this.#channels.clear();
    this.#settle(info);
    this.#emit('end', info);
  }

  /**
   * Ends the poller from outside the loop (stop, the user's signal, the deadline) and aborts the request in flight.
   *
   * @internal
   */
  protected halt(reason: EndReason, error: unknown): void {
    if (this.#state === 'ended' || this.#halting !== undefined) return;
    if (this.#state === 'idle') {
      this.#state = 'running';
      this.finish(reason, error);
      return;
    }
    // End now rather than when the loop next wakes, so that state, events and promises settle
    // synchronously with stop() and with the abort; the loop sees the aborted signal and exits.
    this.#halting = { reason, error };
    this.#controller.abort(error);
    this.finish(reason, error);
  }

  async #run(): Promise<void> {
    const signal = this.#controller.signal;
    try {
      await this.loop(signal);
    } catch (error) {
      const halting = this.#halting;
      if (signal.aborted && halting !== undefined) this.finish(halting.reason, halting.error);
      // Anything else is a throwing callback (done, equals, an event listener): end rather than spin.
      else this.finish('failed', error);
    }
  }

  #emit<E extends keyof PollerLifecycleEvents>(event: E, ...args: PollerLifecycleEvents[E]): void {
    (this as unknown as Emitter<PollerLifecycleEvents>).emit(event, ...args);
  }
}

function closeChannel<T>(channel: Channel<T>, info: EndInfo): void {
  if (info.reason === 'done' || info.reason === 'stopped') channel.close();
  else channel.close(info.error, true);
}
