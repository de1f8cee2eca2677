/**
 * The client side of the pollkit wire protocol (PROTOCOL.md) over any `fetch`. It exists so that
 * pollers, subscribers and applications never parse status codes or headers themselves: every answer
 * comes back typed, every failure as a pollkit error whose class says what to do next (retry, restart
 * from an earlier offset, give up), and the headers a poller schedules by (`Retry-After`,
 * `X-Poll-Interval`, `ETag`) are parsed once, here.
 *
 * @module
 */
import {
  CONTENT_TYPE,
  ETAG,
  IDEMPOTENCY_KEY,
  IF_NONE_MATCH,
  JSON_TYPE,
  LOCATION,
  OPERATION_LOCATION,
  POLL_INTERVAL,
  PREFER,
  PREFERENCE_APPLIED,
  RETRY_AFTER,
} from '../core/wire.js';
import { abortReason } from '../core/abort.js';
import { checkNumber, invalidOption } from '../core/checks.js';
import { type Clock, systemClock } from '../core/clock.js';
import { HttpError, OffsetGoneError, OffsetOutOfRangeError, PollkitError, ProtocolError } from '../core/errors.js';
import {
  DEFAULT_PREFIX,
  JOB_STATUSES,
  type JobPage,
  type JobSnapshot,
  type JobStatus,
  type Problem,
  type TopicFetchResult,
} from '../core/protocol.js';
import { parseRetryAfter } from '../core/retry-after.js';
import { checkFetchAnswer } from './topic-reads.js';

/** The subset of the WHATWG `fetch` signature the clients call. */
export type FetchFunction = (input: string, init: RequestInit) => Promise<Response>;

/** Extra request headers: fixed, or computed per request (a fresh auth token, say). */
export type HeadersOption =
  | Readonly<Record<string, string>>
  | (() => Readonly<Record<string, string>> | Promise<Readonly<Record<string, string>>>);

/** Options shared by {@link JobClient} and {@link TopicClient}. */
export interface HttpClientOptions {
  /** The server's origin, optionally with a base path (`https://api.example.com/v2`). Required. */
  readonly baseUrl: string | URL;
  /** The path prefix the server mounts the protocol under. Default `"/pollkit"`; `""` for none. */
  readonly prefix?: string;
  /** The `fetch` to call. Default `globalThis.fetch`, looked up at call time (so later polyfills and mocks apply). */
  readonly fetch?: FetchFunction;
  /** Headers added to every request. Default none. */
  readonly headers?: HeadersOption;
  /** Wall-clock source for `Retry-After` HTTP-dates. Default `systemClock`. */
  readonly clock?: Clock;
}

/** What a poller needs from a response besides its body. */
export interface ResponseMeta {
  /** The HTTP status code. */
  readonly status: number;
  /** All response headers, for anything not parsed here. */
  readonly headers: Headers;
  /** The raw `ETag`, if any. */
  readonly etag: string | undefined;
  /** The job version carried by a numeric `ETag` (`"7"` → 7), if any. */
  readonly version: number | undefined;
  /** `Retry-After` in milliseconds (seconds or HTTP-date form), if sent and valid. */
  readonly retryAfterMs: number | undefined;
  /** `X-Poll-Interval` in milliseconds (seconds on the wire, as GitHub sends it), if sent and valid. */
  readonly pollIntervalMs: number | undefined;
  /** The wait the server applied, from `Preference-Applied: wait=N`, in seconds. */
  readonly appliedWaitSeconds: number | undefined;
  /** The larger of `retryAfterMs` and `pollIntervalMs`: the least a poller should wait. */
  readonly hintMs: number | undefined;
}

/** Options every request method accepts. */
export interface RequestOptions {
  /** Aborts the request, including reading its body; the call rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** The answer to a conditional or long-polling job read: a new snapshot, or "still the version you have". */
export type JobPollResult<Result = unknown, Data = unknown> =
  | {
      /** `true`: the server sent a snapshot newer than the version the caller named. */
      readonly changed: true;
      /** The job's current snapshot. */
      readonly job: JobSnapshot<Result, Data>;
      /** Status, headers and polling hints of the response. */
      readonly meta: ResponseMeta;
    }
  | {
      /** `false`: the job is still at the caller's version (a 304, or a long poll that timed out). */
      readonly changed: false;
      /** Always `undefined`: keep the snapshot you already have. */
      readonly job: undefined;
      /** Status, headers and polling hints of the response. */
      readonly meta: ResponseMeta;
    };

/** The answer to {@link JobClient.submit}. */
export interface SubmitResult<Result = unknown, Data = unknown> {
  /** The new job, or the existing one when the same idempotency key and body were submitted before. */
  readonly job: JobSnapshot<Result, Data>;
  /** The absolute URL of the job (`Operation-Location`, else `Location`). */
  readonly location: string;
  /** The server's suggested delay before the first poll, in milliseconds. */
  readonly retryAfterMs: number | undefined;
  /** Status, headers and polling hints of the response. */
  readonly meta: ResponseMeta;
}

/** Options for {@link JobClient.submit}. */
export interface SubmitRequestOptions extends RequestOptions {
  /** Sent as `Idempotency-Key`: the same key and body give back the same job. */
  readonly idempotencyKey?: string;
}

/** Options for {@link JobClient.get}. */
export interface GetJobOptions extends RequestOptions {
  /** The version the caller already has; sent as `If-None-Match: "<version>"` so an unchanged job costs a 304. */
  readonly ifNoneMatch?: number;
}

/** Options for {@link JobClient.wait}. */
export interface WaitJobOptions extends RequestOptions {
  /** The version the caller already has. Required. */
  readonly version: number;
  /** How long the server should hold the request, in seconds (the server caps it, 30 s by default). Required. */
  readonly waitSeconds: number;
}

/** Options for {@link JobClient.list}. */
export interface ListJobsOptions extends RequestOptions {
  /** Only jobs in this state. Default: every state. */
  readonly status?: JobStatus;
  /** Jobs per page, at least 1 (the server caps it). Default: the server's. */
  readonly pageSize?: number;
  /** The `nextPageToken` of the previous page. Default: the first page. */
  readonly pageToken?: string;
}

/** Options for {@link TopicClient.fetch}. */
export interface TopicFetchOptions extends RequestOptions {
  /** The first offset wanted. Required. */
  readonly offset: number;
  /** The most records to return. Default: the server's. */
  readonly limit?: number;
  /** Hold the request until this many records exist (or the wait ends). Default: the server's (1). */
  readonly minRecords?: number;
  /** How long the server may hold the request, in seconds. Default: no wait (answer at once). */
  readonly waitSeconds?: number;
  /** The epoch the caller's offset belongs to; a reset log answers 410 instead of silently restarting. */
  readonly epoch?: string;
  /**
   * The `cursor` of the previous answer, for a long poll at the head of a public topic: every reader at
   * the same position then sends the same URL, which a shared cache answers with one request to the
   * origin (docs/cdn.md). Default: none.
   */
  readonly cursor?: string;
}

/** A topic fetch's body with the response's metadata. */
export type TopicFetchResponse<Value = unknown> = TopicFetchResult<Value> & {
  /** Status, headers and polling hints of the response. */
  readonly meta: ResponseMeta;
};

/** Options for {@link TopicClient.append}. */
export interface AppendOptions extends RequestOptions {
  /** The record's key. Default `null`. */
  readonly key?: string | null;
}

/** Options for {@link JobClient}. */
export interface JobClientOptions extends HttpClientOptions {
  /**
   * Long-poll with the CORS-simple form `?version=7&wait=25` instead of `If-None-Match` and `Prefer`
   * headers, which saves a preflight per poll in browsers talking to another origin. Default `false`.
   */
  readonly simpleRequests?: boolean;
}

/** Options for {@link TopicClient}. */
export type TopicClientOptions = HttpClientOptions;

// JSON_TYPE and PROBLEM_TYPE written out: a template of the two is kept by bundlers that cannot prove it pure.
const ACCEPT = 'application/json, application/problem+json';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isWhole(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** The first number `pattern` captures in `value`, if it matches. */
function numberIn(pattern: RegExp, value: string | null): number | undefined {
  const match = value === null ? null : pattern.exec(value);
  return match === null ? undefined : Number(match[1]);
}

function readMeta(response: Response, wallNow: number): ResponseMeta {
  const headers = response.headers;
  const etag = headers.get(ETAG) ?? undefined;
  const retryAfterMs = parseRetryAfter(headers.get(RETRY_AFTER), wallNow);
  const pollIntervalMs = parseRetryAfter(headers.get(POLL_INTERVAL), wallNow);
  return {
    status: response.status,
    headers,
    etag,
    // `"7"`, `W/"7"` → 7; anything else → undefined.
    version: numberIn(/^\s*(?:W\/)?"(\d+)"\s*$/, etag ?? null),
    retryAfterMs,
    pollIntervalMs,
    appliedWaitSeconds: numberIn(/(?:^|[,;\s])wait=(\d+(?:\.\d+)?)/, headers.get(PREFERENCE_APPLIED)),
    hintMs:
      retryAfterMs === undefined || pollIntervalMs === undefined
        ? (retryAfterMs ?? pollIntervalMs)
        : Math.max(retryAfterMs, pollIntervalMs),
  };
}

function asProblem(value: unknown, status: number): Problem | undefined {
  if (!isRecord(value) || typeof value['code'] !== 'string') return undefined;
  const { type, title } = value;
  return {
    ...value,
    type: typeof type === 'string' ? type : 'about:blank',
    title: typeof title === 'string' ? title : value['code'],
    status: typeof value['status'] === 'number' ? value['status'] : status,
    code: value['code'],
  };
}

/** Unless `ok`, throws a {@link ProtocolError} saying that the answer to `what` is not `expected`. */
function assertBody(ok: boolean, what: string, expected: string): void {
  if (!ok) throw new ProtocolError(`${what}: the body is not ${expected}`);
}

/** Validates a job as it arrives; everything downstream trusts these fields. */
function asJob<Result, Data>(value: unknown, what: string): JobSnapshot<Result, Data> {
  assertBody(
    isRecord(value) &&
      typeof value['id'] === 'string' &&
      typeof value['type'] === 'string' &&
      JOB_STATUSES.includes(value['status'] as JobStatus) &&
      typeof value['done'] === 'boolean' &&
      isWhole(value['version']),
    what,
    'a job (needs id, type, status, done, version)',
  );
  return value as unknown as JobSnapshot<Result, Data>;
}

interface Exchange {
  readonly response: Response;
  readonly meta: ResponseMeta;
  /** The parsed JSON body; undefined for 204 and 304. */
  readonly body: unknown;
}

interface RequestSpec {
  readonly method?: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  readonly query?: Readonly<Record<string, string | number | undefined>> | undefined;
  readonly headers?: Readonly<Record<string, string | undefined>> | undefined;
  readonly body?: unknown;
  readonly signal?: AbortSignal | undefined;
  /** The answer may come from (and go to) the browser's HTTP cache; else `cache: 'no-store'`. */
  readonly cacheable?: boolean;
  /** Turns an error answer into a more specific error (410 → OffsetGoneError); undefined keeps the HttpError. */
  readonly mapError?: (error: HttpError) => Error | undefined;
}

/** The request/response plumbing both clients share. */
class ProtocolTransport {
  readonly #base: string;
  readonly #fetch: FetchFunction | undefined;
  readonly #headers: HeadersOption | undefined;
  readonly clock: Clock;

  constructor(options: HttpClientOptions, owner: string) {
    if (!isRecord(options)) invalidOption(owner, 'options', 'an options object', options);
    const { baseUrl, prefix = DEFAULT_PREFIX, fetch } = options;
    let base: URL | undefined;
    try {
      base = new URL(String(baseUrl));
    } catch {
      // Reported below, with the option's name.
    }
    if (base === undefined) invalidOption(owner, 'baseUrl', 'an absolute URL', baseUrl);
    if (typeof prefix !== 'string' || (prefix !== '' && !prefix.startsWith('/'))) {
      invalidOption(owner, 'prefix', '"" or start with "/"', prefix);
    }
    if (fetch !== undefined && typeof fetch !== 'function') invalidOption(owner, 'fetch', 'a function', fetch);
    const trim = (path: string): string => path.replace(/\/+$/, '');
    this.#base = `${base.origin}${trim(base.pathname)}${trim(prefix)}`;
    this.#fetch = fetch;
    this.#headers = options.headers;
    this.clock = options.clock ?? systemClock;
  }

  /** The absolute URL of a path under the prefix. */
  url(path: string, query?: RequestSpec['query']): string {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(query ?? {})) if (value !== undefined) search.set(name, String(value));
    const qs = search.toString();
    return `${this.#base}${path}${qs === '' ? '' : `?${qs}`}`;
  }

  async request(spec: RequestSpec): Promise<Exchange> {
    const { signal, body, method = 'GET' } = spec;
    if (signal?.aborted) throw abortReason(signal);
    const fetchFn = this.#fetch ?? (globalThis.fetch as FetchFunction | undefined);
    if (typeof fetchFn !== 'function') {
      throw new PollkitError('No fetch function: pass one as the "fetch" option', 'no-fetch');
    }
    const extra = typeof this.#headers === 'function' ? await this.#headers() : this.#headers;
    const headers: Record<string, string> = { accept: ACCEPT, ...extra };
    for (const [name, value] of Object.entries(spec.headers ?? {})) if (value !== undefined) headers[name] = value;
    const init: RequestInit = { method, headers, cache: spec.cacheable ? 'default' : 'no-store' };
    if (body !== undefined) {
      headers[CONTENT_TYPE] = JSON_TYPE;
      init.body = JSON.stringify(body);
    }
    if (signal) init.signal = signal;
    const url = this.url(spec.path, spec.query);
    const what = `${method} ${url}`;

    let response: Response;
    let text: string;
    try {
      response = await fetchFn(url, init);
      text = response.status === 204 || response.status === 304 ? '' : await response.text();
    } catch (error) {
      // Re-read: the signal may have aborted while fetch was pending.
      if (signal?.aborted) throw abortReason(signal);
      if (PollkitError.is(error)) throw error;
      // fetch rejects with a bare TypeError for DNS failures, resets and CORS refusals alike; all of
      // them may succeed on a later try, so they stay retryable.
      throw new PollkitError(`${what} failed: ${(error as Error)?.message ?? String(error)}`, 'network-error', {
        cause: error,
        retryable: true,
      });
    }
    const { status } = response;
    const meta = readMeta(response, this.clock.wallNow());
    let parsed: unknown;
    let parseError: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch (error) {
      parseError = error;
    }

    if (response.ok || status === 304) {
      if (parseError !== undefined) {
        throw new ProtocolError(`${what}: the ${status} body is not JSON`, { cause: parseError });
      }
      return { response, meta, body: parsed };
    }

    const problem = asProblem(parsed, status);
    const httpError = new HttpError(status, {
      ...(problem && { problem }),
      ...(meta.retryAfterMs !== undefined && { retryAfterMs: meta.retryAfterMs }),
    });
    if (/json/i.test(response.headers.get(CONTENT_TYPE) ?? '') && problem === undefined) {
      // The server claimed JSON and sent something else: a broken peer, not an answer we can act on.
      // Whether a retry may help still follows the status (a 503 from a misconfigured proxy will pass).
      throw new ProtocolError(`${what}: the ${status} body is not a problem object`, {
        cause: parseError ?? httpError,
        retryable: httpError.retryable,
      });
    }
    throw spec.mapError?.(httpError) ?? httpError;
  }
}

/**
 * The jobs half of the protocol: submit, read, long-poll, cancel, forget and list jobs.
 *
 * @example
 * ```ts
 * import { JobClient } from 'pollkit/client';
 *
 * const jobs = new JobClient({ baseUrl: 'https://api.example.com' });
 * const { job } = await jobs.submit('video.transcode', { url: 'https://example.com/a.mp4' });
 * let current = job;
 * while (!current.done) {
 *   const answer = await jobs.wait(current.id, { version: current.version, waitSeconds: 25 });
 *   if (answer.changed) current = answer.job;
 * }
 * console.log(current.status, current.result);
 * ```
 */
export class JobClient {
  readonly #transport: ProtocolTransport;
  readonly #simple: boolean;

  constructor(options: JobClientOptions) {
    this.#transport = new ProtocolTransport(options, 'JobClient');
    this.#simple = options.simpleRequests ?? false;
  }

  /**
   * The absolute URL of a job.
   *
   * @example
   * ```ts
   * new JobClient({ baseUrl: 'https://h' }).jobUrl('3f1c'); // "https://h/pollkit/jobs/3f1c"
   * ```
   */
  jobUrl(id: string): string {
    return this.#transport.url(jobPath(id));
  }

  /**
   * Submits a job (`POST {p}/jobs`). Rejects with an {@link HttpError} whose `code` is the problem's
   * (`unknown-job-type`, `invalid-input`, `idempotency-key-reused`, `overloaded`, …).
   *
   * @example
   * ```ts
   * const { job, location, retryAfterMs } = await jobs.submit('report', { month: '2026-01' }, { idempotencyKey: 'r-2026-01' });
   * ```
   */
  async submit<Result = unknown, Data = unknown>(
    type: string,
    input: unknown,
    options: SubmitRequestOptions = {},
  ): Promise<SubmitResult<Result, Data>> {
    if (typeof type !== 'string' || type === '') invalidOption('JobClient.submit', 'type', 'a non-empty string', type);
    const { body, meta, response } = await this.#transport.request({
      method: 'POST',
      path: '/jobs',
      body: { type, input },
      headers: { [IDEMPOTENCY_KEY]: options.idempotencyKey },
      signal: options.signal,
    });
    const job = asJob<Result, Data>(body, 'submit');
    const header = response.headers.get(OPERATION_LOCATION) ?? response.headers.get(LOCATION);
    const url = this.jobUrl(job.id);
    return {
      job,
      location: header === null ? url : new URL(header, url).toString(),
      retryAfterMs: meta.retryAfterMs,
      meta,
    };
  }

  /**
   * Reads a job (`GET {p}/jobs/{id}`), conditionally when `ifNoneMatch` is given: an unchanged job
   * answers `{ changed: false }` (HTTP 304). An unknown or invisible job rejects with an
   * {@link HttpError} of code `job-not-found`.
   *
   * @example
   * ```ts
   * const first = await jobs.get(id);
   * if (first.changed) {
   *   const again = await jobs.get(id, { ifNoneMatch: first.job.version });
   * }
   * ```
   */
  async get<Result = unknown, Data = unknown>(
    id: string,
    options: GetJobOptions = {},
  ): Promise<JobPollResult<Result, Data>> {
    const version = options.ifNoneMatch;
    checkNumber('JobClient.get', 'ifNoneMatch', version, 0, 'integer');
    return this.#poll(
      id,
      { [IF_NONE_MATCH]: version === undefined ? undefined : `"${version}"` },
      undefined,
      options.signal,
    );
  }

  /**
   * Long-polls a job: the server holds the request until the job's version differs from `version`
   * or `waitSeconds` pass; a timeout answers `{ changed: false }`. Give the request a client-side
   * deadline longer than the wait through `signal` (the pollers do).
   *
   * @example
   * ```ts
   * const answer = await jobs.wait(id, { version: 3, waitSeconds: 25, signal: AbortSignal.timeout(35_000) });
   * ```
   */
  async wait<Result = unknown, Data = unknown>(
    id: string,
    options: WaitJobOptions,
  ): Promise<JobPollResult<Result, Data>> {
    const { version, waitSeconds: wait } = options;
    checkNumber('JobClient.wait', 'version', version, 0, 'integer');
    if (!(wait > 0 && wait < Infinity)) invalidOption('JobClient.wait', 'waitSeconds', 'a number > 0', wait);
    return this.#simple
      ? this.#poll(id, undefined, { version, wait }, options.signal, version)
      : this.#poll(
          id,
          { [IF_NONE_MATCH]: `"${version}"`, [PREFER]: `wait=${wait}` },
          undefined,
          options.signal,
          version,
        );
  }

  /**
   * Asks the server to cancel a job (`POST {p}/jobs/{id}:cancel`); idempotent on finished jobs.
   *
   * @example
   * ```ts
   * const job = await jobs.cancel(id);
   * console.log(job.status); // "canceled", or the state it had already finished in
   * ```
   */
  async cancel<Result = unknown, Data = unknown>(
    id: string,
    options: RequestOptions = {},
  ): Promise<JobSnapshot<Result, Data>> {
    const { body } = await this.#transport.request({
      method: 'POST',
      path: `${jobPath(id)}:cancel`,
      signal: options.signal,
    });
    return asJob(body, 'cancel job');
  }

  /**
   * Forgets a finished job (`DELETE {p}/jobs/{id}`). Resolves `true` when deleted, `false` when the
   * job is unknown; a running job rejects with an {@link HttpError} of code `job-not-finished`.
   *
   * @example
   * ```ts
   * if (await jobs.forget(id)) console.log('gone');
   * ```
   */
  async forget(id: string, options: RequestOptions = {}): Promise<boolean> {
    try {
      await this.#transport.request({ method: 'DELETE', path: jobPath(id), signal: options.signal });
      return true;
    } catch (error) {
      if (HttpError.is(error) && error.status === 404) return false;
      throw error;
    }
  }

  /**
   * Lists the caller's jobs, newest first, one page at a time.
   *
   * @example
   * ```ts
   * let page = await jobs.list({ status: 'running', pageSize: 50 });
   * while (page.nextPageToken !== undefined) page = await jobs.list({ pageToken: page.nextPageToken });
   * ```
   */
  async list<Result = unknown>(options: ListJobsOptions = {}): Promise<JobPage<Result>> {
    const { status, pageSize, pageToken } = options;
    checkNumber('JobClient.list', 'pageSize', pageSize, 1, 'integer');
    const { body } = await this.#transport.request({
      path: '/jobs',
      query: { status, pageSize, pageToken },
      signal: options.signal,
    });
    const token = isRecord(body) ? (body['nextPageToken'] ?? undefined) : undefined;
    assertBody(
      isRecord(body) && Array.isArray(body['jobs']) && (token === undefined || typeof token === 'string'),
      'list jobs',
      'a page of jobs',
    );
    const jobs = (body as { jobs: unknown[] }).jobs.map((job) => asJob<Result, unknown>(job, 'list jobs'));
    return token ? { jobs, nextPageToken: token as string } : { jobs };
  }

  /** A conditional or held read of job `id`: a new snapshot, or "still the version you have". */
  async #poll<Result, Data>(
    id: string,
    headers: RequestSpec['headers'],
    query: RequestSpec['query'],
    signal: AbortSignal | undefined,
    knownVersion?: number,
  ): Promise<JobPollResult<Result, Data>> {
    const { response, body, meta } = await this.#transport.request({ path: jobPath(id), headers, query, signal });
    const job = response.status === 304 ? undefined : asJob<Result, Data>(body, 'get job');
    // The CORS-simple long poll answers 200 with the same job at timeout.
    return job === undefined || job.version === knownVersion
      ? { changed: false, job: undefined, meta }
      : { changed: true, job, meta };
  }
}

function jobPath(id: string): string {
  return `/jobs/${encodeURIComponent(id)}`;
}

function topicPath(topic: string): string {
  return `/topics/${encodeURIComponent(topic)}`;
}

/**
 * The topics half of the protocol: Kafka-style offset fetches (short or long-polled) and appends.
 *
 * @example
 * ```ts
 * import { TopicClient, OffsetGoneError } from 'pollkit/client';
 *
 * const topics = new TopicClient({ baseUrl: 'https://api.example.com' });
 * let offset = 0;
 * try {
 *   const batch = await topics.fetch('orders', { offset, waitSeconds: 25 });
 *   for (const record of batch.records) console.log(record.offset, record.value);
 *   offset = batch.nextOffset;
 * } catch (error) {
 *   if (OffsetGoneError.is(error)) offset = error.earliestOffset; // restart knowingly
 * }
 * ```
 */
export class TopicClient {
  readonly #transport: ProtocolTransport;

  constructor(options: TopicClientOptions) {
    this.#transport = new ProtocolTransport(options, 'TopicClient');
  }

  /**
   * The absolute URL of a topic.
   *
   * @example
   * ```ts
   * new TopicClient({ baseUrl: 'https://h' }).topicUrl('orders'); // "https://h/pollkit/topics/orders"
   * ```
   */
  topicUrl(topic: string): string {
    return this.#transport.url(topicPath(topic));
  }

  /**
   * Fetches records from `offset` (`GET {p}/topics/{t}/records`), held up to `waitSeconds` until
   * `minRecords` exist; an empty `records` array at timeout is a normal answer. Rejects with
   * {@link OffsetGoneError} (410: trimmed, or `epoch` is stale) carrying where the log now starts, and
   * {@link OffsetOutOfRangeError} for an offset beyond the high watermark.
   *
   * @example
   * ```ts
   * const batch = await topics.fetch('orders', { offset: 120, limit: 100, waitSeconds: 25, epoch: 'k9f' });
   * ```
   */
  async fetch<Value = unknown>(topic: string, options: TopicFetchOptions): Promise<TopicFetchResponse<Value>> {
    const { offset, limit, minRecords, waitSeconds, epoch, cursor } = options;
    const owner = 'TopicClient.fetch';
    checkNumber(owner, 'offset', offset, 0, 'integer');
    checkNumber(owner, 'limit', limit, 1, 'integer');
    checkNumber(owner, 'minRecords', minRecords, 0, 'integer');
    checkNumber(owner, 'waitSeconds', waitSeconds, 0, 'finite');
    if (cursor !== undefined && !/^\d{1,16}$/.test(cursor)) {
      invalidOption(owner, 'cursor', 'a cursor the server handed out', cursor);
    }
    const what = `fetch topic "${topic}"`;
    const { body, meta } = await this.#transport.request({
      path: `${topicPath(topic)}/records`,
      query: { offset, limit, minRecords, wait: waitSeconds, epoch, cursor },
      // Only a held read without cursor may be repeated with the same URL, and must not be cached.
      cacheable: !(waitSeconds! > 0) || cursor !== undefined,
      signal: options.signal,
      mapError: (error) => topicError(error, topic, what, offset),
    });
    assertBody(
      isRecord(body) &&
        Array.isArray(body['records']) &&
        typeof body['epoch'] === 'string' &&
        isWhole(body['nextOffset']) &&
        isWhole(body['highWatermark']) &&
        isWhole(body['earliestOffset']) &&
        (body['cursor'] === undefined || typeof body['cursor'] === 'string') &&
        body['records'].every((record) => isRecord(record) && isWhole(record['offset'])),
      what,
      'a topic fetch result',
    );
    const result = body as unknown as TopicFetchResult<Value>;
    checkFetchAnswer(topic, options, result);
    return { ...result, meta };
  }

  /**
   * Appends a record (`POST {p}/topics/{t}/records`) and resolves with its offset. Servers may
   * disable public appends (403 `appends-disabled`).
   *
   * @example
   * ```ts
   * const offset = await topics.append('orders', { id: 7, total: 12.5 }, { key: 'customer-42' });
   * ```
   */
  async append(topic: string, value: unknown, options: AppendOptions = {}): Promise<number> {
    const { body } = await this.#transport.request({
      method: 'POST',
      path: `${topicPath(topic)}/records`,
      body: { key: options.key ?? null, value },
      signal: options.signal,
    });
    const offset = isRecord(body) ? body['offset'] : undefined;
    assertBody(isWhole(offset), `append to topic "${topic}"`, 'an append result (needs offset)');
    return offset as number;
  }
}

function topicError(error: HttpError, topic: string, what: string, offset: number): Error | undefined {
  const problem: Record<string, unknown> = error.problem ?? {};
  const { earliestOffset, epoch, highWatermark } = problem;
  if (error.status === 410) {
    // Without the new start we could only guess where to resume, which is the silent skip 410 exists to prevent.
    return isWhole(earliestOffset) && typeof epoch === 'string'
      ? new OffsetGoneError(topic, offset, { earliestOffset, epoch }, { cause: error })
      : new ProtocolError(`${what}: 410 without "earliestOffset" and "epoch"`, { cause: error });
  }
  if (error.status === 400 && problem.code === 'offset-out-of-range') {
    return new OffsetOutOfRangeError(topic, offset, isWhole(highWatermark) ? highWatermark : Number.NaN, {
      cause: error,
    });
  }
  return undefined;
}
