/**
 * The life of a poller, written once: start and stop, the user's signal, the pause while the page is
 * hidden or offline, the retry path after a failed request (backoff, the
 * server's hint, the retry budget), the per-request deadline, the async iterators' queues, and the
 * promises and `end` event that settle exactly once. {@link ShortPoller} and {@link LongPoller} extend
 * it and keep only their own loop, so a fix to how a poller ends cannot land in one and miss the other.
 *
 * @module
 */
import { abortable, abortReason, onAbort, sleep } from '../core/abort.js';
import { type BackoffPolicy, withHint } from '../core/backoff.js';
import { checkNumber, invalidOption } from '../core/checks.js';
import { type Clock, systemClock } from '../core/clock.js';
import { Emitter, type EventMap } from '../core/emitter.js';
import { AbortedError, PollkitError } from '../core/errors.js';
import { type ActivityOptions, ActivityGate } from './activity.js';
import {
  type DelayReason,
  type EndInfo,
  type EndReason,
  isPolicy,
  nextEvent,
  type PauseInfo,
  type PollerState,
  type ResumeInfo,
  type RetryInfo,
  type ScheduleInfo,
  type WaitForOptions,
} from './poller-support.js';
import type { RetryBudget } from './retry-budget.js';
import { tokenBucket } from './token-bucket.js';

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
  readonly #policy: BackoffPolicy;
  readonly #budget: Pick<RetryBudget, 'reserve' | 'recordSuccess'> | undefined;
  readonly #maxRetries: number;
  readonly #resetAfter: number;
  readonly #gate: ActivityGate | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #controller = new AbortController();
  readonly #channels = new Set<Channel<Item>>();
  readonly #result: Promise<Result>;
  #ended!: Promise<EndInfo>;
  #settle!: (info: EndInfo) => void;
  #state: PollerState = 'idle';
  #endInfo: EndInfo | undefined;
  #attempts = 0;
  // The retry walk: failures not yet forgiven, successes in a row, and where the backoff curve stands.
  #failures = 0;
  #successes = 0;
  #step = 0;
  #previousDelay: number | undefined;
  #removeUserAbort: (() => void) | undefined;

  constructor(owner: string, options: PollerCommonOptions, settings: PollerLifecycleSettings) {
    super();
    if (typeof options?.poll !== 'function') invalidOption(owner, 'poll', 'a function', options?.poll);
    checkNumber(owner, 'maxRetries', options.maxRetries, 0);
    const { retry, budget } = options;
    if (retry !== undefined && !isPolicy(retry)) invalidOption(owner, 'retry', 'a backoff policy', retry);
    // By shape, not instanceof RetryBudget: the class would then be in every poller's bundle.
    if (budget !== undefined && budget !== false && typeof budget?.reserve !== 'function') {
      invalidOption(owner, 'budget', 'a RetryBudget or false', budget);
    }
    const clock = options.clock ?? systemClock;
    this.clock = clock;
    this.random = () => clock.random();
    this.#policy = retry ?? settings.retry;
    this.#budget = budget === false ? undefined : (budget ?? tokenBucket(clock));
    this.#maxRetries = options.maxRetries ?? Infinity;
    this.#resetAfter = settings.resetAfterSuccesses;
    // Only a poller asked to pause holds a gate; without one it is always active.
    this.#gate = options.pauseWhenHidden || options.pauseWhenOffline ? new ActivityGate(options) : undefined;
    this.#signal = options.signal;
    this.#result = new Promise<Result>((resolve, reject) => {
      this.#ended = new Promise((resolveEnded) => {
        this.#settle = (info) => {
          if (info.reason === 'done') resolve(this.finalValue());
          else reject(info.error);
          resolveEnded(info);
        };
      });
    });
    // Nobody may be awaiting result(); its rejection must not surface as an unhandled one.
    this.#result.catch(() => {});
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
    if (signal?.aborted) {
      this.finish('aborted', abortReason(signal));
      return this;
    }
    if (signal) this.#removeUserAbort = onAbort(signal, () => this.finish('aborted', abortReason(signal)));
    // Anything the loop throws that is not the end it was told of is a throwing callback (done,
    // equals, an event listener): end rather than spin. After the end, finish() is a no-op.
    this.loop(this.#controller.signal).catch((error: unknown) => this.finish('failed', error));
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
    return nextEvent(
      this as unknown as Emitter<EventMap>,
      event,
      'end',
      () => this.#endInfo,
      (info: EndInfo) => info.error ?? new AbortedError(`Ended (${info.reason}) before ${event}`),
      options,
    );
  }

  /**
   * A new iterator over the poller's items, starting with `initial`; ending it early stops the poller.
   *
   * @internal
   */
  protected openChannel(initial: readonly Item[]): AsyncIterableIterator<Item> {
    const channel: Channel<Item> = new Channel(() => {
      this.#channels.delete(channel);
      this.stop();
    });
    channel.queue.push(...initial);
    if (this.#endInfo === undefined) {
      this.#channels.add(channel);
      this.start();
    } else {
      closeChannel(channel, this.#endInfo);
    }
    return channel;
  }

  /**
   * Hands items to every open iterator.
   *
   * @internal
   */
  protected deliver(items: readonly Item[]): void {
    for (const channel of this.#channels) for (const item of items) channel.push(item);
  }

  /**
   * Waits while an iterator holds `limit` items or more unread (or until `signal` aborts).
   *
   * @internal
   */
  protected async roomFor(limit: number, signal: AbortSignal): Promise<void> {
    for (const channel of this.#channels) await channel.room(limit, signal);
  }

  /**
   * Ends polling with reason `stopped`.
   *
   * @internal
   */
  protected stop(): void {
    this.finish('stopped', new AbortedError('Stopped'));
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
    const gate = this.#gate;
    const reason = gate?.pauseReason;
    if (reason === undefined) return;
    const pausedAt = this.clock.now();
    this.#emit('pause', { reason });
    await gate!.whenActive(signal);
    this.#emit('resume', { pausedMs: this.clock.now() - pausedAt });
  }

  /**
   * Counts a successful answer towards forgiving past failures.
   *
   * @internal
   */
  protected recordSuccess(): void {
    this.#budget?.recordSuccess();
    if (++this.#successes >= this.#resetAfter) {
      this.#failures = 0;
      this.#step = 0;
      this.#previousDelay = undefined;
    }
  }

  /**
   * After a failed request: ends the poller and returns false when the failure is final (not
   * retryable, `maxRetries` reached, the budget cannot refill); otherwise announces the retry, waits it
   * out and returns true. The delay is the backoff's, floored by the server's hint (`retryAfterMs` on
   * the error), or the wait for the budget's next token when that is longer.
   *
   * @internal
   */
  protected async retryAfter(error: unknown, attempt: number, signal: AbortSignal): Promise<boolean> {
    this.#successes = 0;
    const failures = ++this.#failures;
    let final: unknown = error;
    // Anything but a pollkit error (a TypeError from fetch, a driver's socket error) is presumed transient.
    if (!PollkitError.is(error) || error.retryable) {
      if (failures > this.#maxRetries) {
        final = new PollkitError(`${this.#maxRetries} retries failed`, 'retries-exhausted', { cause: error });
      } else {
        const computed = this.#policy.delay(this.#step++, this.#previousDelay, this.random);
        this.#previousDelay = computed;
        const hinted = withHint(computed, (error as { retryAfterMs?: number } | undefined)?.retryAfterMs, this.random);
        const budgetWait = this.#budget?.reserve() ?? 0;
        if (budgetWait < Infinity) {
          const [delayMs, reason]: [number, DelayReason] =
            budgetWait > hinted ? [budgetWait, 'budget'] : [hinted, hinted > computed ? 'retry-after' : 'retry'];
          const schedule: ScheduleInfo = { attempt: attempt + 1, delayMs, reason };
          this.#emit('error', error, { ...schedule, failedAttempt: attempt, failures });
          this.#emit('schedule', schedule);
          await sleep(delayMs, { signal, clock: this.clock });
          return true;
        }
        final = new PollkitError('Retry budget spent', 'retry-budget-exhausted', { cause: error });
      }
    }
    this.finish('failed', final);
    return false;
  }

  /**
   * Ends the poller at once, from the loop or from outside it (stop, the user's signal, a ShortPoller's deadline):
   * state, the request in flight, iterators, promises and the `end` event, synchronously. Runs once.
   *
   * @internal
   */
  protected finish(reason: EndReason, error: unknown): void {
    if (this.isEnded()) return;
    this.#state = 'ended';
    const info: EndInfo = { reason, error, attempts: this.#attempts };
    this.#endInfo = info;
    this.#removeUserAbort?.();
    this.#gate?.dispose();
    // The loop sees its aborted signal and exits.
    this.#controller.abort(error ?? new AbortedError('Ended'));
    for (const channel of this.#channels) closeChannel(channel, info);
    this.#channels.clear();
    this.#settle(info);
    this.#emit('end', info);
  }

  #emit<E extends keyof PollerLifecycleEvents>(event: E, ...args: PollerLifecycleEvents[E]): void {
    (this as unknown as Emitter<PollerLifecycleEvents>).emit(event, ...args);
  }
}

function closeChannel<T>(channel: Channel<T>, { reason, error }: EndInfo): void {
  channel.close(error, reason !== 'done' && reason !== 'stopped');
}

/**
 * An unbounded async queue with one consumer, behind the pollers' async iterators. Every change (a
 * value in, a value out, the end) wakes whoever waits, consumer or producer, to look again: one list
 * of waiters instead of one per kind of wait.
 */
class Channel<T> implements AsyncIterableIterator<T> {
  /** Values waiting for the consumer. */
  readonly queue: T[] = [];
  #closed = false;
  #error: unknown;
  #failed = false;
  #waiters: (() => void)[] = [];
  readonly #onReturn: () => void;

  constructor(onReturn: () => void) {
    this.#onReturn = onReturn;
  }

  push(value: T): void {
    if (this.#closed) return;
    this.queue.push(value);
    this.#wake();
  }

  /** Ends the stream after the queued values; when `failed`, the consumer gets `error` after them, once. */
  close(error?: unknown, failed = false): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#error = error;
    this.#failed = failed;
    this.#wake();
  }

  /** Resolves once fewer than `limit` values wait, or the channel closes. */
  async room(limit: number, signal: AbortSignal): Promise<void> {
    while (this.queue.length >= limit && !this.#closed) await abortable(this.#change(), signal);
  }

  async next(): Promise<IteratorResult<T>> {
    for (;;) {
      if (this.queue.length > 0) {
        const value = this.queue.shift() as T;
        this.#wake();
        return { value, done: false };
      }
      if (this.#closed) {
        if (this.#failed) {
          this.#failed = false;
          throw this.#error;
        }
        return { value: undefined, done: true };
      }
      await this.#change();
    }
  }

  async return(): Promise<IteratorResult<T>> {
    if (!this.#closed) {
      this.close();
      this.#onReturn();
    }
    this.queue.length = 0;
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #change(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
