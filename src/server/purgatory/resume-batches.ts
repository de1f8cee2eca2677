/**
 * Paces the resumption of many woken waits (internal to the purgatory's promise form).
 *
 * One topic append can settle ten thousand held long polls in one synchronous purgatory walk. Were
 * every promise resolved there, each resumption would take its next step (topic read → handler →
 * adapter → socket write) only after all the others had taken theirs, because promise reactions run
 * first in, first out: no answer would leave until nearly all of them were built. Resolving them
 * `resumeBatchSize` at a time, with `gap` microtask hops between batches, lets each batch run ahead
 * of the next, so the first answers are on the wire within milliseconds.
 *
 * The batches follow each other within one microtask drain rather than one event-loop turn apart,
 * and that matters as much: Node finishes every written response in a `process.nextTick` (its
 * 'finish' and 'close' bookkeeping, a third of the cost of an answer), and ticks run only once the
 * drain is over, so the writes still to come do not wait behind the bookkeeping of those already
 * made. Only after `resumeSliceMs` of continuous resuming does a batch wait for the next event-loop
 * turn, so that a very large wake-up cannot keep sockets and timers from being served indefinitely.
 *
 * @module
 */
import type { Clock } from '../../core/clock.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { onLaterTurn } from './later-turn.js';
import { integerAtLeast } from '../validate.js';

/**
 * Hops are reactions to this settled promise rather than `queueMicrotask` calls: the same microtask
 * queue, in the same order, but Node wraps each `queueMicrotask` callback in an async resource, which
 * made the hops between batches a tenth of the cost of a large wake-up.
 */
const SETTLED = Promise.resolve();

/** The largest queue array kept between bursts (slots, not resumptions held). */
const MAX_KEPT_QUEUE = 65_536;

/** Something woken that continues when {@link Resumable.resume} is called. */
export interface Resumable {
  resume(): void;
}

/** Options for {@link ResumeBatches}, named as the purgatory's options that carry them. */
export interface ResumeBatchesOptions {
  /** Resumptions per batch, at least 1. Default 256. */
  readonly resumeBatchSize?: number;
  /**
   * Microtask hops between two batches: about the number of awaits from a resumption to its answer's
   * write, so a batch is written before the next one starts. Default 16.
   */
  readonly gap?: number;
  /** Continuous resuming after which the next batch waits for an event-loop turn. Default 100 ms. */
  readonly resumeSliceMs?: number;
  /** Measures the slice; also gives the zero-delay timer where the runtime has no `setImmediate`. */
  readonly clock: Clock;
}

/**
 * Runs up to `resumeBatchSize` resumptions at once and queues the rest, in arrival order, for later
 * batches. Idle, it schedules nothing; a lone wake-up costs one microtask.
 *
 * @example
 * ```ts
 * import { systemClock } from '../../core/clock.js';
 * const batches = new ResumeBatches({ resumeBatchSize: 256, clock: systemClock });
 * batches.schedule({ resume: () => console.log('woken') }); // runs at once: the batch has room
 * ```
 */
export class ResumeBatches {
  readonly #size: number;
  readonly #gap: number;
  readonly #sliceMs: number;
  readonly #clock: Clock;
  readonly #hop = (): void => this.#onHop();
  readonly #turn = (): void => this.#onTurn();
  /** Resumptions run since the queue was last found empty. */
  #burst = 0;
  /**
   * Waiting resumptions from `#head` to `#tail`. The array keeps its size between bursts (slots are
   * cleared as they are taken), so a wake-up of ten thousand does not regrow it every time.
   */
  #queue: (Resumable | undefined)[] = [];
  #head = 0;
  #tail = 0;
  /** A hop or turn is scheduled. */
  #pumping = false;
  /** Hops left before the next batch. */
  #hopsLeft = 0;
  /** When the current run of batches began (clock time), for the slice. */
  #sliceStart = 0;

  constructor(options: ResumeBatchesOptions) {
    this.#size = integerAtLeast(options.resumeBatchSize ?? 256, 'resumeBatchSize', 1);
    this.#gap = integerAtLeast(options.gap ?? 16, 'gap', 1);
    const sliceMs = options.resumeSliceMs ?? 100;
    if (typeof sliceMs !== 'number' || Number.isNaN(sliceMs) || sliceMs < 0) {
      throw new InvalidArgumentError(`resumeSliceMs must be a number >= 0, got ${String(sliceMs)}`, 'resumeSliceMs');
    }
    this.#sliceMs = sliceMs;
    this.#clock = options.clock;
  }

  /** Resumptions waiting for a later batch. */
  get queued(): number {
    return this.#tail - this.#head;
  }

  /** Resumes `woken` now when the current batch has room and nothing is queued before it; else queues it. */
  schedule(woken: Resumable): void {
    if (this.#burst < this.#size && this.#head === this.#tail) {
      this.#burst++;
      if (!this.#pumping) this.#startPump();
      woken.resume();
      return;
    }
    const queue = this.#queue;
    if (this.#tail < queue.length) queue[this.#tail] = woken;
    else queue.push(woken);
    this.#tail++;
    if (!this.#pumping) this.#startPump();
  }

  #startPump(): void {
    this.#pumping = true;
    this.#hopsLeft = this.#gap;
    this.#sliceStart = this.#clock.now();
    void SETTLED.then(this.#hop);
  }

  #onHop(): void {
    if (this.#head === this.#tail) {
      // Nothing waits: the burst is over, and the next wake-up starts a fresh one.
      this.#stop();
      return;
    }
    if (--this.#hopsLeft > 0) {
      void SETTLED.then(this.#hop);
      return;
    }
    if (this.#clock.now() - this.#sliceStart >= this.#sliceMs) {
      onLaterTurn(this.#clock, this.#turn);
      return;
    }
    this.#release();
  }

  #onTurn(): void {
    this.#sliceStart = this.#clock.now();
    this.#release();
  }

  #release(): void {
    const queue = this.#queue;
    const end = Math.min(this.#tail, this.#head + this.#size);
    this.#hopsLeft = this.#gap;
    void SETTLED.then(this.#hop);
    while (this.#head < end) {
      const woken = queue[this.#head]!;
      queue[this.#head++] = undefined;
      woken.resume();
    }
    if (this.#head === this.#tail) {
      this.#head = this.#tail = 0;
      // A burst far above the usual leaves its array behind rather than keeping it forever.
      if (queue.length > MAX_KEPT_QUEUE) this.#queue = [];
    }
  }

  #stop(): void {
    this.#pumping = false;
    this.#burst = 0;
  }
}
