/**
 * Spreads the resumption of many woken waits over event-loop turns (internal to the handler).
 *
 * One topic append can complete ten thousand held long polls in one synchronous purgatory walk. Each
 * of them then resumes through the same chain of awaits (topic read → handler → adapter → socket
 * write), and promise continuations run first-in first-out, so every answer takes its first step before
 * any takes its second: no response leaves the process until nearly all the work is done, and the
 * median answer waits almost as long as the last. Letting only a batch continue per turn restores the
 * order "build one, write one": the first batch is on the wire within milliseconds, and between batches
 * the event loop still serves sockets and timers.
 *
 * A batch ends with the turn, which is detected with `setImmediate` (a yield to the event loop, not a
 * delay, so it is not the injected clock's job); where there is none, the clock's zero-delay timer.
 *
 * @module
 */
import type { Clock } from '../core/clock.js';
import { InvalidArgumentError } from '../core/errors.js';

/** Options for {@link ResumeBatches}. */
export interface ResumeBatchesOptions {
  /** Waits resumed per event-loop turn, at least 1. Default 256. */
  readonly size?: number;
  /** Used only where the runtime has no `setImmediate`, for a zero-delay timer. */
  readonly clock: Clock;
}

type Yield = (callback: () => void) => void;

/**
 * Admits up to `size` resumptions per event-loop turn; the rest queue, in arrival order, for later
 * turns. Idle, it schedules nothing.
 *
 * @example
 * ```ts
 * import { systemClock } from '../core/clock.js';
 * const batches = new ResumeBatches({ size: 256, clock: systemClock });
 * async function resume(): Promise<void> {
 *   const turn = batches.admit();
 *   if (turn !== undefined) await turn; // the 257th and later wait for a later turn
 * }
 * ```
 */
export class ResumeBatches {
  readonly #size: number;
  readonly #yield: Yield;
  readonly #turn = (): void => this.#nextTurn();
  /** Resumptions admitted in the current turn. */
  #admitted = 0;
  #queue: ((() => void) | undefined)[] = [];
  #head = 0;
  #scheduled = false;

  constructor(options: ResumeBatchesOptions) {
    const size = options.size ?? 256;
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new InvalidArgumentError(`size must be an integer >= 1, got ${String(size)}`, 'size');
    }
    this.#size = size;
    const { clock } = options;
    const immediate = (globalThis as { setImmediate?: (callback: () => void) => unknown }).setImmediate;
    this.#yield =
      typeof immediate === 'function'
        ? (callback) => void immediate(callback)
        : (callback) => void clock.setTimeout(callback, 0, { unref: true });
  }

  /** Resumptions waiting for a later turn. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * `undefined` when the caller may go on in this turn (no promise, no extra tick: the common case of
   * a few wake-ups); otherwise a promise that resolves in the turn of its batch.
   */
  admit(): Promise<void> | undefined {
    this.#schedule();
    if (this.#admitted < this.#size && this.#head === this.#queue.length) {
      this.#admitted++;
      return undefined;
    }
    return new Promise<void>((resolve) => {
      this.#queue.push(resolve);
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#yield(this.#turn);
  }

  #nextTurn(): void {
    this.#scheduled = false;
    this.#admitted = 0;
    const queue = this.#queue;
    const end = Math.min(queue.length, this.#head + this.#size);
    while (this.#head < end) {
      const resolve = queue[this.#head]!;
      queue[this.#head++] = undefined;
      this.#admitted++;
      resolve();
    }
    if (this.#head === queue.length) {
      this.#queue = [];
      this.#head = 0;
    }
    // The batch just released resumes in this turn's microtasks; the next turn starts a fresh count.
    if (this.#admitted > 0) this.#schedule();
  }
}
