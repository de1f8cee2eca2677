/**
 * Kafka's `DelayedOperation` and `DelayedOperationPurgatory`, adapted to one thread: operations that
 * wait for a condition on one or more keys, complete as soon as an event on a key satisfies them, and
 * expire after a timeout held in a {@link TimingWheel}.
 *
 * - Every operation is itself the node of its timer bucket and the element of its keys' watcher lists
 *   (its slot in a further key's list costs two array elements). A completed operation leaves every
 *   watcher list at once, so `watched()` is exact at all times and a key with no watcher disappears
 *   (no KAFKA-664 leak).
 * - Settlement wins exactly once across completion, expiry, cancellation, abort and shutdown, and
 *   `onComplete` runs exactly once.
 * - `waitFor` is the promise form used by long polls, jobs and topics.
 *
 * @module
 */
import { abortReason } from '../../core/abort.js';
import { type Clock, systemClock } from '../../core/clock.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { type Resumable, ResumeBatches } from './resume-batches.js';
import { TimerTask, TimingWheel } from './timing-wheel.js';

/** What operations watch: a job id, a topic name, a partition… */
export type PurgatoryKey = string;

/** How a {@link DelayedOperationPurgatory.waitFor} ended. Only an abort or a throwing check rejects. */
export type WaitOutcome<T> =
  | {
      /** `check()` returned a value. */
      readonly status: 'completed';
      /** What `check()` returned. */
      readonly value: T;
    }
  | {
      /** The timeout passed: a normal outcome, not an exception. */
      readonly status: 'expired';
    }
  | {
      /** `cancelForKey` on one of its keys. */
      readonly status: 'canceled';
    }
  | {
      /** `purgatory.shutdown()`. */
      readonly status: 'shutdown';
    };

/**
 * What the owner of a held operation decides when it is about to wait: `'hold'` waits in the
 * purgatory, `'now'` answers at once with the state as it is, `'refused'` means the owner answered
 * itself (a limit was reached) and nothing more happens.
 *
 * @internal
 */
export type Admission = 'hold' | 'now' | 'refused';

/** How an operation was settled, or `'pending'`. */
export type Settlement = 'pending' | 'completed' | 'expired' | 'canceled' | 'shutdown' | 'aborted' | 'failed';

const NEW = 0;
const WATCHING = 1;
const COMPLETED = 2;
const EXPIRED = 3;
const CANCELED = 4;
const SHUTDOWN = 5;
const ABORTED = 6;
const FAILED = 7;
const SETTLEMENTS: readonly Settlement[] = [
  'pending',
  'pending',
  'completed',
  'expired',
  'canceled',
  'shutdown',
  'aborted',
  'failed',
];

const EXPIRED_OUTCOME: WaitOutcome<never> = Object.freeze({ status: 'expired' });
const CANCELED_OUTCOME: WaitOutcome<never> = Object.freeze({ status: 'canceled' });
const SHUTDOWN_OUTCOME: WaitOutcome<never> = Object.freeze({ status: 'shutdown' });

/** Where an operation watches one key: the key itself while it is the key's only watcher, else the key's list. */
type Place = PurgatoryKey | WatcherList;

/**
 * The watchers of a key with more than one: a dense array of the operations themselves, walked in
 * order (one object touched per watcher, cache-friendly, unlike a linked list or an entry object per
 * key). Leaving leaves a hole that later appends never reuse until the array is compacted — which
 * happens only while no walk is running, so walks neither skip nor revisit.
 */
class WatcherList {
  readonly key: PurgatoryKey;
  readonly ops: (DelayedOperation | null)[];
  live = 0;
  /**
   * Where each slot's operation keeps its place for this key: -1 in its own first-key fields, else the
   * index of the pair in its `_extra`, so compaction moves a slot in O(1) whatever the operation's key
   * count. Made only once an operation watching this key as a further key joins.
   */
  pairs: number[] | null = null;

  constructor(key: PurgatoryKey, first: DelayedOperation) {
    this.key = key;
    this.ops = [];
    // The key's single watcher becomes the list's first slot: find where it keeps its place.
    let pair = -1;
    if (first._wAt !== key) {
      const extra = first._extra!;
      for (let i = 0; i < extra.length; i += 2) {
        if (extra[i] === key) {
          pair = i;
          break;
        }
      }
    }
    setPlace(first, pair, this, this.push(first, pair));
  }

  /** Appends `op`, whose place for this key is `pair` (see {@link WatcherList.pairs}); returns its slot. */
  push(op: DelayedOperation, pair: number): number {
    const ops = this.ops;
    const index = ops.length;
    ops.push(op);
    this.live++;
    if (pair >= 0 && this.pairs === null) this.pairs = new Array<number>(index).fill(-1);
    this.pairs?.push(pair);
    return index;
  }

  compactIfSparse(): void {
    const ops = this.ops;
    // Walks visit holes too, so they are kept under a quarter of the slots; each compaction moves the
    // live operations once for every third of them that left, so leaving stays O(1) amortized.
    const holes = ops.length - this.live;
    if (holes < 8 || holes * 4 < ops.length) return;
    const pairs = this.pairs;
    let j = 0;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (op === null) continue;
      if (i !== j) {
        ops[j] = op;
        const pair = pairs === null ? -1 : pairs[i]!;
        if (pairs !== null) pairs[j] = pair;
        setPlace(op, pair, this, j);
      }
      j++;
    }
    ops.length = j;
    if (pairs !== null) pairs.length = j;
  }
}

/** Records that `op`'s place for a key (its first-key fields when `pair` is -1, else that pair) is `index` in `place`. */
function setPlace(op: DelayedOperation, pair: number, place: Place, index: number): void {
  if (pair < 0) {
    op._wAt = place;
    op._wIndex = index;
  } else {
    const extra = op._extra!;
    extra[pair] = place;
    extra[pair + 1] = index;
  }
}

/** Options for {@link DelayedOperation}. */
export interface DelayedOperationOptions {
  /** Aborting settles the operation as `'aborted'` (before watching: at once) and unlinks it. */
  readonly signal?: AbortSignal;
}

/**
 * An operation that completes when {@link DelayedOperation.tryComplete} says so or expires after
 * `delayMs` (Kafka's `DelayedOperation`). Subclass it, implement `tryComplete` (call `forceComplete()`
 * when the condition holds and return its result) and `onComplete`, and hand it to
 * {@link DelayedOperationPurgatory.tryCompleteElseWatch}.
 *
 * `onComplete` runs exactly once, however the operation ends; {@link DelayedOperation.settlement} says
 * how. After an expiry `onExpiration` runs too (after `onComplete`, as in Kafka).
 *
 * @example
 * ```ts
 * import { DelayedOperation, DelayedOperationPurgatory } from 'pollkit/server';
 *
 * let available = 0;
 * class DelayedFetch extends DelayedOperation {
 *   constructor(readonly minBytes: number) { super(30_000); }
 *   tryComplete(): boolean { return available >= this.minBytes ? this.forceComplete() : false; }
 *   onComplete(): void { console.log('respond:', this.settlement); }
 * }
 * const purgatory = new DelayedOperationPurgatory();
 * purgatory.tryCompleteElseWatch(new DelayedFetch(10), ['orders-0']);
 * available = 12;
 * purgatory.checkAndComplete('orders-0'); // respond: completed
 * ```
 */
export abstract class DelayedOperation extends TimerTask {
  /** The timeout in milliseconds (`Infinity`: never expires; `<= 0`: expires as soon as it is watched). */
  readonly delayMs: number;
  /** @internal */
  _state = NEW;
  /** @internal slot in the first key's watcher list (-1: the key's only watcher). */
  _wIndex = -1;
  /** @internal the first key's watcher list, or the key itself while the operation is its only watcher. */
  _wAt: Place | undefined = undefined;
  /**
   * @internal the places of the second and later keys, as pairs (place, index). Like `_signal`, it
   * lives on the prototype until an operation needs its own: most operations watch one key without a
   * signal, and every field is paid for by each of the ten thousand held at once.
   */
  declare _extra: (Place | number)[] | null;
  /** @internal */
  _purgatory: DelayedOperationPurgatory | null = null;
  /** @internal */
  declare _signal: AbortSignal | undefined;

  constructor(delayMs: number, options?: DelayedOperationOptions) {
    super();
    if (typeof delayMs !== 'number' || Number.isNaN(delayMs)) {
      throw new InvalidArgumentError(`delayMs must be a number, got ${String(delayMs)}`, 'delayMs');
    }
    this.delayMs = delayMs;
    const signal = options?.signal;
    if (signal !== undefined) this._signal = signal;
  }

  /** Checks the condition; when it holds, returns `this.forceComplete()`, otherwise false. */
  abstract tryComplete(): boolean;
  /** Runs exactly once when the operation ends, whichever way; see {@link DelayedOperation.settlement}. */
  abstract onComplete(): void;
  /** Runs after `onComplete` when the operation expired. */
  onExpiration(): void {}

  /**
   * Completes the operation unless it already ended; true only for the call that won. Unlinks it from
   * the timer and every watcher list, then runs `onComplete`.
   */
  forceComplete(): boolean {
    return this._settle(COMPLETED);
  }

  /**
   * Ends the operation as `'aborted'`, as an abort of its signal would (say, the client hung up), unless
   * it already ended; true only for the call that won. A held request whose connection closes is
   * canceled this way without an `AbortSignal` of its own.
   *
   * @example
   * ```ts
   * import { DelayedOperation, DelayedOperationPurgatory } from 'pollkit/server';
   * class Held extends DelayedOperation {
   *   tryComplete(): boolean { return false; }
   *   onComplete(): void { console.log(this.settlement); }
   * }
   * const held = new Held(30_000);
   * new DelayedOperationPurgatory().tryCompleteElseWatch(held, ['job:1']);
   * held.abort(); // aborted
   * ```
   */
  abort(): boolean {
    return this._settle(ABORTED);
  }

  /** True once the operation has ended, whichever way. */
  isCompleted(): boolean {
    return this._state >= COMPLETED;
  }

  /** How the operation ended, or `'pending'`. */
  get settlement(): Settlement {
    return SETTLEMENTS[this._state]!;
  }

  /** The signal given at construction, if any. */
  get signal(): AbortSignal | undefined {
    return this._signal;
  }

  /** @internal timer expiry. */
  override run(): void {
    if (this._settle(EXPIRED)) this.onExpiration();
  }

  /** @internal the operation is its own abort listener, so watching a signal allocates no closure. */
  handleEvent(): void {
    this._settle(ABORTED);
  }

  /** @internal stops listening to the signal once the operation has left its watcher lists. */
  _unlisten(): void {
    this._signal!.removeEventListener('abort', this);
  }

  /** @internal the single gate through which every ending passes. */
  _settle(state: number): boolean {
    const was = this._state;
    if (was >= COMPLETED) return false;
    this._state = state;
    if (this._bucket !== null) this.cancel();
    const purgatory = this._purgatory;
    if (purgatory !== null) purgatory._settled(this, was === WATCHING, state);
    this.onComplete();
    return true;
  }
}
Object.defineProperty(DelayedOperation.prototype, '_extra', { value: null, writable: true });
Object.defineProperty(DelayedOperation.prototype, '_signal', { value: undefined, writable: true });

/** The promise form's operation: holds the check while pending and the value once completed. */
class WaitOperation<T> extends DelayedOperation implements Resumable {
  _slot: unknown;
  readonly _resolve: (outcome: WaitOutcome<T> | PromiseLike<WaitOutcome<T>>) => void;

  constructor(
    delayMs: number,
    signal: AbortSignal | undefined,
    check: () => T | undefined,
    resolve: (outcome: WaitOutcome<T> | PromiseLike<WaitOutcome<T>>) => void,
  ) {
    super(delayMs, signal === undefined ? undefined : { signal });
    this._slot = check;
    this._resolve = resolve;
  }

  tryComplete(): boolean {
    let value: T | undefined;
    try {
      value = (this._slot as () => T | undefined)();
    } catch (error) {
      if (this._state < COMPLETED) {
        this._slot = error;
        this._settle(FAILED);
      }
      return false;
    }
    if (value === undefined || this._state >= COMPLETED) return false;
    this._slot = value;
    return this._settle(COMPLETED);
  }

  onComplete(): void {
    // The purgatory paces the resolutions: one walk may settle thousands of waits.
    this._purgatory!._resume(this);
  }

  /**
   * @internal Deferred to {@link WaitOperation.resume}: removing a listener from an `AbortSignal` is the
   * dearest step of settling an operation, and a walk that settles thousands should end quickly. An
   * abort in between finds the operation settled and changes nothing.
   */
  override _unlisten(): void {}

  /** @internal resolves the promise with how the operation ended (its signal was listened to while it watched). */
  resume(): void {
    this._signal?.removeEventListener('abort', this);
    switch (this._state) {
      case COMPLETED:
        this._resolve({ status: 'completed', value: this._slot as T });
        break;
      case EXPIRED:
        this._resolve(EXPIRED_OUTCOME);
        break;
      case CANCELED:
        this._resolve(CANCELED_OUTCOME);
        break;
      case SHUTDOWN:
        this._resolve(SHUTDOWN_OUTCOME);
        break;
      case ABORTED:
        this._resolve(Promise.reject(abortReason(this._signal!)));
        break;
      default:
        this._resolve(Promise.reject(this._slot));
    }
    this._slot = undefined;
  }
}

/** Options for {@link DelayedOperationPurgatory}. */
export interface DelayedOperationPurgatoryOptions {
  /** Source of monotonic time and of the one driving timer. Default `systemClock`. */
  readonly clock?: Clock;
  /** Timer resolution in whole milliseconds. Default 1. */
  readonly tickMs?: number;
  /** Buckets per timing-wheel level. Default 512. */
  readonly wheelSize?: number;
  /** A name for logs and metrics. Default `'purgatory'`. */
  readonly name?: string;
  /** `'manual'`: the timer moves only through {@link DelayedOperationPurgatory.advanceClock}. Default `'auto'`. */
  readonly mode?: 'auto' | 'manual';
  /** Expirations run per batch before yielding to the event loop. Default 8192. */
  readonly maxBatch?: number;
  /** Receives errors thrown by `onComplete`/`onExpiration` during expiry. Default: rethrown in a microtask. */
  readonly onError?: (error: unknown) => void;
  /**
   * How many `waitFor` promises are resolved together when one walk settles many of them: the first
   * batch at once, each later one a few microtasks after the one before, so the first resumed callers
   * finish (say, write their answers) before the last ones start. Default 256.
   */
  readonly resumeBatchSize?: number;
  /**
   * How long batches may follow each other before the next one waits for an event-loop turn, so one
   * very large wake-up cannot starve sockets and timers. Default 100 ms.
   */
  readonly resumeSliceMs?: number;
}

/** Counters a server operator wants; see {@link DelayedOperationPurgatory.metrics}. */
export interface PurgatoryMetrics {
  /** The purgatory's name. */
  readonly name: string;
  /** Operations watching at least one key and not yet settled. */
  readonly pending: number;
  /** Keys with at least one watcher. */
  readonly watchedKeys: number;
  /** Watcher entries across all keys (an operation on K keys counts K). */
  readonly watched: number;
  /** Operations held by the timer. */
  readonly delayed: number;
  /** Operations completed (their condition held), since construction. */
  readonly completions: number;
  /** Operations that expired. */
  readonly expirations: number;
  /** Operations settled by `cancelForKey`. */
  readonly cancellations: number;
  /** Operations settled by their abort signal. */
  readonly aborts: number;
  /** Operations settled by `shutdown`. */
  readonly shutdowns: number;
  /** Operations whose check threw (waitFor). */
  readonly failures: number;
}

/**
 * Holds delayed operations by key (Kafka's `DelayedOperationPurgatory`), single-threaded.
 *
 * @example
 * ```ts
 * import { DelayedOperationPurgatory } from 'pollkit/server';
 *
 * const purgatory = new DelayedOperationPurgatory();
 * let latest: string | undefined;
 * const wait = purgatory.waitFor(['topic:orders'], () => latest, { timeoutMs: 30_000 });
 * latest = 'order 1';
 * purgatory.checkAndComplete('topic:orders');
 * console.log(await wait); // { status: 'completed', value: 'order 1' }
 * ```
 */
export class DelayedOperationPurgatory {
  /** A name for logs and metrics. */
  readonly name: string;
  readonly #timer: TimingWheel;
  readonly #watchers = new Map<PurgatoryKey, DelayedOperation | WatcherList>();
  #watched = 0;
  #pending = 0;
  #completions = 0;
  #expirations = 0;
  #cancellations = 0;
  #aborts = 0;
  #shutdowns = 0;
  #failures = 0;
  #shutdown = false;
  /** Number of checkAndComplete walks running (re-entrant calls nest); lists are compacted only at 0. */
  #walkDepth = 0;
  readonly #resumes: ResumeBatches;

  constructor(options: DelayedOperationPurgatoryOptions = {}) {
    this.name = options.name ?? 'purgatory';
    this.#timer = new TimingWheel({
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.tickMs === undefined ? {} : { tickMs: options.tickMs }),
      ...(options.wheelSize === undefined ? {} : { wheelSize: options.wheelSize }),
      ...(options.mode === undefined ? {} : { mode: options.mode }),
      ...(options.maxBatch === undefined ? {} : { maxBatch: options.maxBatch }),
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    });
    this.#resumes = new ResumeBatches({ ...options, clock: options.clock ?? systemClock });
  }

  /** @internal paces the resolution of settled `waitFor` operations. */
  _resume(op: Resumable): void {
    this.#resumes.schedule(op);
  }

  /** The timing wheel holding this purgatory's timeouts. */
  get timer(): TimingWheel {
    return this.#timer;
  }

  /**
   * Tries to complete `op`; if it cannot, watches it on every key, tries once more (so an event between
   * the first try and the watch is not lost), then arms its timeout. Returns true only when this call
   * completed it.
   *
   * @throws InvalidArgumentError when `keys` is empty or `op` was already handed to a purgatory.
   */
  tryCompleteElseWatch(op: DelayedOperation, keys: readonly PurgatoryKey[]): boolean {
    if (keys.length === 0) throw new InvalidArgumentError('keys must not be empty', 'keys');
    if (op._state >= COMPLETED) return false;
    if (op._purgatory !== null || op._state !== NEW) {
      throw new InvalidArgumentError('the operation was already handed to a purgatory', 'op');
    }
    op._purgatory = this;
    if (this.#shutdown) {
      op._settle(SHUTDOWN);
      return false;
    }
    if (op._signal?.aborted === true) {
      op._settle(ABORTED);
      return false;
    }
    if (op.tryComplete()) return true;
    if (op._state !== NEW) return false;
    return this.#watchAndArm(op, keys);
  }

  /**
   * Waits until `check()` returns something other than `undefined` (re-run on every
   * `checkAndComplete` of one of `keys`), the timeout passes, a key is canceled or the purgatory shuts
   * down. `check` runs once up front, once after watching, and on every `checkAndComplete(key)`.
   * Rejects only with `signal.reason` on abort, or with what `check` threw.
   */
  waitFor<T>(
    keys: readonly PurgatoryKey[],
    check: () => T | undefined,
    options: { readonly timeoutMs: number; readonly signal?: AbortSignal },
  ): Promise<WaitOutcome<T>> {
    const timeoutMs = options.timeoutMs;
    if (keys.length === 0) return Promise.reject(new InvalidArgumentError('keys must not be empty', 'keys'));
    if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs)) {
      return Promise.reject(
        new InvalidArgumentError(`timeoutMs must be a number, got ${String(timeoutMs)}`, 'timeoutMs'),
      );
    }
    const signal = options.signal;
    if (signal?.aborted === true) return Promise.reject(abortReason(signal));
    if (this.#shutdown) return Promise.resolve(SHUTDOWN_OUTCOME);
    let value: T | undefined;
    try {
      value = check();
    } catch (error) {
      return Promise.reject(error);
    }
    if (value !== undefined) return Promise.resolve({ status: 'completed', value });
    let resolve!: (outcome: WaitOutcome<T> | PromiseLike<WaitOutcome<T>>) => void;
    const promise = new Promise<WaitOutcome<T>>((r) => {
      resolve = r;
    });
    const op = new WaitOperation<T>(timeoutMs, signal, check, resolve);
    op._purgatory = this;
    this.#watchAndArm(op, keys);
    return promise;
  }

  /** Re-checks the operations watching `key`; returns how many this call completed. */
  checkAndComplete(key: PurgatoryKey): number {
    const watchers = this.#watchers.get(key);
    if (watchers === undefined) return 0;
    if (!(watchers instanceof WatcherList)) return watchers._state === WATCHING && watchers.tryComplete() ? 1 : 0;
    // Walks the slots that exist now, in order. Operations appended while walking (they checked
    // themselves) lie past `n`; operations that leave while walking become holes, and holes are not
    // compacted while any walk runs: re-entrant callbacks neither skip nor revisit anything.
    const ops = watchers.ops;
    const n = ops.length;
    let completed = 0;
    let failure: { error: unknown } | undefined;
    this.#walkDepth++;
    try {
      for (let i = 0; i < n; i++) {
        const op = ops[i]!;
        if (op === null || op._state !== WATCHING) continue;
        try {
          if (op.tryComplete()) completed++;
        } catch (error) {
          failure ??= { error };
        }
      }
    } finally {
      if (--this.#walkDepth === 0 && watchers.live > 0) watchers.compactIfSparse();
    }
    if (failure !== undefined) throw failure.error;
    return completed;
  }

  /** Settles every operation watching `key` as `'canceled'`; returns how many. */
  cancelForKey(key: PurgatoryKey): number {
    const watchers = this.#watchers.get(key);
    if (watchers === undefined) return 0;
    let canceled = 0;
    for (const op of this.#snapshot(watchers)) if (op._settle(CANCELED)) canceled++;
    return canceled;
  }

  /** Total watcher entries across keys (an operation on K keys counts K). Exact at all times. */
  watched(): number {
    return this.#watched;
  }

  /** Operations held by the timer. */
  numDelayed(): number {
    return this.#timer.size();
  }

  /** Keys with at least one watcher. */
  watchedKeys(): number {
    return this.#watchers.size;
  }

  /** A snapshot of the counters. */
  metrics(): PurgatoryMetrics {
    return {
      name: this.name,
      pending: this.#pending,
      watchedKeys: this.#watchers.size,
      watched: this.#watched,
      delayed: this.#timer.size(),
      completions: this.#completions,
      expirations: this.#expirations,
      cancellations: this.#cancellations,
      aborts: this.#aborts,
      shutdowns: this.#shutdowns,
      failures: this.#failures,
    };
  }

  /** Manual mode: moves time to `toMs` and expires what is due; returns how many tasks ran. */
  advanceClock(toMs?: number): number {
    return this.#timer.advanceClock(toMs);
  }

  /**
   * Settles every pending operation as `'shutdown'` and stops the timer; no handle is left that keeps
   * the process alive. Later operations settle as `'shutdown'` at once.
   */
  shutdown(): void {
    if (this.#shutdown) return;
    this.#shutdown = true;
    const watchers = this.#watchers;
    while (watchers.size > 0) {
      const first = watchers.values().next().value as DelayedOperation | WatcherList;
      for (const op of this.#snapshot(first)) op._settle(SHUTDOWN);
    }
    this.#timer.shutdown();
  }

  /** True after {@link DelayedOperationPurgatory.shutdown}. */
  get isShutdown(): boolean {
    return this.#shutdown;
  }

  // ---------------------------------------------------------------------------------------------------

  #snapshot(watchers: DelayedOperation | WatcherList): DelayedOperation[] {
    if (!(watchers instanceof WatcherList)) return [watchers];
    const ops: DelayedOperation[] = [];
    for (const op of watchers.ops) if (op !== null) ops.push(op);
    return ops;
  }

  #watchAndArm(op: DelayedOperation, keys: readonly PurgatoryKey[]): boolean {
    op._state = WATCHING;
    this.#pending++;
    const n = keys.length;
    this.#link(op, keys[0]!);
    if (n > 1) {
      // Sized once: an array grown by push would reserve a dozen slots more than a few keys need.
      const extra = new Array<Place | number>(2 * (n - 1));
      let used = 0;
      for (let i = 1; i < n; i++) used = this.#linkExtra(op, keys[i]!, extra, used);
      extra.length = used;
      if (used > 0) op._extra = extra;
    }
    const signal = op._signal;
    if (signal !== undefined) signal.addEventListener('abort', op);
    if (op.tryComplete()) return true;
    if (op._state === WATCHING) this.#timer.add(op, op.delayMs);
    return false;
  }

  /**
   * Watches `key` for `op` as a further key, writing its slot into `extra` at `used` unless `key`
   * repeats an earlier one; returns the slots used so far.
   */
  #linkExtra(op: DelayedOperation, key: PurgatoryKey, extra: (Place | number)[], used: number): number {
    const watchers = this.#watchers;
    const current = watchers.get(key);
    let place: Place;
    let index: number;
    if (current === undefined) {
      place = key;
      index = -1;
      watchers.set(key, op);
    } else if (current instanceof WatcherList) {
      // A repeated key finds this op at the tail of its list (nothing else can be appended
      // meanwhile): skip it, so duplicates cost no Set and are watched once.
      const ops = current.ops;
      if (ops[ops.length - 1] === op) return used;
      place = current;
      index = current.push(op, used);
    } else {
      if (current === op) return used;
      place = new WatcherList(key, current);
      index = place.push(op, used);
      watchers.set(key, place);
    }
    extra[used] = place;
    extra[used + 1] = index;
    this.#watched++;
    return used + 2;
  }

  #link(op: DelayedOperation, key: PurgatoryKey): void {
    const watchers = this.#watchers;
    const current = watchers.get(key);
    if (current === undefined) {
      op._wIndex = -1;
      op._wAt = key;
      watchers.set(key, op);
    } else if (current instanceof WatcherList) {
      op._wAt = current;
      op._wIndex = current.push(op, -1);
    } else {
      const list = new WatcherList(key, current);
      watchers.set(key, list);
      op._wAt = list;
      op._wIndex = list.push(op, -1);
    }
    this.#watched++;
  }

  // Leaving costs no map lookup: a slot knows its list, and only a key's last watcher deletes it.
  #unlink(place: Place, index: number): void {
    if (typeof place === 'string') {
      this.#watchers.delete(place);
    } else {
      place.ops[index] = null;
      if (--place.live === 0) this.#watchers.delete(place.key);
      else if (this.#walkDepth === 0) place.compactIfSparse();
    }
    this.#watched--;
  }

  /** @internal called once by an operation's settlement, before its `onComplete`. */
  _settled(op: DelayedOperation, wasWatching: boolean, state: number): void {
    if (wasWatching) {
      this.#pending--;
      this.#unlink(op._wAt!, op._wIndex);
      op._wAt = undefined;
      op._wIndex = -1;
      const extra = op._extra;
      if (extra !== null) {
        for (let i = 0; i < extra.length; i += 2) this.#unlink(extra[i] as Place, extra[i + 1] as number);
        op._extra = null;
      }
      if (op._signal !== undefined) op._unlisten();
    }
    switch (state) {
      case COMPLETED:
        this.#completions++;
        break;
      case EXPIRED:
        this.#expirations++;
        break;
      case CANCELED:
        this.#cancellations++;
        break;
      case SHUTDOWN:
        this.#shutdowns++;
        break;
      case ABORTED:
        this.#aborts++;
        break;
      default:
        this.#failures++;
    }
  }
}
