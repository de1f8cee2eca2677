/**
 * Building answers: JSON bodies, empty answers, the `wait=` value of `Preference-Applied`, and the
 * answers shared by every caller who gets the same value.
 *
 * @module
 */
import { HEADERS, MEDIA_TYPES, type TopicFetchResult } from '../../core/protocol.js';
import type { SharedRead } from './topic-cache.js';
import { type PollkitResponse, isStreamBody } from './types.js';

/** The answer for a client that already left; nobody reads it. */
export const CLIENT_GONE: PollkitResponse = Object.freeze({ status: 204, headers: Object.freeze({}), body: null });

/** A JSON answer that no cache may keep. */
export function json(status: number, body: unknown, headers: Record<string, string>): PollkitResponse {
  return {
    status,
    headers: { ...headers, [HEADERS.contentType]: MEDIA_TYPES.json, [HEADERS.cacheControl]: 'no-store' },
    body: JSON.stringify(body),
  };
}

/** A 204 that no cache may keep. */
export function noContent(): PollkitResponse {
  return { status: 204, headers: { [HEADERS.cacheControl]: 'no-store' }, body: null };
}

/** Milliseconds as decimal seconds without trailing zeros: 25000 → "25", 25312 → "25.312". */
export function formatSeconds(ms: number): string {
  return String(Math.round(ms) / 1000);
}

/** Whether a route's intermediate value is already a response (a limit, a hang-up) rather than data. */
export function isResponse(value: unknown): value is PollkitResponse {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { status?: unknown }).status === 'number' &&
    'body' in value &&
    'headers' in value
  );
}

/**
 * The answers built from one value (a topic fetch's result, a job's snapshot) for every caller who
 * gets that value: its JSON once, and one frozen response per variant of the headers, so ten thousand
 * readers woken by one append share one body and one header record — and adapters may cache what they
 * derive from a frozen response (the Node adapter keeps its bytes and `Content-Length`).
 */
export class SharedAnswers {
  readonly body: string;
  #lastKey: number | undefined = undefined;
  #last: PollkitResponse | undefined = undefined;
  #more: Map<number, PollkitResponse> | undefined = undefined;

  constructor(value: unknown) {
    this.body = JSON.stringify(value);
  }

  /** The variant numbered `key` (callers number their variants), if built already. */
  get(key: number): PollkitResponse | undefined {
    if (this.#lastKey === key) return this.#last;
    const response = this.#more?.get(key);
    if (response !== undefined) this.#remember(key, response);
    return response;
  }

  /** Keeps `response` (frozen) as the variant numbered `key`, and returns it. */
  set(key: number, response: PollkitResponse): PollkitResponse {
    const frozen = Object.freeze(response);
    // One variant is the common case; from the second on, every variant lives in the map too.
    if (this.#last !== undefined) {
      this.#more ??= new Map([[this.#lastKey!, this.#last]]);
      this.#more.set(key, frozen);
    }
    this.#remember(key, frozen);
    return frozen;
  }

  #remember(key: number, response: PollkitResponse): void {
    this.#lastKey = key;
    this.#last = response;
  }
}

/** Readers woken together share one (frozen) result, so they share its answers; dropped with the result. */
const fetchAnswers = new WeakMap<TopicFetchResult, SharedAnswers>();

/**
 * The 200 answer to a topic fetch; `waitMs` is the wait applied, sent as `Preference-Applied`.
 * `cached` makes it an answer that shared caches may keep (a public topic, see `topic-cache.ts`):
 * that one carries the caller's own cursor and entity tag, so only its body is shared.
 */
export function fetchAnswer(
  result: TopicFetchResult,
  waitMs: number | undefined,
  cached?: SharedRead,
): PollkitResponse {
  if (!Object.isFrozen(result)) {
    const body = JSON.stringify(result);
    return cached === undefined ? buildFetchAnswer(body, waitMs) : cached.answer(result, fetchHeaders(waitMs), body);
  }
  let answers = fetchAnswers.get(result);
  if (answers === undefined) {
    answers = new SharedAnswers(result);
    fetchAnswers.set(result, answers);
  }
  if (cached !== undefined) return cached.answer(result, fetchHeaders(waitMs), answers.body);
  const key = waitMs ?? -1;
  return answers.get(key) ?? answers.set(key, buildFetchAnswer(answers.body, waitMs));
}

function buildFetchAnswer(body: string, waitMs: number | undefined): PollkitResponse {
  return { status: 200, headers: Object.freeze(fetchHeaders(waitMs)), body };
}

function fetchHeaders(waitMs: number | undefined): Record<string, string> {
  const headers: Record<string, string> = {
    [HEADERS.vary]: 'Prefer',
    [HEADERS.contentType]: MEDIA_TYPES.json,
    [HEADERS.cacheControl]: 'no-store',
  };
  if (waitMs !== undefined) headers[HEADERS.preferenceApplied] = `wait=${formatSeconds(waitMs)}`;
  return headers;
}

/** The answer to `HEAD`: `GET`'s status and headers, no body (a stream is ended at once, releasing its slot). */
export function withoutBody(response: PollkitResponse): PollkitResponse {
  const { body } = response;
  if (isStreamBody(body)) void body[Symbol.asyncIterator]().return?.();
  return body === null ? response : { status: response.status, headers: response.headers, body: null };
}
