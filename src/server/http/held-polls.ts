/**
 * The protocol's held long polls (internal, not exported from `pollkit/server`): a topic fetch and a
 * job poll, each one object from the moment it waits until its answer is written. The object is the
 * purgatory's operation (a `TopicFetch` or a `JobWait`), the handler's held slot, and the receiver of
 * the outcome, which it turns into the answer and hands to the adapter's {@link Exchange}. The adapter
 * aborts it when the client hangs up; a shutdown completes it, and it answers with the current state.
 *
 * @module
 */
import type { JobSnapshot, TopicFetchResult } from '../../core/protocol.js';
import { JobWait } from '../jobs/job-waits.js';
import type { Admission } from '../purgatory/purgatory.js';
import { TopicFetch } from '../topics/topic-fetch.js';
import type { Exchange } from './exchange.js';
import type { HeldRequests, HeldSlot } from './holding.js';
import { CLIENT_GONE, fetchAnswer } from './responses.js';
import type { SharedRead } from './topic-cache.js';
import type { PollkitResponse } from './types.js';

/** What a held poll shares with the handler: its slot fields and where its answer goes. */
interface HeldPoll<Context> extends HeldSlot {
  readonly _exchange: Exchange<Context>;
  readonly _slots: HeldRequests<Context>;
}

/** A held `GET {p}/topics/{name}/records?wait=`: waits in the topic registry's purgatory. */
export class HeldTopicFetch<Context> extends TopicFetch implements HeldPoll<Context> {
  _heldKey: string | undefined;
  _heldPrev: HeldSlot | null = null;
  _heldNext: HeldSlot | null = null;
  readonly _exchange: Exchange<Context>;
  readonly _slots: HeldRequests<Context>;

  constructor(waitMs: number, exchange: Exchange<Context>, slots: HeldRequests<Context>, key: string | undefined) {
    super(waitMs, exchange.hangUpSignal);
    this._exchange = exchange;
    this._slots = slots;
    this._heldKey = key;
  }

  override admit(): Admission {
    return admit(this);
  }

  fetched(result: TopicFetchResult): void {
    answer(this, (value, fetch) => fetch._answer(value), result, this);
  }

  /** The answer to `result` (the cacheable kind answers for a shared cache). */
  _answer(result: TopicFetchResult): PollkitResponse {
    return fetchAnswer(result, this.delayMs);
  }

  failed(error: unknown): void {
    finish(this, this._slots.failure(this._exchange, error));
  }

  override aborted(): void {
    finish(this, CLIENT_GONE);
  }

  _shutdown(): void {
    this.forceComplete();
  }
}

/**
 * A held fetch of a public topic whose answer a shared cache may keep (see `topic-cache.ts`): the
 * same, plus the caller's cursor and entity tag, so the answer is this caller's own (its body shared).
 */
export class HeldCachedTopicFetch<Context> extends HeldTopicFetch<Context> {
  readonly #cached: SharedRead;

  constructor(
    waitMs: number,
    exchange: Exchange<Context>,
    slots: HeldRequests<Context>,
    key: string | undefined,
    cached: SharedRead,
  ) {
    super(waitMs, exchange, slots, key);
    this.#cached = cached;
  }

  override _answer(result: TopicFetchResult): PollkitResponse {
    return fetchAnswer(result, this.delayMs, this.#cached);
  }
}

/** Builds a held job poll's answer: the job (200 or 304), or 404 when it is not (or no longer) visible. */
export interface JobAnswers {
  heldAnswer(job: JobSnapshot | undefined, poll: HeldJobPoll<unknown>): PollkitResponse;
}

/** A held `GET {p}/jobs/{id}?wait=`: waits in the job registry's purgatory. */
export class HeldJobPoll<Context> extends JobWait implements HeldPoll<Context> {
  _heldKey: string | undefined;
  _heldPrev: HeldSlot | null = null;
  _heldNext: HeldSlot | null = null;
  readonly _exchange: Exchange<Context>;
  readonly _slots: HeldRequests<Context>;
  /** The wait applied, for `Preference-Applied` (the operation's own delay shrinks by the time spent reading). */
  readonly waitMs: number;
  /** The `If-None-Match` tags that make the answer a 304, when no `?version=` was given. */
  readonly condition: readonly string[] | '*' | undefined;
  readonly #answers: JobAnswers;

  constructor(
    waitMs: number,
    exchange: Exchange<Context>,
    slots: HeldRequests<Context>,
    key: string | undefined,
    condition: readonly string[] | '*' | undefined,
    answers: JobAnswers,
  ) {
    super(waitMs, exchange.hangUpSignal);
    this.waitMs = waitMs;
    this._exchange = exchange;
    this._slots = slots;
    this._heldKey = key;
    this.condition = condition;
    this.#answers = answers;
  }

  override admit(): Admission {
    return admit(this);
  }

  delivered(job: JobSnapshot | undefined): void {
    answer(this, (value, poll) => this.#answers.heldAnswer(value, poll), job, this as HeldJobPoll<unknown>);
  }

  // The rest is the topic fetch's: one class each, since each extends its own registry's operation.
  failed(error: unknown): void {
    finish(this, this._slots.failure(this._exchange, error));
  }

  override aborted(): void {
    finish(this, CLIENT_GONE);
  }

  _shutdown(): void {
    this.forceComplete();
  }
}

/**
 * A poll is about to wait: during a shutdown it answers at once with the current state; a client that
 * already left, or a full handler, is answered here; otherwise it takes its slot and the adapter may
 * abort it from now on.
 */
function admit<Context>(poll: HeldPoll<Context> & { abort(): boolean }): Admission {
  const slots = poll._slots;
  if (slots.closing) return 'now';
  const exchange = poll._exchange;
  const refusal = exchange.gone ? CLIENT_GONE : slots.take(poll);
  if (refusal !== undefined) {
    exchange.respond(refusal);
    return 'refused';
  }
  exchange.held = poll;
  return 'hold';
}

/** Answers with what `build` makes of the outcome, or with the failure when building throws. */
function answer<Context, T, A>(
  poll: HeldPoll<Context>,
  build: (value: T, argument: A) => PollkitResponse,
  value: T,
  argument: A,
): void {
  let response: PollkitResponse;
  try {
    response = build(value, argument);
  } catch (error) {
    response = poll._slots.failure(poll._exchange, error);
  }
  finish(poll, response);
}

function finish<Context>(poll: HeldPoll<Context>, response: PollkitResponse): void {
  poll._slots.leave(poll);
  const exchange = poll._exchange;
  exchange.held = undefined;
  exchange.respond(response);
}
