/**
 * One fetch of a topic, and the state readers of one topic share (internal to the server layer).
 *
 * A held fetch is one object: a {@link TopicFetch} is the purgatory's operation, carries the fetch's
 * parameters, and receives its outcome through two methods its subclass implements — the promise form
 * of `Topic.read` resolves a promise there, the HTTP handler writes its answer there. Nothing else is
 * allocated per held fetch: no promise, no async frame, no closure.
 *
 * Readers of a topic share a {@link Hint}: the epoch, high watermark and earliest offset as the latest
 * change notification said, and the records of the latest appends when the store handed them over. A
 * woken reader is answered from the hint when it can (one answer object for every reader at the same
 * offset), and otherwise from one store read shared by every reader woken at the same position.
 *
 * @module
 */
import { abortReason } from '../../core/abort.js';
import type { Clock } from '../../core/clock.js';
import { AbortedError, OffsetGoneError, OffsetOutOfRangeError, PollkitError } from '../../core/errors.js';
import type { TopicFetchResult } from '../../core/protocol.js';
import { onLaterTurn } from '../purgatory/later-turn.js';
import { type Admission, DelayedOperation, type DelayedOperationPurgatory } from '../purgatory/purgatory.js';
import type { Resumable } from '../purgatory/resume-batches.js';
import type {
  StoredRecord,
  TopicChange,
  TopicPosition,
  TopicReadResult,
  TopicRetention,
  TopicStore,
} from './stores/topic-store.js';

/** What a fetch needs from its topic and registry. */
export interface FetchHost {
  readonly store: TopicStore;
  readonly purgatory: DelayedOperationPurgatory;
  readonly clock: Clock;
  /** Records appended before this wall-clock time are dropped by retention; `undefined` when none are. */
  oldestKeptMs(): number | undefined;
  retention(): TopicRetention;
  unwatch(name: string, hint: Hint): void;
}

// Woken readers keep this many of the latest records in the hint, so a reader some appends behind is
// still answered without a store read.
const TAIL_RECORDS = 1024;

/**
 * The epoch, high watermark and earliest offset of a topic someone is waiting on, as the latest
 * change notification said, and the records of its latest appends (contiguous up to the high
 * watermark) when the store passed them along.
 */
export class Hint {
  /** The topic's name. */
  readonly name: string;
  /** The topic's registry, as its fetches see it. */
  readonly host: FetchHost;
  refs = 0;
  epoch: string | undefined = undefined;
  highWatermark = 0;
  earliestOffset = 0;
  /** The registry is closing: held reads answer now. */
  closed: boolean;
  /** The topic was deleted: held reads fail with `topic-not-found`; the registry no longer hands this hint out. */
  deleted = false;
  /** The latest records, the first at offset {@link Hint.tailStart}; the last ends at the high watermark. */
  tail: StoredRecord[] = [];
  tailStart = 0;
  /** The last answer built from the tail, shared by the readers it fits. */
  answer: TopicFetchResult | undefined = undefined;
  /** The store read in flight (or just finished) for readers woken together. */
  read: SharedRead | undefined = undefined;

  /** The topic's purgatory keys, shared by every held read of it. */
  readonly keys: readonly string[];

  constructor(name: string, host: FetchHost, closed: boolean, keys: readonly string[]) {
    this.name = name;
    this.host = host;
    this.closed = closed;
    this.keys = keys;
  }

  /** A change notification: moves the hint, keeping the tail contiguous. */
  noteChange(change: TopicChange): void {
    const { epoch, highWatermark, earliestOffset } = change.position;
    const records = change.records;
    if (this.epoch !== epoch) {
      this.epoch = epoch;
      this.highWatermark = highWatermark;
      this.earliestOffset = earliestOffset;
      this.#restartTail(records, highWatermark);
      return;
    }
    if (highWatermark < this.highWatermark) return;
    if (earliestOffset > this.earliestOffset) this.earliestOffset = earliestOffset;
    const tailEnd = this.tailStart + this.tail.length;
    if (records !== undefined && records.length > 0 && records[0]!.record.offset === tailEnd) {
      for (const stored of records) this.tail.push(stored);
      if (this.tail.length >= 2 * TAIL_RECORDS) {
        const drop = this.tail.length - TAIL_RECORDS;
        this.tail = this.tail.slice(drop);
        this.tailStart += drop;
      }
      if (this.tailStart + this.tail.length !== highWatermark) this.#restartTail(undefined, highWatermark);
    } else if (highWatermark !== tailEnd) {
      this.#restartTail(records, highWatermark);
    }
    this.highWatermark = highWatermark;
  }

  /**
   * A reader's own view of the log seeds the hint only when no notification has done so yet, or moves
   * it forward within the same epoch; notifications stay authoritative about epochs.
   */
  observe(position: TopicPosition): void {
    if (this.epoch === undefined) {
      this.epoch = position.epoch;
      this.highWatermark = position.highWatermark;
      this.earliestOffset = position.earliestOffset;
      this.#restartTail(undefined, position.highWatermark);
    } else if (this.epoch === position.epoch && position.highWatermark > this.highWatermark) {
      this.highWatermark = position.highWatermark;
      if (position.earliestOffset > this.earliestOffset) this.earliestOffset = position.earliestOffset;
      this.#restartTail(undefined, position.highWatermark);
    }
  }

  #restartTail(records: TopicChange['records'], highWatermark: number): void {
    this.answer = undefined;
    if (records !== undefined && records.length > 0 && records.length <= TAIL_RECORDS) {
      const first = records[0]!.record.offset;
      if (first + records.length === highWatermark) {
        this.tail = records.slice();
        this.tailStart = first;
        return;
      }
    }
    this.tail = [];
    this.tailStart = highWatermark;
  }
}

/**
 * A store read shared by the readers at the same position at the same moment: readers woken together
 * (each resumes once it settles, paced by the purgatory), and readers arriving together before the
 * hint could answer them (each continues at once). @internal
 */
export class SharedRead {
  readonly offset: number;
  readonly limit: number;
  readonly epoch: string | undefined;
  readonly highWatermark: number;
  result: TopicReadResult | undefined = undefined;
  error: unknown = undefined;
  settled = false;
  /** Woken readers waiting for it; `undefined` once it settled. */
  members: TopicFetch[] | undefined = [];
  /** Arriving readers waiting for it; `undefined` once it settled. */
  arriving: TopicFetch[] | undefined = undefined;

  constructor(offset: number, limit: number, hint: Hint) {
    this.offset = offset;
    this.limit = limit;
    this.epoch = hint.epoch;
    this.highWatermark = hint.highWatermark;
  }
}

/** A reader to answer from a settled shared read, when the purgatory's pacing gets to it. */
class ResumeFrom implements Resumable {
  readonly #fetch: TopicFetch;
  readonly #read: SharedRead;
  constructor(fetch: TopicFetch, read: SharedRead) {
    this.#fetch = fetch;
    this.#read = read;
  }
  resume(): void {
    this.#fetch._resumeFrom(this.#read);
  }
}

/** The answer built from each store read, for the readers that share the read; dropped with the read. */
const readResults = new WeakMap<TopicReadResult, TopicFetchResult>();

/**
 * One fetch: its parameters, the operation the purgatory holds while it waits, and the receiver of
 * its outcome. Subclasses implement {@link TopicFetch.fetched} and {@link TopicFetch.failed}; exactly
 * one of them is called, once. Start it with `Topic._fetch`.
 *
 * @internal
 */
export abstract class TopicFetch<Value = unknown> extends DelayedOperation implements Resumable {
  /** @internal the topic's hint while the fetch is in flight; `undefined` before and after. */
  _hint: Hint | undefined = undefined;
  /** @internal */
  _offset = 0;
  /** @internal */
  _limit = 0;
  /** @internal records that end the wait (minRecords, capped at the limit). */
  _enough = 0;
  /** @internal the epoch the offset belongs to while waiting. */
  _pinned: string | undefined = undefined;

  /** `waitMs`: the longest time to wait; `signal`: ends the fetch early, as {@link TopicFetch.aborted}. */
  constructor(waitMs: number, signal?: AbortSignal) {
    super(waitMs, signal === undefined ? undefined : { signal });
  }

  /** Receives the records. */
  abstract fetched(result: TopicFetchResult<Value>): void;
  /** Receives why the fetch failed: a validation or offset error, a store failure, an abort. */
  abstract failed(error: unknown): void;

  /** The fetch is about to wait; the default is to wait. */
  admit(): Admission {
    return 'hold';
  }

  /** Ended by its signal or {@link DelayedOperation.abort}; by default a failure with the signal's reason. */
  aborted(): void {
    const signal = this.signal;
    this.failed(signal === undefined ? new AbortedError('The fetch was aborted') : abortReason(signal));
  }

  /** @internal the purgatory's check: enough records, a new epoch, or a closing registry end the wait. */
  tryComplete(): boolean {
    const hint = this._hint!;
    if (
      hint.epoch !== this._pinned ||
      hint.highWatermark - this._offset >= this._enough ||
      hint.closed ||
      hint.deleted
    ) {
      return this.forceComplete();
    }
    return false;
  }

  /** @internal */
  onComplete(): void {
    if (this.settlement === 'aborted') {
      this._release();
      this.aborted();
      return;
    }
    // Whatever ended the wait (records, timeout, reset, shutdown), the answer is the log as it is now;
    // the purgatory paces the answers when one walk settles thousands.
    const purgatory = this._purgatory;
    if (purgatory === null) this.resume();
    else purgatory._resume(this);
  }

  /** @internal answers from the hint, or joins a shared store read and answers from it once it settles. */
  resume(): void {
    const hint = this._hint!;
    if (hint.deleted) {
      this._fail(topicDeleted(hint.name));
      return;
    }
    const result = resultFromHint(this);
    if (result !== undefined) this._deliver(result as TopicFetchResult<Value>);
    else joinRead(this);
  }

  /** @internal answers from a settled shared store read. */
  _resumeFrom(read: SharedRead): void {
    if (read.result === undefined) {
      this._fail(read.error);
      return;
    }
    const name = this._hint!.name;
    const problem = positionProblem(name, read.result.position, this._offset, this._pinned!);
    if (problem !== undefined) this._fail(problem);
    else this._deliver(resultOf(name, read.result, this._offset) as TopicFetchResult<Value>);
  }

  /** @internal leaves the hint; called once, before the outcome is handed over. */
  _release(): void {
    const hint = this._hint;
    if (hint === undefined) return;
    this._hint = undefined;
    hint.host.unwatch(hint.name, hint);
  }

  /** @internal */
  _deliver(result: TopicFetchResult<Value>): void {
    this._release();
    this.fetched(result);
  }

  /** @internal */
  _fail(error: unknown): void {
    this._release();
    this.failed(error);
  }
}

/** What a read of a deleted topic fails with (HTTP 404). */
export function topicDeleted(name: string): PollkitError {
  return new PollkitError(`Topic ${name} was deleted`, 'topic-not-found');
}

/** The problem with reading `offset` of `epoch` at `position`, if any. */
export function positionProblem(
  name: string,
  position: TopicPosition,
  offset: number,
  epoch: string,
): OffsetGoneError | OffsetOutOfRangeError | undefined {
  if (epoch !== position.epoch || offset < position.earliestOffset) {
    return new OffsetGoneError(name, offset, { earliestOffset: position.earliestOffset, epoch: position.epoch });
  }
  if (offset > position.highWatermark) return new OffsetOutOfRangeError(name, offset, position.highWatermark);
  return undefined;
}

/**
 * The answer to a store read from `offset`. Readers woken together share one store read, so they share
 * its answer too: one object, frozen because many callers hold it, which lets the HTTP handler
 * serialize it once.
 */
export function resultOf(name: string, read: TopicReadResult, offset: number): TopicFetchResult {
  const known = readResults.get(read);
  if (known !== undefined && known.nextOffset - known.records.length === offset && known.topic === name) return known;
  const records = Object.freeze(read.records.map((stored) => stored.record));
  const result: TopicFetchResult = Object.freeze({
    topic: name,
    epoch: read.position.epoch,
    records,
    nextOffset: offset + records.length,
    highWatermark: read.position.highWatermark,
    earliestOffset: read.position.earliestOffset,
  });
  readResults.set(read, result);
  return result;
}

/**
 * The answer from the hint alone, without a store read, when the hint covers it: same epoch as the
 * fetch's pinned one, offset retained, and every record from the offset up to the high watermark (or
 * the limit) in the tail and not yet past retention by age.
 */
export function resultFromHint(fetch: TopicFetch): TopicFetchResult | undefined {
  const hint = fetch._hint!;
  const offset = fetch._offset;
  if (hint.epoch !== fetch._pinned) return undefined;
  const highWatermark = hint.highWatermark;
  if (offset < hint.earliestOffset || offset > highWatermark) return undefined;
  const end = Math.min(offset + fetch._limit, highWatermark);
  const from = offset - hint.tailStart;
  if (end > offset) {
    if (from < 0) return undefined;
    // Retention by age drops records as time passes, with no change to announce it: the oldest record
    // of the answer decides whether the hint may still give it (the later ones are younger).
    const oldestKept = hint.host.oldestKeptMs();
    if (oldestKept !== undefined && hint.tail[from]!.timestampMs < oldestKept) return undefined;
  }
  const known = hint.answer;
  if (
    known !== undefined &&
    known.nextOffset === end &&
    known.records.length === end - offset &&
    known.highWatermark === highWatermark &&
    known.earliestOffset === hint.earliestOffset &&
    known.epoch === hint.epoch
  ) {
    return known;
  }
  const records = Object.freeze(
    end > offset ? hint.tail.slice(from, from + (end - offset)).map((stored) => stored.record) : [],
  );
  const result: TopicFetchResult = Object.freeze({
    topic: hint.name,
    epoch: hint.epoch!,
    records,
    nextOffset: end,
    highWatermark,
    earliestOffset: hint.earliestOffset,
  });
  hint.answer = result;
  return result;
}

// One append wakes every reader of the topic at once; those at the same offset would all make the
// same store read, so they share it. The shared read is tied to the hint's epoch and high watermark,
// so a reader woken by a later change never reuses a read made before that change. The purgatory
// resumes woken readers in batches, so the read stays shared until the turn after it settled (and no
// longer: retention may trim the log without any append).
function joinRead(fetch: TopicFetch): void {
  const read = sharedRead(fetch);
  if (read.settled) fetch._resumeFrom(read);
  else read.members!.push(fetch);
}

/**
 * The store read at `fetch`'s offset and limit made at this position of the log: the one in flight
 * (or just settled) when there is one, else a new one.
 */
function sharedRead(fetch: TopicFetch): SharedRead {
  const hint = fetch._hint!;
  const host = hint.host;
  const shared = hint.read;
  if (
    shared !== undefined &&
    shared.offset === fetch._offset &&
    shared.limit === fetch._limit &&
    shared.epoch === hint.epoch &&
    shared.highWatermark === hint.highWatermark
  ) {
    return shared;
  }
  const read = new SharedRead(fetch._offset, fetch._limit, hint);
  hint.read = read;
  const settle = (): void => {
    read.settled = true;
    const members = read.members!;
    const arriving = read.arriving;
    read.members = read.arriving = undefined;
    // Paced like the wake-up itself; the small resumption objects live only until then.
    for (const member of members) host.purgatory._resume(new ResumeFrom(member, read));
    if (arriving !== undefined) for (const fetch of arriving) afterFirstRead(fetch, read);
    onLaterTurn(host.clock, () => {
      if (hint.read === read) hint.read = undefined;
    });
  };
  host.store.read(hint.name, fetch._offset, fetch._limit, host.retention()).then(
    (result) => {
      read.result = result;
      settle();
    },
    (error: unknown) => {
      read.error = error;
      settle();
    },
  );
  return read;
}

/**
 * A fetch the hint could not answer reads the store, sharing the read with every fetch at the same
 * position arriving at the same moment (a crowd of reconnecting clients makes one read, not one each).
 * `_pinned` holds the epoch the caller gave, if any.
 */
export function readFirst(fetch: TopicFetch): void {
  const read = sharedRead(fetch);
  if (read.settled) afterFirstRead(fetch, read);
  else (read.arriving ??= []).push(fetch);
}

function afterFirstRead(fetch: TopicFetch, read: SharedRead): void {
  const first = read.result;
  if (first === undefined) {
    fetch._fail(read.error);
    return;
  }
  const hint = fetch._hint!;
  const offset = fetch._offset;
  const pinned = fetch._pinned ?? first.position.epoch;
  const problem = positionProblem(hint.name, first.position, offset, pinned);
  if (problem !== undefined) {
    fetch._fail(problem);
    return;
  }
  hint.observe(first.position);
  const available = first.position.highWatermark - offset;
  if (available >= fetch._enough || fetch.delayMs === 0 || hint.closed) {
    fetch._deliver(resultOf(hint.name, first, offset));
  } else {
    hold(fetch, pinned);
  }
}

/** Holds `fetch` in the purgatory, reading `pinned` as its epoch, unless its owner decides otherwise. */
export function hold(fetch: TopicFetch, pinned: string): void {
  fetch._pinned = pinned;
  const admission = fetch.admit();
  const hint = fetch._hint!;
  if (admission === 'refused') fetch._release();
  // Not waiting after all: settled here, outside the purgatory, it answers with the log as it is.
  else if (admission === 'now') fetch.forceComplete();
  else hint.host.purgatory.tryCompleteElseWatch(fetch, hint.keys);
}
