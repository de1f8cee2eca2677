/**
 * Topic fetches that a shared cache (nginx, Varnish, a CDN) may keep and collapse: which reads
 * qualify, the `Cache-Control` and entity tag of each answer, and the cursor that addresses a live
 * long poll at the head of the log. docs/cdn.md gives the reasoning; this module is its one
 * implementation, and `topic-routes.ts` only asks it.
 *
 * A shared cache hands one answer to everyone who sends the same URL, so only topics that the
 * `authorize` hook calls public qualify, and only reads whose answer depends on nothing but the URL:
 * a wait given in `Prefer` (a header) keeps the old private answer. Clients that never send a
 * `cursor` (written before this protocol) keep the old answers to their held reads too: they ask
 * again with the same URL after an empty answer, which a cached answer would turn into a loop.
 *
 * The cursor counts the empty answers in a row at one offset: a records answer resets it to 0, an
 * empty answer to a read with cursor `c` hands out `c + 1`. A client's next URL is therefore always
 * one it never sent before — the offset rises, or else the cursor does — so a cached answer can never
 * send it back to itself, and an entry that expires only sends stragglers to the origin, collapsed
 * into one request. Clients at the same position get the same answer from the cache, hence the same
 * cursor, hence the same next URL: a group of clients stays one group. The cursor depends on nothing
 * but the request and the log, never on a clock, so every origin process behind a load balancer
 * hands out the same one.
 *
 * @module
 */
import { InvalidArgumentError } from '../../core/errors.js';
import { HEADERS, type TopicFetchResult } from '../../core/protocol.js';
import { parseIfNoneMatch, parseUnsignedInteger, singleParam } from './params.js';
import type { PollkitResponse, RequestHeaders } from './types.js';
import { getHeader } from './types.js';

/**
 * How long shared caches may keep public topics' answers (see docs/cdn.md).
 *
 * @example
 * ```ts
 * import type { TopicCacheOptions } from 'pollkit/server';
 * const topicCache: TopicCacheOptions = { headMaxAgeSeconds: 60 };
 * ```
 */
export interface TopicCacheOptions {
  /**
   * `max-age` of answers at the head of the log: a live long poll's answer, and a range that reached
   * the high watermark or whose URL names no epoch. Some caches count it from the request's start, so
   * the held wait eats into it: keep it above the longest wait, or waiting clients may miss the
   * answer. Whole seconds, at least 1. Default: twice `maxWaitSeconds`, rounded up (60).
   */
  readonly headMaxAgeSeconds?: number;
  /**
   * `max-age` of a full range below the high watermark whose URL names the epoch: it can never change,
   * so it is also `immutable`. Whole seconds, at least 1. Default 31 536 000 (a year).
   */
  readonly rangeMaxAgeSeconds?: number;
}

/** Validated {@link TopicCacheOptions}. */
export interface TopicCacheSettings {
  readonly headMaxAgeSeconds: number;
  readonly rangeMaxAgeSeconds: number;
}

const YEAR_SECONDS = 31_536_000;

/**
 * An empty answer to a read without cursor is the one a client may ask for again at once (a short
 * poller that knows nothing of cursors), so caches keep it for a second at most.
 */
const PROBE_MAX_AGE_SECONDS = 1;

/**
 * Validates {@link TopicCacheOptions} against the handler's wait cap; throws `InvalidArgumentError`.
 *
 * @example
 * ```ts
 * resolveTopicCache({}, 30_000); // { headMaxAgeSeconds: 60, rangeMaxAgeSeconds: 31536000 }
 * ```
 */
export function resolveTopicCache(options: TopicCacheOptions | undefined, maxWaitMs: number): TopicCacheSettings {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new InvalidArgumentError('topicCache must be an object', 'topicCache');
  }
  const head = options?.headMaxAgeSeconds ?? Math.max(1, Math.ceil((2 * maxWaitMs) / 1000));
  const range = options?.rangeMaxAgeSeconds ?? YEAR_SECONDS;
  for (const [name, value] of [
    ['headMaxAgeSeconds', head],
    ['rangeMaxAgeSeconds', range],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new InvalidArgumentError(`topicCache.${name} must be an integer >= 1, got ${String(value)}`, name);
    }
  }
  return { headMaxAgeSeconds: head, rangeMaxAgeSeconds: range };
}

/**
 * One fetch of a public topic whose answer a shared cache may keep, as its URL describes it. Made only
 * for reads that qualify ({@link sharedRead}), so private reads allocate nothing here.
 */
export class SharedRead {
  /** The `cursor` the request sent, if any. */
  readonly cursor: number | undefined;
  readonly #settings: TopicCacheSettings;
  readonly #offset: number;
  readonly #limit: number;
  readonly #epochInUrl: boolean;
  readonly #ifNoneMatch: string | undefined;

  constructor(
    settings: TopicCacheSettings,
    offset: number,
    limit: number,
    epochInUrl: boolean,
    cursor: number | undefined,
    ifNoneMatch: string | undefined,
  ) {
    this.#settings = settings;
    this.#offset = offset;
    this.#limit = limit;
    this.#epochInUrl = epochInUrl;
    this.cursor = cursor;
    this.#ifNoneMatch = ifNoneMatch;
  }

  /** The cursor the answer hands out: 0 after records (or for a read without cursor), else one more. */
  nextCursor(result: TopicFetchResult): number {
    return result.records.length > 0 || this.cursor === undefined ? 0 : this.cursor + 1;
  }

  /** The answer's `Cache-Control`. */
  cacheControl(result: TopicFetchResult): string {
    const { headMaxAgeSeconds, rangeMaxAgeSeconds } = this.#settings;
    const count = result.records.length;
    // A full range of a named epoch is the same bytes of records for as long as anyone can ask.
    if (count >= this.#limit && this.#epochInUrl) return `public, max-age=${rangeMaxAgeSeconds}, immutable`;
    if (count > 0 || this.cursor !== undefined) return `public, max-age=${headMaxAgeSeconds}`;
    return `public, max-age=${Math.min(PROBE_MAX_AGE_SECONDS, headMaxAgeSeconds)}`;
  }

  /**
   * The answer's weak entity tag: epoch, offsets and the cursor handed out. Weak, because the body's
   * `highWatermark` and `earliestOffset` say what the log looked like when it was made; the cursor is
   * in it so that a cache revalidating a live URL never gets a 304 that hands out an old cursor again.
   */
  etag(result: TopicFetchResult, cursor: number): string {
    return `W/"${encodeURIComponent(result.epoch)}:${this.#offset}:${result.nextOffset}:${cursor}"`;
  }

  /**
   * The 200 (or, when `If-None-Match` names this very answer, 304) for `result`, given the headers and
   * JSON body of the private answer it replaces.
   */
  answer(result: TopicFetchResult, headers: Record<string, string>, body: string): PollkitResponse {
    const cursor = this.nextCursor(result);
    const etag = this.etag(result, cursor);
    headers[HEADERS.cacheControl] = this.cacheControl(result);
    headers[HEADERS.etag] = etag;
    const condition = parseIfNoneMatch(this.#ifNoneMatch);
    if (condition !== undefined && (condition === '*' || condition.includes(etag.slice(3, -1)))) {
      return { status: 304, headers, body: null };
    }
    // The private body is built once per store read and shared; the cursor is per answer.
    return { status: 200, headers, body: `${body.slice(0, -1)},"cursor":"${cursor}"}` };
  }
}

/** What {@link sharedRead} needs of a request. */
export interface SharedReadRequest {
  readonly query: URLSearchParams;
  readonly headers: RequestHeaders;
  /** The wait the request asked for, in milliseconds, from `?wait=` or `Prefer`. */
  readonly requestedWaitMs: number | undefined;
}

/**
 * The {@link SharedRead} of a fetch when its answer may go to a shared cache, else `undefined`:
 * the topic must be public, a wait must be in the URL rather than in `Prefer`, and a held read must
 * carry a cursor (clients without one repeat the same URL after an empty answer).
 *
 * @example
 * ```ts
 * const shared = sharedRead(settings, request, { isPublic: true, offset: 120, limit: 100, epochInUrl: true });
 * ```
 */
export function sharedRead(
  settings: TopicCacheSettings,
  request: SharedReadRequest,
  read: { readonly isPublic: boolean; readonly offset: number; readonly limit: number; readonly epochInUrl: boolean },
): SharedRead | undefined {
  if (!read.isPublic) return undefined;
  const { query, requestedWaitMs } = request;
  const cursorText = singleParam(query, 'cursor');
  const cursor = cursorText === undefined ? undefined : parseUnsignedInteger(cursorText, 'cursor');
  const held = requestedWaitMs !== undefined && requestedWaitMs > 0;
  if (held && (cursor === undefined || singleParam(query, 'wait') === undefined)) return undefined;
  return new SharedRead(
    settings,
    read.offset,
    read.limit,
    read.epochInUrl,
    cursor,
    getHeader(request.headers, HEADERS.ifNoneMatch),
  );
}
