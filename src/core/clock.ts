/**
 * Time and randomness, injectable. Nothing here reads a global at import time: the system clock looks
 * up `setTimeout`, `performance` and `Math.random` on every call, so fake timers installed after import
 * still apply and no module-level random number is ever shared between clients.
 *
 * @module
 */

/** An opaque handle returned by {@link Clock.setTimeout}. */
export type TimerHandle = unknown;

/** Options for {@link Clock.setTimeout}. */
export interface TimerOptions {
  /**
   * When true, the timer does not keep a Node process alive (`timer.unref()`). Ignored where
   * timers have no `unref` (browsers). Default `false`.
   */
  readonly unref?: boolean;
}

/**
 * The source of time, timers and randomness that every pollkit component takes as its `clock` option.
 *
 * @example
 * ```ts
 * import { systemClock } from 'pollkit';
 *
 * const started = systemClock.now();
 * systemClock.setTimeout(() => console.log(systemClock.now() - started), 100);
 * ```
 */
export interface Clock {
  /** Monotonic milliseconds since an arbitrary origin; never goes backwards. */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch, for timestamps shown to people and peers. */
  wallNow(): number;
  /** Calls `callback` once after `ms` milliseconds. */
  setTimeout(callback: () => void, ms: number, options?: TimerOptions): TimerHandle;
  /** Cancels a timer; unknown or already-fired handles are ignored. */
  clearTimeout(handle: TimerHandle): void;
  /** A uniformly distributed number in [0, 1). */
  random(): number;
}

/** The longest delay a platform timer honours (about 24.8 days); longer ones are clamped to it. */
const MAX_TIMER_DELAY_MS = 2_147_483_647;

/**
 * The real clock: `performance.now()`, `Date.now()`, the global timers and `Math.random()`, each
 * looked up when called.
 *
 * @example
 * ```ts
 * import { systemClock } from 'pollkit';
 * // systemClock is every component's default; pass a ManualClock in tests instead.
 * console.log(typeof systemClock.now());
 * ```
 */
export const systemClock: Clock = /* @__PURE__ */ Object.freeze({
  now: () => globalThis.performance.now(),
  wallNow: () => Date.now(),
  setTimeout(callback: () => void, ms: number, options?: TimerOptions): TimerHandle {
    // Node and browsers fire a delay above 2^31 - 1 ms (or NaN) after about 1 ms; clamping keeps an
    // "effectively never" delay (a far Retry-After date, an Infinity timeout) from firing at once.
    const delay = ms > 0 ? Math.min(ms, MAX_TIMER_DELAY_MS) : 0;
    const handle = globalThis.setTimeout(callback, delay) as unknown as TimerHandle;
    if (options?.unref === true) (handle as { unref?: () => void }).unref?.();
    return handle;
  },
  clearTimeout(handle: TimerHandle): void {
    globalThis.clearTimeout(handle as Parameters<typeof globalThis.clearTimeout>[0]);
  },
  random: () => Math.random(),
});

/**
 * A deterministic pseudo-random source (SplitMix32) for tests and simulations.
 *
 * @param seed - any 32-bit integer; the same seed yields the same sequence.
 * @returns a function returning numbers in [0, 1).
 *
 * @example
 * ```ts
 * import { seededRandom } from 'pollkit';
 * const random = seededRandom(42);
 * console.log(random(), random());
 * ```
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 0x1_0000_0000;
  };
}

/** Options for {@link ManualClock}. */
export interface ManualClockOptions {
  /** Initial monotonic time in milliseconds. Default `0`. */
  readonly start?: number;
  /** Wall-clock time (epoch ms) that corresponds to `start`. Default `Date.UTC(2026, 0, 1)`. */
  readonly wallStart?: number;
  /** Seed for {@link ManualClock.random}. Default `1`. */
  readonly seed?: number;
  /** A random source to use instead of the seeded one. */
  readonly random?: () => number;
}

interface ManualTimer {
  readonly id: number;
  readonly at: number;
  readonly callback: () => void;
}

/**
 * A clock that only moves when told to, for deterministic tests. Timers fire in deadline order (ties in
 * creation order) as {@link ManualClock.advance} passes their deadline; timers created while advancing
 * fire in the same call if they fall inside the advanced span.
 *
 * @example
 * ```ts
 * import { ManualClock } from 'pollkit';
 *
 * const clock = new ManualClock();
 * let fired = false;
 * clock.setTimeout(() => { fired = true; }, 1000);
 * clock.advance(999); // fired === false
 * clock.advance(1);   // fired === true
 * ```
 */
export class ManualClock implements Clock {
  #now: number;
  readonly #wallOffset: number;
  readonly #random: () => number;
  #nextId = 1;
  // Kept sorted by (at, id); tests hold few timers, so insertion cost does not matter.
  #timers: ManualTimer[] = [];

  constructor(options: ManualClockOptions = {}) {
    this.#now = options.start ?? 0;
    this.#wallOffset = (options.wallStart ?? Date.UTC(2026, 0, 1)) - this.#now;
    this.#random = options.random ?? seededRandom(options.seed ?? 1);
  }

  now(): number {
    return this.#now;
  }

  wallNow(): number {
    return this.#now + this.#wallOffset;
  }

  random(): number {
    return this.#random();
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    // NaN counts as 0, as platform timers treat it; otherwise a NaN deadline would become `now()`.
    const timer: ManualTimer = { id: this.#nextId++, at: this.#now + (ms > 0 ? ms : 0), callback };
    let index = this.#timers.length;
    while (index > 0 && this.#timers[index - 1]!.at > timer.at) index--;
    this.#timers.splice(index, 0, timer);
    return timer.id as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    const index = this.#timers.findIndex((t) => t.id === handle);
    if (index >= 0) this.#timers.splice(index, 1);
  }

  /** How many timers are waiting to fire. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** The deadline of the earliest waiting timer, or `undefined` when none waits. */
  nextTimerAt(): number | undefined {
    return this.#timers[0]?.at;
  }

  /**
   * Moves time forward by `ms`, firing every timer whose deadline is reached, synchronously.
   * Promise callbacks queued by those timers run only after this returns; use
   * {@link ManualClock.advanceAsync} for code that awaits between timers.
   */
  advance(ms: number): void {
    this.advanceTo(this.#now + ms);
  }

  /** Moves time forward to `target` (never backwards), firing due timers synchronously. */
  advanceTo(target: number): void {
    if (!(target >= this.#now)) throw new RangeError(`ManualClock cannot go back from ${this.#now} to ${target}`);
    for (;;) {
      const next = this.#timers[0];
      if (next === undefined || next.at > target) break;
      this.#timers.shift();
      this.#now = next.at;
      next.callback();
    }
    this.#now = target;
  }

  /**
   * Like {@link ManualClock.advance}, but lets pending promise callbacks run before time moves and
   * after every timer fires, so async code scheduled by one timer can schedule the next.
   */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.#now + ms;
    if (!(target >= this.#now)) throw new RangeError(`ManualClock cannot go back from ${this.#now} to ${target}`);
    await flushPromises();
    for (;;) {
      const next = this.#timers[0];
      if (next === undefined || next.at > target) break;
      this.#timers.shift();
      this.#now = next.at;
      next.callback();
      await flushPromises();
    }
    this.#now = target;
    await flushPromises();
  }

  /** Fires timers one by one until none is left or `limit` have fired; returns how many fired. */
  async runAllAsync(limit = 10_000): Promise<number> {
    let fired = 0;
    await flushPromises();
    while (fired < limit) {
      const next = this.#timers[0];
      if (next === undefined) break;
      this.#timers.shift();
      this.#now = next.at;
      next.callback();
      fired++;
      await flushPromises();
    }
    return fired;
  }
}

/** Resolves after every promise callback queued so far (and those they queue) has run. */
function flushPromises(): Promise<void> {
  // A macrotask boundary: all microtasks queued before it, transitively, run first.
  return new Promise((resolve) => globalThis.setTimeout(resolve, 0));
}
