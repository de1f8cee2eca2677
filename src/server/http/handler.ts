/**
 * The wire protocol of `PROTOCOL.md` as one framework-free handler: a {@link PollkitRequest} in, a
 * {@link PollkitResponse} out. Routing, parameter and header validation, conditional and long polls,
 * server-sent event streams, limits on held requests, authorization and shutdown all live here, so each
 * adapter is a few lines of translation and every stack speaks exactly the same protocol.
 *
 * Held requests wait in the registries' purgatory with a signal linked to the client's connection: a
 * hang-up unlinks them at once. Nothing a client sends is answered with a 5xx; only a bug in the server
 * (reported to `onError`) is.
 *
 * @module
 */
import { abortReason } from '../../core/abort.js';
import { type Clock, systemClock } from '../../core/clock.js';
import {
  AbortedError,
  InvalidArgumentError,
  OffsetGoneError,
  OffsetOutOfRangeError,
  PollkitError,
} from '../../core/errors.js';
import {
  DEFAULT_BODY_LIMIT_BYTES,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_MAX_WAIT_SECONDS,
  DEFAULT_PREFIX,
  HEADERS,
  JOB_STATUSES,
  type JobPage,
  type JobSnapshot,
  type JobStatus,
  MEDIA_TYPES,
  type TopicFetchResult,
  type TopicRecord,
  problem,
} from '../../core/protocol.js';
import {
  type IfNoneMatch,
  clip,
  matchesVersion,
  parseIfNoneMatch,
  parsePreferWait,
  parseSeconds,
  parseUnsignedInteger,
  singleParam,
} from './params.js';
import { type PollkitRequest, type PollkitResponse, getHeader } from './types.js';
import { errorToProblem, problemResponse } from './problems.js';
import { type SseEvent, SseStream } from './sse.js';
import { offeredController } from './request-abort.js';
import { integerAtLeast } from '../validate.js';
import type { TopicPosition } from '../topics/stores/topic-store.js';

/** Who may see a job: when `owner` is given, another owner's job behaves as not found. */
export interface HandlerJobAccess {
  /** The caller's owner id. */
  readonly owner?: string;
}

/**
 * The part of a `JobRegistry` the handler uses. `JobRegistry` satisfies it; tests and other stores may
 * provide their own. Each method behaves as the `JobRegistry` method of the same name.
 */
export interface HandlerJobs {
  /** Validates and stores a job whose handler runs in this process. */
  submit(
    type: string,
    input: unknown,
    options?: { owner?: string; idempotencyKey?: string; signal?: AbortSignal },
  ): Promise<JobSnapshot>;
  /** The job's snapshot, or `undefined` when the caller cannot see it. */
  get(id: string, access?: HandlerJobAccess): Promise<JobSnapshot | undefined>;
  /** One page of the caller's jobs, newest first. */
  list(options?: HandlerJobAccess & { status?: JobStatus; pageSize?: number; pageToken?: string }): Promise<JobPage>;
  /** Best-effort cancel; `undefined` when the caller cannot see the job. */
  cancel(id: string, access?: HandlerJobAccess): Promise<JobSnapshot | undefined>;
  /** Removes a finished job; false when the caller cannot see it. */
  forget(id: string, access?: HandlerJobAccess): Promise<boolean>;
  /** Long poll: resolves when the version differs from `sinceVersion` or the time is up. */
  wait(
    id: string,
    options: HandlerJobAccess & { sinceVersion?: number; timeoutMs: number; signal?: AbortSignal },
  ): Promise<JobSnapshot | undefined>;
  /** The job's states as they change, ending after a terminal one. */
  changes(
    id: string,
    options?: HandlerJobAccess & { sinceVersion?: number; signal?: AbortSignal },
  ): AsyncIterableIterator<JobSnapshot>;
  /** The `Retry-After` seconds for a job that is not done. */
  retryAfterSeconds(job: JobSnapshot): number;
}

/** The part of a `Topic` the handler uses; each method behaves as the `Topic` method of the same name. */
export interface HandlerTopic {
  /** The topic's name. */
  readonly name: string;
  /** Appends a record; resolves with its offset. */
  append(value: unknown, options?: { key?: string | null }): Promise<number>;
  /** Fetches records from `offset`, held up to `waitMs` until `minRecords` exist. */
  read(
    offset: number,
    options?: { limit?: number; minRecords?: number; waitMs?: number; epoch?: string; signal?: AbortSignal },
  ): Promise<TopicFetchResult>;
  /** Streams records from `fromOffset`. */
  subscribe(fromOffset: number, options?: { signal?: AbortSignal; epoch?: string }): AsyncIterableIterator<TopicRecord>;
  /** The log's epoch, earliest retained offset and high watermark. */
  position(): Promise<TopicPosition>;
}

/** The part of a `TopicRegistry` the handler uses. */
export interface HandlerTopics {
  /** The topic named `name`, created on first use. */
  topic(name: string): HandlerTopic;
  /** The topic named `name` if it exists. */
  get(name: string): HandlerTopic | undefined;
}

/**
 * What the `authorize` hook says about a caller.
 *
 * @example
 * ```ts
 * import type { PollkitCaller } from 'pollkit/server';
 * const caller: PollkitCaller = { id: 'user-42', owner: 'user-42', canReadTopic: (t) => t.startsWith('public.') };
 * ```
 */
export interface PollkitCaller {
  /** Key for the per-caller held-request limit. Default: `owner`, else the peer address. */
  readonly id?: string;
  /** Jobs submitted by this caller belong to this owner; other owners' jobs are invisible (404). */
  readonly owner?: string;
  /** Whether the caller may read a topic; hidden topics are 404. Default: every topic. */
  readonly canReadTopic?: (topic: string) => boolean;
  /** Whether the caller may append to a topic it can read. Default: the `publicAppends` option. */
  readonly canAppendTopic?: (topic: string) => boolean;
}

/**
 * Identifies the caller of a request. Return `undefined` for an anonymous caller who sees everything;
 * throw a `PollkitError` with code `unauthorized` (401) to refuse the request.
 */
export type AuthorizeHook<Context> = (
  request: PollkitRequest<Context>,
) => PollkitCaller | undefined | Promise<PollkitCaller | undefined>;

/** Options for {@link PollkitHandler}. */
export interface PollkitHandlerOptions<Context = unknown> {
  /** The job registry to serve under `{prefix}/jobs`. Default: none (job routes are 404). */
  readonly jobs?: HandlerJobs;
  /** The topic registry to serve under `{prefix}/topics`. Default: none (topic routes are 404). */
  readonly topics?: HandlerTopics;
  /** Path prefix; requests outside it are not the handler's (`handle` returns `null`). Default `/pollkit`. */
  readonly prefix?: string;
  /**
   * Origin (and optional path) for absolute URLs such as `Operation-Location`, e.g.
   * `https://api.example.com`. Default: derived from the request's `Host` header, which a proxy may
   * rewrite; set this in production.
   */
  readonly baseUrl?: string;
  /** Cap on a requested `wait`, in seconds. Default 30. */
  readonly maxWaitSeconds?: number;
  /** Jitter added to a held wait, as a fraction of it, from 0 to 1/16; never beyond the cap. Default 1/16. */
  readonly waitJitter?: number;
  /** Quiet time after which SSE streams send `: hb`, in milliseconds; 0 disables. Default 15 000. */
  readonly heartbeatMs?: number;
  /** The `retry:` reconnection delay sent at the start of SSE streams, in milliseconds. Default 3000. */
  readonly sseRetryMs?: number;
  /** Largest accepted request body, in bytes; larger is 413. Default 102 400 (100 KiB). */
  readonly bodyLimitBytes?: number;
  /**
   * Deepest nesting of arrays and objects accepted in a JSON body; deeper is 400. Stored values are
   * serialized again on every read, and recursion that deep would fail there, far from the request
   * that caused it. Default 64.
   */
  readonly maxJsonDepth?: number;
  /** Most held requests and SSE streams at once; beyond it, 503 with `Retry-After`. Default 10 000. */
  readonly maxHeldRequests?: number;
  /** Most held requests and SSE streams per caller; beyond it, 429 with `Retry-After`. Default 100. */
  readonly maxHeldPerCaller?: number;
  /** The `Retry-After` seconds sent with 503 and 429 for held-request limits and shutdown. Default 1. */
  readonly heldRetryAfterSeconds?: number;
  /** Most records one fetch may return; a larger `limit` is lowered to it. Default 1000. */
  readonly maxRecordsPerFetch?: number;
  /** Identifies callers and decides what they may see. Default: everyone sees everything. */
  readonly authorize?: AuthorizeHook<Context>;
  /** Whether callers may append to topics over HTTP (else 403 `appends-disabled`). Default `false`. */
  readonly publicAppends?: boolean;
  /** Whether reading an unknown topic creates it (else 404). Appends always create. Default `false`. */
  readonly autoCreateTopics?: boolean;
  /** Time, timers and randomness (wait jitter, heartbeats). Default `systemClock`. */
  readonly clock?: Clock;
  /** How long `close()` lets streams finish their last event before ending them, in ms. Default 5000. */
  readonly closeGraceMs?: number;
  /** Told about failures that were answered with a 5xx (server bugs) or that ended a stream. */
  readonly onError?: (error: unknown, request: PollkitRequest<Context>) => void;
}

interface Target {
  readonly path: string;
  readonly query: URLSearchParams;
}

/**
 * One held request or stream. A long poll whose adapter offered its request's controller (see
 * `request-abort.ts`) waits on the request's own signal; otherwise the entry links a signal of its own,
 * being itself the abort listener (`handleEvent`) so the link costs no closures. The handler keeps
 * thousands of these at once.
 */
class Held {
  readonly key: string | undefined;
  readonly #source: AbortSignal;
  readonly #controller: AbortController;
  /** True when `#controller` is the entry's own, listening to `#source`. */
  readonly #linked: boolean;
  /** The handler, not the client, aborted the signal (shutdown, or the stream ended). */
  abortedByHandler = false;
  /** Made only when `close()` has to wait for this request, not for every held request. */
  settled: Promise<void> | undefined;
  settle: (() => void) | undefined;
  stream: SseStream | undefined;

  constructor(key: string | undefined, source: AbortSignal, shared: AbortController | undefined) {
    this.key = key;
    this.#source = source;
    this.#linked = shared === undefined;
    this.#controller = shared ?? new AbortController();
    if (shared !== undefined) return;
    if (source.aborted) this.#controller.abort(abortReason(source));
    else source.addEventListener('abort', this);
  }

  /** Aborts when the client leaves, when the handler shuts down, or when {@link Held.abort} is called. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The client's signal aborted (linked entries only). */
  handleEvent(): void {
    this.dispose();
    this.#controller.abort(abortReason(this.#source));
  }

  abort(reason?: unknown): void {
    this.dispose();
    if (this.#controller.signal.aborted) return;
    this.abortedByHandler = true;
    this.#controller.abort(reason ?? new AbortedError());
  }

  dispose(): void {
    if (this.#linked) this.#source.removeEventListener('abort', this);
  }

  /** Resolves once the request has left the handler. */
  whenSettled(): Promise<void> {
    this.settled ??= new Promise<void>((resolve) => {
      this.settle = resolve;
    });
    return this.settled;
  }
}

interface Call<Context> {
  readonly request: PollkitRequest<Context>;
  readonly query: URLSearchParams;
  readonly caller: PollkitCaller | undefined;
}

type Route =
  | { readonly kind: 'jobs' }
  | { readonly kind: 'job'; readonly id: string }
  | { readonly kind: 'job-cancel'; readonly id: string }
  | { readonly kind: 'job-events'; readonly id: string }
  | { readonly kind: 'topic-records'; readonly topic: string }
  | { readonly kind: 'topic-events'; readonly topic: string };

const ALLOWED: Readonly<Record<Route['kind'], readonly string[]>> = {
  jobs: ['GET', 'POST'],
  job: ['GET', 'DELETE'],
  'job-cancel': ['POST'],
  'job-events': ['GET'],
  'topic-records': ['GET', 'POST'],
  'topic-events': ['GET'],
};

const MAX_ID_LENGTH = 256;
const MAX_TYPE_LENGTH = 256;
const MAX_PAGE_SIZE = 1000;
const DEFAULT_FETCH_LIMIT = 100;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
const SAFE_HOST = /^[A-Za-z0-9.\-_:[\]]{1,255}$/;
const JSON_MEDIA = /^(application\/([\w.+-]*\+)?json|text\/plain)\s*(;|$)/i;

/** The answer for a client that already left; nobody reads it. */
const CLIENT_GONE: PollkitResponse = Object.freeze({ status: 204, headers: Object.freeze({}), body: null });

/**
 * The pollkit protocol over plain requests and responses. Mount it with an adapter
 * (`createNodeListener` from `pollkit/node`, `createFetchHandler` for web-standard runtimes).
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { JobRegistry, PollkitHandler, TopicRegistry } from 'pollkit/server';
 * import { createNodeListener } from 'pollkit/node';
 *
 * const jobs = new JobRegistry().define('echo', ({ input }) => input);
 * const handler = new PollkitHandler({ jobs, topics: new TopicRegistry(), maxWaitSeconds: 20 });
 * createServer(createNodeListener(handler)).listen(8080);
 * ```
 */
export class PollkitHandler<Context = unknown> {
  readonly #jobs: HandlerJobs | undefined;
  readonly #topics: HandlerTopics | undefined;
  readonly #prefix: string;
  readonly #baseUrl: string | undefined;
  readonly #maxWaitMs: number;
  readonly #jitter: number;
  readonly #heartbeatMs: number;
  readonly #sseRetryMs: number;
  readonly #bodyLimit: number;
  readonly #maxJsonDepth: number;
  readonly #maxHeld: number;
  readonly #maxHeldPerCaller: number;
  readonly #heldRetryAfter: number;
  readonly #maxRecords: number;
  readonly #authorize: AuthorizeHook<Context> | undefined;
  readonly #publicAppends: boolean;
  readonly #autoCreateTopics: boolean;
  readonly #clock: Clock;
  readonly #closeGraceMs: number;
  readonly #onError: ((error: unknown, request: PollkitRequest<Context>) => void) | undefined;
  readonly #held = new Set<Held>();
  readonly #heldByCaller = new Map<string, number>();
  #closing = false;
  #closed: Promise<void> | undefined;
  /** What `close()` aborted held requests with; a request signal aborted with it is no hang-up. */
  #shutdownReason: unknown;

  constructor(options: PollkitHandlerOptions<Context> = {}) {
    this.#jobs = options.jobs;
    this.#topics = options.topics;
    this.#prefix = validatePrefix(options.prefix ?? DEFAULT_PREFIX);
    this.#baseUrl = options.baseUrl === undefined ? undefined : validateBaseUrl(options.baseUrl);
    this.#maxWaitMs = positive(options.maxWaitSeconds ?? DEFAULT_MAX_WAIT_SECONDS, 'maxWaitSeconds', true) * 1000;
    const jitter = options.waitJitter ?? 1 / 16;
    if (!(jitter >= 0 && jitter <= 1 / 16)) {
      throw new InvalidArgumentError(`waitJitter must be between 0 and 1/16, got ${jitter}`, 'waitJitter');
    }
    this.#jitter = jitter;
    this.#heartbeatMs = positive(options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS, 'heartbeatMs', true);
    this.#sseRetryMs = integerAtLeast(options.sseRetryMs ?? 3000, 'sseRetryMs', 0);
    this.#bodyLimit = integerAtLeast(options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES, 'bodyLimitBytes', 0);
    this.#maxJsonDepth = integerAtLeast(options.maxJsonDepth ?? 64, 'maxJsonDepth', 1);
    this.#maxHeld = integerAtLeast(options.maxHeldRequests ?? 10_000, 'maxHeldRequests', 0);
    this.#maxHeldPerCaller = integerAtLeast(options.maxHeldPerCaller ?? 100, 'maxHeldPerCaller', 0);
    this.#heldRetryAfter = integerAtLeast(options.heldRetryAfterSeconds ?? 1, 'heldRetryAfterSeconds', 0);
    this.#maxRecords = integerAtLeast(options.maxRecordsPerFetch ?? 1000, 'maxRecordsPerFetch', 1);
    this.#closeGraceMs = positive(options.closeGraceMs ?? 5000, 'closeGraceMs', true);
    if (options.authorize !== undefined && typeof options.authorize !== 'function') {
      throw new InvalidArgumentError('authorize must be a function', 'authorize');
    }
    this.#authorize = options.authorize;
    this.#publicAppends = options.publicAppends ?? false;
    this.#autoCreateTopics = options.autoCreateTopics ?? false;
    this.#clock = options.clock ?? systemClock;
    this.#onError = options.onError;
  }

  /** The path prefix this handler answers under. */
  get prefix(): string {
    return this.#prefix;
  }

  /** How many held requests and SSE streams are open right now. */
  get heldRequests(): number {
    return this.#held.size;
  }

  /** True once `close()` has been called. */
  get closing(): boolean {
    return this.#closing;
  }

  /**
   * Answers one request. Resolves with `null` when the path is outside the prefix (so the adapter can
   * pass the request on); never rejects.
   */
  handle(request: PollkitRequest<Context>): Promise<PollkitResponse | null> {
    let target: Target;
    try {
      target = parseTarget(request.url);
    } catch {
      return Promise.resolve(
        problemResponse(problem('bad-request', 'The request target is not a valid URL.', { parameter: 'url' })),
      );
    }
    const rest = this.#relative(target.path);
    if (rest === undefined) return Promise.resolve(null);
    // The route's promise is passed on, not awaited in a frame here: a held request then keeps no
    // suspended frame (with the parsed URL and query) alive for its whole wait.
    return this.#dispatch(request, target, rest).then(undefined, (error: unknown) => this.#fail(error, request));
  }

  // Not async, like #route: each async layer that only passes a promise on would cost every held
  // request one more promise adoption (a reaction, two resolving functions and their context).
  #dispatch(request: PollkitRequest<Context>, target: Target, rest: string): Promise<PollkitResponse> {
    try {
      if (this.#closing) return Promise.resolve(this.#shuttingDown());
      const route = parseRoute(rest);
      if (route === undefined) {
        return Promise.resolve(problemResponse(problem('not-found', `Nothing is served at ${clip(target.path, 80)}.`)));
      }
      const method = request.method.toUpperCase();
      const allowed = ALLOWED[route.kind];
      if (!allowed.includes(method)) {
        return Promise.resolve(
          problemResponse(problem('method-not-allowed', `${clip(method, 20)} is not allowed here.`), undefined, {
            allow: allowed.join(', '),
          }),
        );
      }
      const authorize = this.#authorize;
      if (authorize === undefined)
        return this.#route(route, method, { request, query: target.query, caller: undefined });
      return Promise.resolve(authorize(request)).then((caller) =>
        this.#route(route, method, { request, query: target.query, caller }),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Stops the handler: every held request is answered with the current state, every job stream sends
   * the current state and ends, topic streams end, and later requests get 503 `shutting-down`.
   * Resolves once all of them have ended (streams whose client stopped reading are cut after
   * `closeGraceMs`). Idempotent. Does not close the registries, which the application owns.
   *
   * @example
   * ```ts
   * import { PollkitHandler } from 'pollkit/server';
   * const handler = new PollkitHandler();
   * process.on('SIGTERM', () => void handler.close());
   * ```
   */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#closing = true;
    const held = [...this.#held];
    const all = Promise.all(held.map((entry) => entry.whenSettled()));
    const reason = new PollkitError('The server is shutting down', 'shutting-down');
    this.#shutdownReason = reason;
    for (const entry of held) entry.abort(reason);
    let timer: unknown;
    const grace = new Promise<'grace'>((resolve) => {
      timer = this.#clock.setTimeout(() => resolve('grace'), this.#closeGraceMs, { unref: true });
    });
    const winner = await Promise.race([all, grace]);
    this.#clock.clearTimeout(timer);
    if (winner === 'grace') {
      for (const entry of this.#held) void entry.stream?.return();
      await all;
    }
  }

  /** Every branch is an async method, so nothing here throws synchronously. */
  #route(route: Route, method: string, call: Call<Context>): Promise<PollkitResponse> {
    switch (route.kind) {
      case 'jobs':
        return method === 'POST' ? this.#submit(call) : this.#list(call);
      case 'job':
        return method === 'GET' ? this.#getJob(route.id, call) : this.#forget(route.id, call);
      case 'job-cancel':
        return this.#cancel(route.id, call);
      case 'job-events':
        return this.#jobEvents(route.id, call);
      case 'topic-records':
        return method === 'POST' ? this.#append(route.topic, call) : this.#read(route.topic, call);
      case 'topic-events':
        return this.#topicEvents(route.topic, call);
    }
  }

  // ---- jobs -----------------------------------------------------------------------------------

  async #submit(call: Call<Context>): Promise<PollkitResponse> {
    const jobs = this.#requireJobs();
    const idempotencyKey = getHeader(call.request.headers, HEADERS.idempotencyKey);
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new InvalidArgumentError('Idempotency-Key must be 1 to 255 visible ASCII characters', 'Idempotency-Key');
    }
    const body = await this.#readJson(call.request);
    if (!isPlainObject(body)) throw new InvalidArgumentError('The body must be a JSON object', 'body');
    const type = body['type'];
    if (typeof type !== 'string' || type.length === 0 || type.length > MAX_TYPE_LENGTH) {
      throw new InvalidArgumentError(`type must be a string of 1 to ${MAX_TYPE_LENGTH} characters`, 'type');
    }
    const job = await jobs.submit(type, body['input'] ?? null, {
      ...ownerOf(call.caller),
      ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
      signal: call.request.signal,
    });
    const url = `${this.#origin(call.request)}${this.#prefix}/jobs/${encodeURIComponent(job.id)}`;
    return json(202, job, {
      ...jobHeaders(job, jobs),
      [HEADERS.location]: url,
      [HEADERS.operationLocation]: url,
    });
  }

  async #list(call: Call<Context>): Promise<PollkitResponse> {
    const jobs = this.#requireJobs();
    const status = singleParam(call.query, 'status');
    if (status !== undefined && status !== '' && !(JOB_STATUSES as readonly string[]).includes(status)) {
      throw new InvalidArgumentError(`status must be one of ${JOB_STATUSES.join(', ')}`, 'status');
    }
    const pageSizeText = singleParam(call.query, 'pageSize');
    const pageSize =
      pageSizeText === undefined || pageSizeText === '' ? undefined : parseUnsignedInteger(pageSizeText, 'pageSize');
    if (pageSize === 0) throw new InvalidArgumentError('pageSize must be at least 1', 'pageSize');
    const pageToken = singleParam(call.query, 'pageToken');
    if (pageToken !== undefined && pageToken.length > 1024) {
      throw new InvalidArgumentError('pageToken is too long', 'pageToken');
    }
    const page = await jobs.list({
      ...ownerOf(call.caller),
      ...(status === undefined || status === '' ? {} : { status: status as JobStatus }),
      ...(pageSize === undefined ? {} : { pageSize: Math.min(pageSize, MAX_PAGE_SIZE) }),
      ...(pageToken === undefined || pageToken === '' ? {} : { pageToken }),
    });
    const body: JobPage =
      page.nextPageToken === undefined ? { jobs: page.jobs } : { jobs: page.jobs, nextPageToken: page.nextPageToken };
    return json(200, body, {});
  }

  async #getJob(id: string, call: Call<Context>): Promise<PollkitResponse> {
    const jobs = this.#requireJobs();
    const { request, query } = call;
    const condition: IfNoneMatch | undefined = parseIfNoneMatch(getHeader(request.headers, HEADERS.ifNoneMatch));
    const versionText = singleParam(query, 'version');
    const version = versionText === undefined ? undefined : parseUnsignedInteger(versionText, 'version');
    const requestedWait = this.#requestedWait(call);
    const access = ownerOf(call.caller);
    let job = await jobs.get(id, access);
    if (job === undefined) return jobNotFound(id);
    const waitMs = requestedWait === undefined ? undefined : this.#applyWait(requestedWait);
    // `*` matches every version, so it names nothing to wait for a change from.
    const baseline =
      version ??
      (condition !== undefined && condition !== '*' && matchesVersion(condition, job.version)
        ? job.version
        : undefined);
    // A finished job is held too: it can still disappear (forget, expiry), and answering at once would
    // let a client that keeps polling its final version spin.
    if (waitMs !== undefined && waitMs > 0 && baseline === job.version) {
      const held = await this.#hold(
        call,
        (signal) => jobs.wait(id, { ...access, sinceVersion: baseline, timeoutMs: waitMs, signal }),
        () => jobs.get(id, access),
      );
      if (held === CLIENT_GONE) return CLIENT_GONE;
      if (!isSnapshotOrUndefined(held)) return held;
      if (held === undefined) return jobNotFound(id);
      job = held;
    }
    const headers = {
      ...jobHeaders(job, jobs),
      [HEADERS.vary]: 'Prefer',
      // Without a version to compare there is nothing to wait for, so the preference was not applied.
      ...(waitMs === undefined || baseline === undefined
        ? {}
        : { [HEADERS.preferenceApplied]: `wait=${formatSeconds(waitMs)}` }),
    };
    if (version === undefined && condition !== undefined && matchesVersion(condition, job.version)) {
      return { status: 304, headers: { ...headers, [HEADERS.cacheControl]: 'no-store' }, body: null };
    }
    return json(200, job, headers);
  }

  async #cancel(id: string, call: Call<Context>): Promise<PollkitResponse> {
    const jobs = this.#requireJobs();
    const job = await jobs.cancel(id, ownerOf(call.caller));
    if (job === undefined) return jobNotFound(id);
    return json(200, job, jobHeaders(job, jobs));
  }

  async #forget(id: string, call: Call<Context>): Promise<PollkitResponse> {
    const jobs = this.#requireJobs();
    const forgotten = await jobs.forget(id, ownerOf(call.caller));
    if (!forgotten) return jobNotFound(id);
    return { status: 204, headers: { [HEADERS.cacheControl]: 'no-store' }, body: null };
  }

  async #jobEvents(id: string, call: Call<Context>): Promise<PollkitResponse> {
    const jobs = this.#requireJobs();
    const { request } = call;
    const lastEventId = getHeader(request.headers, HEADERS.lastEventId);
    const since =
      lastEventId === undefined || lastEventId.trim() === ''
        ? undefined
        : parseUnsignedInteger(lastEventId, 'Last-Event-ID');
    const access = ownerOf(call.caller);
    const job = await jobs.get(id, access);
    if (job === undefined) return jobNotFound(id);
    // A client that already saw the terminal event reconnects by reflex; 204 tells EventSource to stop.
    if (job.done && since !== undefined && since >= job.version) {
      return { status: 204, headers: { [HEADERS.cacheControl]: 'no-store' }, body: null };
    }
    const entry = this.#enter(call);
    if (!(entry instanceof Held)) return entry;
    const signal = entry.signal;
    const closing = (): boolean => this.#closing && !request.signal.aborted;
    async function* events(): AsyncGenerator<SseEvent> {
      let lastVersion = since ?? -1;
      let lastStatus: JobStatus | undefined;
      const toEvent = (snapshot: JobSnapshot): SseEvent => {
        const kind = lastStatus === snapshot.status && !snapshot.done ? 'progress' : 'state';
        lastVersion = snapshot.version;
        lastStatus = snapshot.status;
        return { id: String(snapshot.version), event: kind, data: JSON.stringify(snapshot) };
      };
      try {
        const changes = jobs.changes(id, {
          ...access,
          ...(since === undefined ? {} : { sinceVersion: since }),
          signal,
        });
        for await (const snapshot of changes) {
          if (snapshot.version <= lastVersion) continue;
          yield toEvent(snapshot);
          if (snapshot.done) return;
        }
      } catch (error) {
        if (!signal.aborted) throw error;
      }
      if (closing()) {
        const current = await jobs.get(id, access);
        if (current !== undefined && current.version > lastVersion) yield toEvent(current);
      }
    }
    return this.#stream(entry, call, events());
  }

  // ---- topics ---------------------------------------------------------------------------------

  async #append(name: string, call: Call<Context>): Promise<PollkitResponse> {
    const registry = this.#requireTopics();
    if (call.caller?.canReadTopic !== undefined && !call.caller.canReadTopic(name)) return topicNotFound(name);
    const allowed = call.caller?.canAppendTopic?.(name) ?? this.#publicAppends;
    if (!allowed) {
      return problemResponse(problem('appends-disabled', `Appending to topic ${clip(name)} over HTTP is disabled.`));
    }
    const body = await this.#readJson(call.request);
    if (!isPlainObject(body)) throw new InvalidArgumentError('The body must be a JSON object', 'body');
    if (!Object.hasOwn(body, 'value')) throw new InvalidArgumentError('The body needs a "value"', 'value');
    const key = body['key'];
    if (key !== undefined && key !== null && typeof key !== 'string') {
      throw new InvalidArgumentError('key must be a string or null', 'key');
    }
    const topic = registry.topic(name);
    const offset = await topic.append(body['value'], key === undefined ? {} : { key });
    return json(201, { offset }, {});
  }

  async #read(name: string, call: Call<Context>): Promise<PollkitResponse> {
    const { query } = call;
    const offsetText = singleParam(query, 'offset');
    if (offsetText === undefined) throw new InvalidArgumentError('offset is required', 'offset');
    const offset = parseUnsignedInteger(offsetText, 'offset');
    const limitText = singleParam(query, 'limit');
    const limit = limitText === undefined ? DEFAULT_FETCH_LIMIT : parseUnsignedInteger(limitText, 'limit');
    if (limit === 0) throw new InvalidArgumentError('limit must be at least 1', 'limit');
    const minText = singleParam(query, 'minRecords');
    const minRecords = minText === undefined ? 1 : parseUnsignedInteger(minText, 'minRecords');
    const epoch = this.#epochParam(query);
    const requestedWait = this.#requestedWait(call);
    const topic = this.#visibleTopic(name, call);
    if (topic === undefined) return topicNotFound(name);
    const waitMs = requestedWait === undefined ? undefined : this.#applyWait(requestedWait);
    const options = {
      limit: Math.min(limit, this.#maxRecords),
      minRecords: Math.min(minRecords, limit, this.#maxRecords),
      ...(epoch === undefined ? {} : { epoch }),
    };
    const position = waitMs !== undefined && waitMs > 0 ? await topic.position() : undefined;
    // Only a read that can be answered later is held; a gone or out-of-range offset fails at once.
    if (
      position !== undefined &&
      offset >= position.earliestOffset &&
      offset <= position.highWatermark &&
      position.highWatermark - offset < options.minRecords
    ) {
      // Returned, not awaited, so this frame (the parsed query and options) ends before the wait does.
      return this.#hold(
        call,
        (signal) => topic.read(offset, { ...options, waitMs: waitMs!, signal }),
        () => topic.read(offset, options),
      ).then((held) => (isFetchResult(held) ? fetchAnswer(held, waitMs) : held));
    }
    return fetchAnswer(await topic.read(offset, options), waitMs);
  }

  async #topicEvents(name: string, call: Call<Context>): Promise<PollkitResponse> {
    const { request, query } = call;
    const lastEventId = getHeader(request.headers, HEADERS.lastEventId);
    const offsetText = singleParam(query, 'offset');
    let from: number | undefined;
    // Last-Event-ID wins over ?offset: it is where a reconnecting EventSource actually stopped.
    if (lastEventId !== undefined && lastEventId.trim() !== '')
      from = parseUnsignedInteger(lastEventId, 'Last-Event-ID') + 1;
    else if (offsetText !== undefined) from = parseUnsignedInteger(offsetText, 'offset');
    const epoch = this.#epochParam(query);
    const topic = this.#visibleTopic(name, call);
    if (topic === undefined) return topicNotFound(name);
    const position = await topic.position();
    from ??= position.highWatermark;
    if (from < position.earliestOffset || (epoch !== undefined && epoch !== position.epoch)) {
      throw new OffsetGoneError(name, from, position);
    }
    if (from > position.highWatermark) throw new OffsetOutOfRangeError(name, from, position.highWatermark);
    const entry = this.#enter(call);
    if (!(entry instanceof Held)) return entry;
    const signal = entry.signal;
    async function* events(): AsyncGenerator<SseEvent> {
      try {
        for await (const record of topic!.subscribe(from!, { signal, epoch: position.epoch })) {
          yield { id: String(record.offset), data: JSON.stringify(record) };
        }
      } catch (error) {
        if (signal.aborted) return;
        // Fell behind retention mid-stream: say so in-band; the reconnect then gets the 410.
        if (OffsetGoneError.is(error)) {
          yield { event: 'problem', data: JSON.stringify(errorToProblem(error).problem) };
          return;
        }
        throw error;
      }
    }
    return this.#stream(entry, call, events());
  }

  // ---- holding --------------------------------------------------------------------------------

  /** Takes a held slot; `shareSignal` (one-shot waits, never streams) waits on the request's own signal if offered. */
  #enter(call: Call<Context>, shareSignal = false): Held | PollkitResponse {
    if (this.#closing) return this.#shuttingDown();
    if (this.#held.size >= this.#maxHeld) {
      return problemResponse(
        problem('overloaded', `The server holds its maximum of ${this.#maxHeld} requests.`),
        this.#heldRetryAfter,
      );
    }
    const key = call.caller?.id ?? call.caller?.owner ?? call.request.remoteAddress;
    if (key !== undefined) {
      const count = this.#heldByCaller.get(key) ?? 0;
      if (count >= this.#maxHeldPerCaller) {
        return problemResponse(
          problem('too-many-held-requests', `This caller already holds ${count} requests.`),
          this.#heldRetryAfter,
        );
      }
      this.#heldByCaller.set(key, count + 1);
    }
    const shared = shareSignal ? offeredController(call.request) : undefined;
    const entry = new Held(key, call.request.signal, shared);
    this.#held.add(entry);
    return entry;
  }

  #leave(entry: Held): void {
    if (!this.#held.delete(entry)) return;
    entry.dispose();
    if (entry.key !== undefined) {
      const count = (this.#heldByCaller.get(entry.key) ?? 1) - 1;
      if (count <= 0) this.#heldByCaller.delete(entry.key);
      else this.#heldByCaller.set(entry.key, count);
    }
    entry.settle?.();
  }

  /**
   * Runs a wait in a held slot. A client hang-up yields {@link CLIENT_GONE}; a shutdown answers with
   * `current()`, the state as it is now.
   */
  async #hold<T>(
    call: Call<Context>,
    wait: (signal: AbortSignal) => Promise<T>,
    current: () => Promise<T>,
  ): Promise<T | PollkitResponse> {
    // Arrived before close() but reached its wait after: answered like the ones close() found waiting.
    if (this.#closing) return await current();
    const entry = this.#enter(call, true);
    if (!(entry instanceof Held)) return entry;
    try {
      return await wait(entry.signal);
    } catch (error) {
      if (this.#closing && entry.abortedByHandler) return await current();
      if (call.request.signal.aborted) return CLIENT_GONE;
      if (this.#closing && entry.signal.aborted) return await current();
      throw error;
    } finally {
      this.#leave(entry);
    }
  }

  #stream(entry: Held, call: Call<Context>, events: AsyncGenerator<SseEvent>): PollkitResponse {
    const stream = new SseStream(events, {
      retryMs: this.#sseRetryMs,
      heartbeatMs: this.#heartbeatMs,
      clock: this.#clock,
      // Only the client's hang-up cuts the stream short; a shutdown lets the source send its last event.
      signal: call.request.signal,
      onClose: (error) => {
        entry.abort();
        this.#leave(entry);
        if (error !== undefined) this.#onError?.(error, call.request);
      },
    });
    entry.stream = stream;
    return {
      status: 200,
      headers: {
        [HEADERS.contentType]: `${MEDIA_TYPES.eventStream}; charset=utf-8`,
        [HEADERS.cacheControl]: 'no-store',
        'x-accel-buffering': 'no',
      },
      body: stream,
    };
  }

  // ---- helpers --------------------------------------------------------------------------------

  #requestedWait(call: Call<Context>): number | undefined {
    const text = singleParam(call.query, 'wait');
    const fromQuery = text === undefined ? undefined : parseSeconds(text, 'wait');
    const fromHeader = parsePreferWait(getHeader(call.request.headers, HEADERS.prefer));
    return fromQuery ?? fromHeader;
  }

  /** Caps a requested wait and adds up to `waitJitter` of it, so synchronized clients drift apart. */
  #applyWait(requestedMs: number): number {
    const base = Math.min(requestedMs, this.#maxWaitMs);
    if (base <= 0) return 0;
    return Math.min(this.#maxWaitMs, Math.round(base + this.#clock.random() * base * this.#jitter));
  }

  #epochParam(query: URLSearchParams): string | undefined {
    const epoch = singleParam(query, 'epoch');
    if (epoch === undefined || epoch === '') return undefined;
    if (epoch.length > 128) throw new InvalidArgumentError('epoch is too long', 'epoch');
    return epoch;
  }

  #visibleTopic(name: string, call: Call<Context>): HandlerTopic | undefined {
    const registry = this.#requireTopics();
    if (call.caller?.canReadTopic !== undefined && !call.caller.canReadTopic(name)) return undefined;
    if (this.#autoCreateTopics) return registry.topic(name);
    try {
      return registry.get(name);
    } catch (error) {
      // An invalid name cannot exist; to a reader it is simply not there.
      if (InvalidArgumentError.is(error)) return undefined;
      throw error;
    }
  }

  async #readJson(request: PollkitRequest<Context>): Promise<unknown> {
    const contentType = getHeader(request.headers, HEADERS.contentType);
    if (contentType !== undefined && contentType.trim() !== '' && !JSON_MEDIA.test(contentType.trim())) {
      throw new PollkitError(`Content-Type ${clip(contentType)} is not JSON`, 'unsupported-media-type');
    }
    const text = request.readBody === undefined ? '' : await request.readBody(this.#bodyLimit);
    if (text.trim() === '') throw new InvalidArgumentError('The request needs a JSON body', 'body');
    if (jsonDepth(text) > this.#maxJsonDepth) {
      throw new InvalidArgumentError(`The body nests deeper than ${this.#maxJsonDepth} levels`, 'body');
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new InvalidArgumentError('The body is not valid JSON', 'body');
    }
  }

  #origin(request: PollkitRequest<Context>): string {
    if (this.#baseUrl !== undefined) return this.#baseUrl;
    if (/^https?:\/\//i.test(request.url)) {
      const url = new URL(request.url);
      return url.origin;
    }
    const host = getHeader(request.headers, 'host') ?? getHeader(request.headers, ':authority');
    if (host === undefined || !SAFE_HOST.test(host)) return '';
    return `${request.secure === true ? 'https' : 'http'}://${host}`;
  }

  #relative(path: string): string | undefined {
    if (this.#prefix === '') return path;
    if (path === this.#prefix) return '';
    return path.startsWith(`${this.#prefix}/`) ? path.slice(this.#prefix.length) : undefined;
  }

  #requireJobs(): HandlerJobs {
    if (this.#jobs === undefined) throw new PollkitError('This server has no jobs', 'not-found');
    return this.#jobs;
  }

  #requireTopics(): HandlerTopics {
    if (this.#topics === undefined) throw new PollkitError('This server has no topics', 'not-found');
    return this.#topics;
  }

  #shuttingDown(): PollkitResponse {
    return problemResponse(problem('shutting-down', 'The server is shutting down.'), this.#heldRetryAfter);
  }

  #fail(error: unknown, request: PollkitRequest<Context>): PollkitResponse {
    // A body cut off by a hang-up, or a wait ended by one, is nobody's fault and has nobody to tell.
    if (request.signal.aborted && request.signal.reason !== this.#shutdownReason) return CLIENT_GONE;
    const { problem, retryAfterSeconds } = errorToProblem(error);
    if (problem.status >= 500 && problem.code !== 'overloaded' && problem.code !== 'shutting-down') {
      this.#onError?.(error, request);
    }
    return problemResponse(problem, retryAfterSeconds);
  }
}

/**
 * Creates a {@link PollkitHandler}.
 *
 * @example
 * ```ts
 * import { createPollkitHandler, TopicRegistry } from 'pollkit/server';
 * const handler = createPollkitHandler({ topics: new TopicRegistry(), publicAppends: true });
 * ```
 */
export function createPollkitHandler<Context = unknown>(
  options: PollkitHandlerOptions<Context> = {},
): PollkitHandler<Context> {
  return new PollkitHandler(options);
}

// ---- module helpers -------------------------------------------------------------------------------

function parseTarget(url: string): Target {
  let pathAndQuery = url;
  if (!url.startsWith('/')) {
    // Absolute-form targets (proxies, fetch) carry an origin we do not route on.
    const parsed = new URL(url);
    pathAndQuery = `${parsed.pathname}${parsed.search}`;
  }
  const hash = pathAndQuery.indexOf('#');
  if (hash >= 0) pathAndQuery = pathAndQuery.slice(0, hash);
  const mark = pathAndQuery.indexOf('?');
  const path = mark < 0 ? pathAndQuery : pathAndQuery.slice(0, mark);
  const query = new URLSearchParams(mark < 0 ? '' : pathAndQuery.slice(mark + 1));
  return { path, query };
}

function parseRoute(rest: string): Route | undefined {
  if (!rest.startsWith('/')) return undefined;
  const raw = rest.slice(1).split('/');
  const segments: string[] = [];
  for (const segment of raw) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      throw new InvalidArgumentError('The path holds a malformed percent-encoding', 'path');
    }
    if (decoded === '' || decoded.length > MAX_ID_LENGTH) return undefined;
    segments.push(decoded);
  }
  const [collection, name, action] = segments;
  if (collection === 'jobs') {
    if (segments.length === 1) return { kind: 'jobs' };
    if (name === undefined) return undefined;
    if (segments.length === 2) {
      const cancel = name.endsWith(':cancel') ? name.slice(0, -':cancel'.length) : undefined;
      return cancel === undefined
        ? { kind: 'job', id: name }
        : cancel === ''
          ? undefined
          : { kind: 'job-cancel', id: cancel };
    }
    if (segments.length === 3 && action === 'cancel') return { kind: 'job-cancel', id: name };
    if (segments.length === 3 && action === 'events') return { kind: 'job-events', id: name };
    return undefined;
  }
  if (collection === 'topics' && name !== undefined && segments.length === 3) {
    if (action === 'records') return { kind: 'topic-records', topic: name };
    if (action === 'events') return { kind: 'topic-events', topic: name };
  }
  return undefined;
}

function jobHeaders(job: JobSnapshot, jobs: HandlerJobs): Record<string, string> {
  const headers: Record<string, string> = { [HEADERS.etag]: `"${job.version}"` };
  if (!job.done) headers[HEADERS.retryAfter] = String(jobs.retryAfterSeconds(job));
  if (job.expiresAt !== null) {
    const at = Date.parse(job.expiresAt);
    if (!Number.isNaN(at)) headers[HEADERS.expires] = new Date(at).toUTCString();
  }
  return headers;
}

function json(status: number, body: unknown, headers: Record<string, string>): PollkitResponse {
  return {
    status,
    headers: { ...headers, [HEADERS.contentType]: MEDIA_TYPES.json, [HEADERS.cacheControl]: 'no-store' },
    body: JSON.stringify(body),
  };
}

/**
 * Readers woken by one append share one (frozen) result object, so its JSON is built once and the
 * string shared; the cache entry goes when the last answer holding the result does.
 */
const fetchBodies = new WeakMap<TopicFetchResult, string>();

/** The 200 answer to a topic fetch. */
function fetchAnswer(result: TopicFetchResult, waitMs: number | undefined): PollkitResponse {
  const headers: Record<string, string> = {
    [HEADERS.vary]: 'Prefer',
    [HEADERS.contentType]: MEDIA_TYPES.json,
    [HEADERS.cacheControl]: 'no-store',
  };
  if (waitMs !== undefined) headers[HEADERS.preferenceApplied] = `wait=${formatSeconds(waitMs)}`;
  return { status: 200, headers, body: serializeFetch(result) };
}

function serializeFetch(result: TopicFetchResult): string {
  if (!Object.isFrozen(result)) return JSON.stringify(result);
  let body = fetchBodies.get(result);
  if (body === undefined) {
    body = JSON.stringify(result);
    fetchBodies.set(result, body);
  }
  return body;
}

function jobNotFound(id: string): PollkitResponse {
  return problemResponse(problem('job-not-found', `No job ${clip(id)} is visible to this caller.`));
}

function topicNotFound(name: string): PollkitResponse {
  return problemResponse(problem('topic-not-found', `No topic ${clip(name)} is visible to this caller.`));
}

function ownerOf(caller: PollkitCaller | undefined): { owner?: string } {
  return caller?.owner === undefined ? {} : { owner: caller.owner };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isResponse(value: unknown): value is PollkitResponse {
  return isPlainObject(value) && typeof value['status'] === 'number' && 'body' in value && 'headers' in value;
}

function isSnapshotOrUndefined(value: JobSnapshot | undefined | PollkitResponse): value is JobSnapshot | undefined {
  return value === undefined || !isResponse(value);
}

function isFetchResult(value: TopicFetchResult | PollkitResponse): value is TopicFetchResult {
  return !isResponse(value);
}

/** The deepest nesting of `[` and `{` in JSON text, outside strings; one linear pass, no recursion. */
function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === 0x5c)
        i++; // backslash: skip the escaped character
      else if (char === 0x22) inString = false;
    } else if (char === 0x22) {
      inString = true;
    } else if (char === 0x5b || char === 0x7b) {
      depth++;
      if (depth > deepest) deepest = depth;
    } else if (char === 0x5d || char === 0x7d) {
      depth--;
    }
  }
  return deepest;
}

/** Milliseconds as decimal seconds without trailing zeros: 25000 → "25", 25312 → "25.312". */
function formatSeconds(ms: number): string {
  return String(Math.round(ms) / 1000);
}

function validatePrefix(prefix: string): string {
  if (typeof prefix !== 'string' || (prefix !== '' && (!prefix.startsWith('/') || prefix.endsWith('/')))) {
    throw new InvalidArgumentError(
      `prefix must be empty or start and not end with "/", got "${String(prefix)}"`,
      'prefix',
    );
  }
  return prefix;
}

function validateBaseUrl(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch (cause) {
    throw new InvalidArgumentError(`baseUrl must be an absolute URL, got "${baseUrl}"`, 'baseUrl', { cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError(`baseUrl must be http or https, got "${baseUrl}"`, 'baseUrl');
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

function positive(value: number, name: string, allowZero: boolean): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new InvalidArgumentError(`${name} must be a finite number >= 0, got ${String(value)}`, name);
  }
  return value;
}
