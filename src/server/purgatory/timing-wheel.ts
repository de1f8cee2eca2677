/**
 * A hierarchical timing wheel (Varghese & Lauck; the design of Kafka's `TimingWheel` + `SystemTimer`)
 * for holding very many timeouts cheaply: adding and cancelling a task are O(1), and the whole wheel is
 * driven by ONE unref'd timer armed for the earliest non-empty bucket — never a periodic tick.
 *
 * - Every task is its own node in an intrusive doubly linked bucket list (no wrapper objects).
 * - Deadlines are rounded **up** to a tick, so no task ever runs early; it runs at most about one tick
 *   (plus timer and event-loop latency) late.
 * - Level 0 has `wheelSize` buckets of `tickMs`; each overflow level is `wheelSize` times coarser and is
 *   created only when a deadline needs it. Tasks cascade down as their coarse bucket comes due.
 * - Expired tasks run in bounded batches (`maxBatch`), yielding to the event loop between batches.
 * - Time comes from the injected {@link Clock}'s monotonic `now()`, never `Date.now()`.
 *
 * @module
 */
import { type Clock, type TimerHandle, systemClock } from '../../core/clock.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { integerAtLeast } from '../validate.js';

/** Default tick: 1 ms. */
export const DEFAULT_TICK_MS = 1;
/**
 * Default number of buckets per level. A power of two (slot = deadline & mask); 512 one-millisecond
 * buckets cover 0.5 s at level 0 and 262 s at level 1, so typical long-poll timeouts cascade at most once.
 * See docs/purgatory.md for the measurement behind the choice.
 */
export const DEFAULT_WHEEL_SIZE = 512;
/** Default number of expired tasks run before yielding to the event loop. */
export const DEFAULT_MAX_BATCH = 8192;

/**
 * A unit of work held by a {@link TimingWheel}. Subclass it and override {@link TimerTask.run}, or use
 * {@link TimingWheel.schedule} with a plain function. The task object itself is the list node: holding a
 * task in the wheel allocates nothing else.
 *
 * @example
 * ```ts
 * import { TimerTask, TimingWheel } from 'pollkit/server';
 * class Hello extends TimerTask {
 *   override run(): void { console.log('hello'); }
 * }
 * const wheel = new TimingWheel();
 * wheel.add(new Hello(), 100);
 * ```
 */
export class TimerTask {
  /** @internal next task in the same bucket. */
  _tNext: TimerTask | null = null;
  /** @internal previous task in the same bucket. */
  _tPrev: TimerTask | null = null;
  /** @internal the bucket holding this task, or null. */
  _bucket: TimerTaskList | null = null;
  /** @internal the deadline in wheel time (integer ms, tick-rounded); subclasses may reuse it before `add`. */
  _exp = 0;

  /** Called once when the deadline has passed. */
  run(): void {}

  /** Removes the task from its wheel if it is waiting; returns true when it was. O(1). */
  cancel(): boolean {
    const bucket = this._bucket;
    if (bucket === null) return false;
    bucket.remove(this);
    return true;
  }

  /** True while the task waits in a wheel (including expired tasks queued to run). */
  get isScheduled(): boolean {
    return this._bucket !== null;
  }
}

class FunctionTask extends TimerTask {
  readonly #fn: () => void;
  constructor(fn: () => void) {
    super();
    this.#fn = fn;
  }
  override run(): void {
    this.#fn();
  }
}

/**
 * A doubly linked list of tasks sharing one expiration (Kafka's `TimerTaskList`).
 *
 * @internal
 */
export class TimerTaskList {
  _head: TimerTask | null = null;
  _tail: TimerTask | null = null;
  _count = 0;
  /** The bucket's expiration in wheel time, or -1 when empty / not queued. */
  _exp = -1;
  /** Index in the timer's bucket heap, or -1. */
  _heapIndex = -1;
  readonly _timer: TimingWheel;

  constructor(timer: TimingWheel) {
    this._timer = timer;
  }

  append(task: TimerTask): void {
    task._bucket = this;
    task._tNext = null;
    const tail = this._tail;
    task._tPrev = tail;
    if (tail === null) this._head = task;
    else tail._tNext = task;
    this._tail = task;
    this._count++;
  }

  remove(task: TimerTask): void {
    const prev = task._tPrev;
    const next = task._tNext;
    if (prev === null) this._head = next;
    else prev._tNext = next;
    if (next === null) this._tail = prev;
    else next._tPrev = prev;
    task._tPrev = task._tNext = null;
    task._bucket = null;
    this._count--;
    this._timer._size--;
    if (this._count === 0 && this._heapIndex >= 0) this._timer._dropBucket(this);
  }

  /** Detaches every task at once and returns the first (the rest follow through `_tNext`). */
  takeAll(): TimerTask | null {
    const head = this._head;
    this._head = this._tail = null;
    this._count = 0;
    return head;
  }
}

/** One level of the hierarchy. */
class WheelLevel {
  readonly tickMs: number;
  readonly wheelSize: number;
  readonly interval: number;
  readonly buckets: (TimerTaskList | undefined)[];
  currentTime: number;
  overflow: WheelLevel | null = null;

  constructor(tickMs: number, wheelSize: number, startMs: number) {
    this.tickMs = tickMs;
    this.wheelSize = wheelSize;
    this.interval = tickMs * wheelSize;
    this.buckets = new Array<TimerTaskList | undefined>(wheelSize).fill(undefined);
    this.currentTime = startMs - (startMs % tickMs);
  }

  advance(timeMs: number): void {
    if (timeMs >= this.currentTime + this.tickMs) {
      this.currentTime = timeMs - (timeMs % this.tickMs);
      this.overflow?.advance(this.currentTime);
    }
  }
}

/** Options for {@link TimingWheel}. */
export interface TimingWheelOptions {
  /** Source of monotonic time and of the one driving timer. Default {@link systemClock}. */
  readonly clock?: Clock;
  /** Resolution in whole milliseconds (>= 1). Default 1. */
  readonly tickMs?: number;
  /** Buckets per level (>= 2). Default 512. */
  readonly wheelSize?: number;
  /**
   * `'auto'` (default): the wheel arms one unref'd timer on `clock` for its earliest bucket and runs
   * tasks by itself. `'manual'`: nothing is armed; time moves only through {@link TimingWheel.advanceClock}.
   */
  readonly mode?: 'auto' | 'manual';
  /** Expired tasks run per batch before yielding to the event loop (auto mode). Default 8192. */
  readonly maxBatch?: number;
  /**
   * Receives errors thrown by tasks; the other tasks still run. Default: rethrown in a microtask
   * (an uncaught exception, as a throwing `setTimeout` callback would be).
   */
  readonly onError?: (error: unknown) => void;
}

const defaultOnError = (error: unknown): void => {
  queueMicrotask(() => {
    throw error;
  });
};

/**
 * The timer facade (Kafka's `SystemTimer`): a hierarchical wheel plus a min-heap of non-empty buckets,
 * driven by one timer armed for the earliest bucket.
 *
 * @example
 * ```ts
 * import { ManualClock } from 'pollkit';
 * import { TimingWheel } from 'pollkit/server';
 *
 * const clock = new ManualClock();
 * const wheel = new TimingWheel({ clock });
 * const task = wheel.schedule(() => console.log('fired'), 250);
 * clock.advance(250); // fired
 * task.cancel(); // false: already ran
 * ```
 */
export class TimingWheel {
  /** Resolution in milliseconds: deadlines are rounded up to a multiple of it. */
  readonly tickMs: number;
  /** Buckets per level. */
  readonly wheelSize: number;
  /** `'auto'`: driven by one timer on the clock; `'manual'`: moved only by `advanceClock`. */
  readonly mode: 'auto' | 'manual';
  /** Expired tasks run per batch before yielding to the event loop. */
  readonly maxBatch: number;
  readonly #clock: Clock;
  readonly #origin: number;
  readonly #onError: (error: unknown) => void;
  readonly #root: WheelLevel;
  /** Min-heap of queued buckets by expiration. */
  readonly #heap: TimerTaskList[] = [];
  /** Expired tasks waiting for their batch. */
  readonly #ready: TimerTaskList;
  /** @internal tasks held (buckets + ready queue). */
  _size = 0;
  #manualNow: number;
  #handle: TimerHandle | undefined = undefined;
  #armedAt = Infinity;
  #yieldScheduled = false;
  #running = false;
  #shutdown = false;
  #timersArmed = 0;

  constructor(options: TimingWheelOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.tickMs = integerAtLeast(options.tickMs ?? DEFAULT_TICK_MS, 'tickMs', 1);
    this.wheelSize = integerAtLeast(options.wheelSize ?? DEFAULT_WHEEL_SIZE, 'wheelSize', 2);
    this.maxBatch = integerAtLeast(options.maxBatch ?? DEFAULT_MAX_BATCH, 'maxBatch', 1);
    this.mode = options.mode ?? 'auto';
    if (this.mode !== 'auto' && this.mode !== 'manual') {
      throw new InvalidArgumentError(`mode must be 'auto' or 'manual', got ${String(this.mode)}`, 'mode');
    }
    this.#onError = options.onError ?? defaultOnError;
    this.#origin = Math.floor(this.#clock.now());
    this.#manualNow = this.#origin;
    this.#root = new WheelLevel(this.tickMs, this.wheelSize, 0);
    this.#ready = new TimerTaskList(this);
  }

  /** The wheel's notion of now in the clock's time domain (the last `advanceClock` target in manual mode). */
  now(): number {
    return this.mode === 'manual' ? this.#manualNow : this.#clock.now();
  }

  /** Number of tasks held, including expired ones queued to run. */
  size(): number {
    return this._size;
  }

  /** True while the driving timer is armed (auto mode). */
  get armed(): boolean {
    return this.#handle !== undefined;
  }

  /** How many times the driving timer has been armed since construction (for tests and metrics). */
  get timersArmed(): number {
    return this.#timersArmed;
  }

  /** Number of overflow levels created so far (0 when only the root wheel exists). */
  get overflowLevels(): number {
    let n = 0;
    for (let level = this.#root.overflow; level !== null; level = level.overflow) n++;
    return n;
  }

  /** Runs `fn` once, `delayMs` from now (never earlier); returns the task, whose `cancel()` is O(1). */
  schedule(fn: () => void, delayMs: number): TimerTask {
    const task = new FunctionTask(fn);
    this.add(task, delayMs);
    return task;
  }

  /**
   * Holds `task` until `delayMs` from now (rounded up to a tick), then calls its `run()`. A delay of
   * zero or less runs the task synchronously, now. A task already waiting is moved to the new deadline.
   */
  add(task: TimerTask, delayMs: number): void {
    if (Number.isNaN(delayMs)) throw new InvalidArgumentError('delayMs must be a number, got NaN', 'delayMs');
    if (task._bucket !== null) task.cancel();
    if (this.#shutdown) return;
    const rel = this.now() - this.#origin;
    if (!(delayMs > 0)) {
      this.#runOne(task);
      return;
    }
    if (delayMs === Infinity) return;
    const tick = this.tickMs;
    let deadline = Math.ceil(rel + delayMs);
    if (tick !== 1) deadline = Math.ceil(deadline / tick) * tick;
    task._exp = deadline;
    // While nothing is overdue, keep the wheel's time current so new deadlines land in fine buckets.
    const top = this.#heap[0];
    if (top === undefined || top._exp > rel) this.#root.advance(Math.floor(rel));
    this._size++;
    if (!this.#place(task)) {
      this._size--;
      this.#runOne(task);
      return;
    }
    if (this.mode === 'auto' && !this.#running) this.#arm();
  }

  /**
   * Moves the wheel to `toMs` (clock time; default `clock.now()`) and runs every task whose deadline
   * has passed, synchronously and without batching. Returns how many tasks ran. In manual mode this is
   * the only way time moves; in auto mode it forces an early catch-up.
   */
  advanceClock(toMs?: number): number {
    if (this.#shutdown) return 0;
    if (this.mode === 'manual') {
      const target = toMs ?? this.#clock.now();
      if (target > this.#manualNow) this.#manualNow = target;
    }
    // In auto mode the clock is the only source of time: a target beyond it would fire tasks early.
    const rel = (this.mode === 'manual' ? this.#manualNow : this.#clock.now()) - this.#origin;
    this.#collect(rel);
    const ran = this.#drain(Infinity);
    if (this.mode === 'auto') this.#arm();
    return ran;
  }

  /** Drops every task without running it and disarms; later `add` calls are ignored. */
  shutdown(): void {
    this.#shutdown = true;
    this.#disarm();
    for (const bucket of this.#heap) {
      for (let t = bucket.takeAll(); t !== null;) {
        const next = t._tNext;
        t._tNext = t._tPrev = null;
        t._bucket = null;
        t = next;
      }
      bucket._exp = -1;
      bucket._heapIndex = -1;
    }
    this.#heap.length = 0;
    for (let t = this.#ready.takeAll(); t !== null;) {
      const next = t._tNext;
      t._tNext = t._tPrev = null;
      t._bucket = null;
      t = next;
    }
    this._size = 0;
  }

  /** True after {@link TimingWheel.shutdown}. */
  get isShutdown(): boolean {
    return this.#shutdown;
  }

  // ---------------------------------------------------------------------------------------------------

  /** Puts a task in its bucket; false when it is already due. */
  #place(task: TimerTask): boolean {
    const exp = task._exp;
    let level = this.#root;
    if (exp <= level.currentTime) return false;
    for (;;) {
      if (exp < level.currentTime + level.interval) {
        const virtualId = Math.floor(exp / level.tickMs);
        const index = virtualId % level.wheelSize;
        let bucket = level.buckets[index];
        if (bucket === undefined) {
          bucket = new TimerTaskList(this);
          level.buckets[index] = bucket;
        }
        bucket.append(task);
        const bucketExp = virtualId * level.tickMs;
        if (bucket._exp !== bucketExp) {
          // A bucket is reused only after it was flushed, so it is not in the heap here.
          bucket._exp = bucketExp;
          this.#heapPush(bucket);
        }
        return true;
      }
      if (level.overflow === null) {
        level.overflow = new WheelLevel(level.interval, level.wheelSize, level.currentTime);
      }
      level = level.overflow;
    }
  }

  /** Flushes every bucket due at `rel`, cascading coarse buckets and queueing expired tasks. */
  #collect(rel: number): void {
    const heap = this.#heap;
    const ready = this.#ready;
    for (;;) {
      const top = heap[0];
      if (top === undefined || top._exp > rel) break;
      this.#heapPop();
      this.#root.advance(top._exp);
      top._exp = -1;
      let t = top.takeAll();
      while (t !== null) {
        const next = t._tNext;
        t._tNext = t._tPrev = null;
        t._bucket = null;
        if (!this.#place(t)) ready.append(t);
        t = next;
      }
    }
    if (heap.length === 0 || heap[0]!._exp > rel) this.#root.advance(Math.floor(rel));
  }

  /** Runs up to `limit` ready tasks; returns how many ran. */
  #drain(limit: number): number {
    const ready = this.#ready;
    let ran = 0;
    const wasRunning = this.#running;
    this.#running = true;
    try {
      while (ran < limit) {
        const t = ready._head;
        if (t === null) break;
        ready.remove(t);
        ran++;
        try {
          t.run();
        } catch (error) {
          this.#onError(error);
        }
      }
    } finally {
      this.#running = wasRunning;
    }
    return ran;
  }

  #runOne(task: TimerTask): void {
    try {
      task.run();
    } catch (error) {
      this.#onError(error);
    }
  }

  readonly #onTimer = (): void => {
    this.#handle = undefined;
    this.#armedAt = Infinity;
    this.#step();
  };

  readonly #onYield = (): void => {
    this.#yieldScheduled = false;
    this.#step();
  };

  #step(): void {
    if (this.#shutdown) return;
    this.#collect(this.#clock.now() - this.#origin);
    this.#drain(this.maxBatch);
    this.#arm();
  }

  /** Arms the one timer for the earliest bucket, or a yield when expired tasks still wait. */
  #arm(): void {
    if (this.mode !== 'auto' || this.#shutdown) return;
    if (this.#ready._head !== null) {
      if (!this.#yieldScheduled) {
        this.#yieldScheduled = true;
        scheduleYield(this.#clock, this.#onYield);
      }
      return;
    }
    const top = this.#heap[0];
    if (top === undefined) {
      this.#disarm();
      return;
    }
    const at = top._exp;
    if (this.#handle !== undefined && this.#armedAt <= at) return;
    this.#disarm();
    const delay = Math.max(0, Math.ceil(at + this.#origin - this.#clock.now()));
    this.#armedAt = at;
    this.#timersArmed++;
    this.#handle = this.#clock.setTimeout(this.#onTimer, delay, { unref: true });
  }

  #disarm(): void {
    if (this.#handle !== undefined) {
      this.#clock.clearTimeout(this.#handle);
      this.#handle = undefined;
      this.#armedAt = Infinity;
    }
  }

  /** @internal called when a cancel empties a queued bucket. */
  _dropBucket(bucket: TimerTaskList): void {
    if (bucket === this.#ready) return;
    this.#heapRemove(bucket._heapIndex);
    bucket._exp = -1;
    if (this.#heap.length === 0 && !this.#running) this.#disarm();
  }

  // Binary min-heap of buckets keyed by `_exp`. ------------------------------------------------------

  #heapPush(bucket: TimerTaskList): void {
    const heap = this.#heap;
    heap.push(bucket);
    this.#siftUp(heap.length - 1, bucket);
  }

  #heapPop(): void {
    this.#heapRemove(0);
  }

  #heapRemove(index: number): void {
    const heap = this.#heap;
    const removed = heap[index]!;
    removed._heapIndex = -1;
    const last = heap.pop()!;
    if (index < heap.length) {
      heap[index] = last;
      last._heapIndex = index;
      if (index > 0 && heap[(index - 1) >> 1]!._exp > last._exp) this.#siftUp(index, last);
      else this.#siftDown(index, last);
    }
  }

  #siftUp(index: number, bucket: TimerTaskList): void {
    const heap = this.#heap;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex]!;
      if (parent._exp <= bucket._exp) break;
      heap[index] = parent;
      parent._heapIndex = index;
      index = parentIndex;
    }
    heap[index] = bucket;
    bucket._heapIndex = index;
  }

  #siftDown(index: number, bucket: TimerTaskList): void {
    const heap = this.#heap;
    const n = heap.length;
    for (;;) {
      let child = 2 * index + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && heap[right]!._exp < heap[child]!._exp) child = right;
      const c = heap[child]!;
      if (c._exp >= bucket._exp) break;
      heap[index] = c;
      c._heapIndex = index;
      index = child;
    }
    heap[index] = bucket;
    bucket._heapIndex = index;
  }
}

type ImmediateFn = (fn: () => void) => unknown;

/**
 * Yields to the event loop: `setImmediate` with the real clock, a zero-delay clock timer otherwise.
 * The immediate is deliberately not unref'd: Node does not wake its poll phase for unref'd
 * immediates, so an unref'd one would wait for the next unrelated timer (up to seconds). It holds
 * the process only while already-expired tasks remain to run.
 */
function scheduleYield(clock: Clock, fn: () => void): void {
  const immediate = (globalThis as { setImmediate?: ImmediateFn }).setImmediate;
  if (clock === systemClock && typeof immediate === 'function') {
    immediate(fn);
  } else {
    clock.setTimeout(fn, 0, { unref: true });
  }
}
