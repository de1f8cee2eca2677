/**
 * Wall-clock time read once per synchronous run (internal to the server layer). One change can settle
 * ten thousand held requests in one walk, each asking whether what it answers with has expired; on the
 * system clock the answer is read once for the whole run, which lasts microseconds against retentions
 * counted in minutes or hours. An injected clock is asked every time, since a test may move it between
 * two reads of one run.
 *
 * @internal
 * @module
 */
import { type Clock, systemClock } from '../core/clock.js';

// Reactions of a settled promise: microtasks without the async resource Node wraps queueMicrotask callbacks in.
const SETTLED = Promise.resolve();

/** `clock.wallNow()`, cached until the current microtask ends when `clock` is the system clock. @internal */
export class RunWallClock {
  readonly #clock: Clock;
  #now: number | undefined = undefined;
  readonly #forget = (): void => {
    this.#now = undefined;
  };

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Epoch milliseconds, as of the start of the current synchronous run on the system clock. */
  wallNow(): number {
    if (this.#clock !== systemClock) return this.#clock.wallNow();
    if (this.#now === undefined) {
      this.#now = this.#clock.wallNow();
      void SETTLED.then(this.#forget);
    }
    return this.#now;
  }
}
