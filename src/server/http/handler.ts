/**
 * The wire protocol of `PROTOCOL.md` as one framework-free handler: a {@link PollkitRequest} in, a
 * {@link PollkitResponse} out. This module routes, checks methods, asks the `authorize` hook, and turns
 * failures into problems; each resource's routes live in their own module (`job-routes.ts`,
 * `topic-routes.ts`), held requests and streams in `holding.ts`, so each adapter is a few lines of
 * translation and every stack speaks exactly the same protocol.
 *
 * A held request waits in the registries' purgatory as one object, the purgatory's operation, which
 * writes its own answer through the adapter's exchange (`exchange.ts`, `held-polls.ts`); a hang-up
 * aborts it at once. Nothing a client sends is answered with a 5xx; only a bug in the server (reported
 * to `onError`) is.
 *
 * @module
 */
import type { Clock } from '../../core/clock.js';
import { problem } from '../../core/protocol.js';
import type { AuthorizeHook, Call } from './caller.js';
import { HeldRequests } from './holding.js';
import { type HandlerJobs, JobRoutes } from './job-routes.js';
import { clip } from './params.js';
import { Cors, type CorsOptions } from './cors.js';
import { ANSWERED_LATER, DecoratedExchange, type Exchange, PromiseExchange, type RouteOutcome } from './exchange.js';
import { type LoadSample, type LoadSheddingOptions, LoadMonitor } from './pressure.js';
import { problemResponse } from './problems.js';
import { ALLOWED, methodsFor, type Route, type Target, parseRoute, parseTarget } from './routes.js';
import { type HandlerSettings, resolveSettings } from './settings.js';
import type { TopicCacheOptions } from './topic-cache.js';
import { type HandlerTopics, TopicRoutes } from './topic-routes.js';
import type { PollkitRequest, PollkitResponse, StreamLimits } from './types.js';
import { InvalidArgumentError, PollkitError } from '../../core/errors.js';

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
  /**
   * How long shared caches may keep the answers to fetches of public topics (those the `authorize`
   * hook's `isPublicTopic` names; see docs/cdn.md). Default: `{ headMaxAgeSeconds: 2 × maxWaitSeconds,
   * rangeMaxAgeSeconds: 31 536 000 }`.
   */
  readonly topicCache?: TopicCacheOptions;
  /** Time, timers and randomness (wait jitter, heartbeats). Default `systemClock`. */
  readonly clock?: Clock;
  /** How long `close()` lets streams finish their last event before ending them, in ms. Default 5000. */
  readonly closeGraceMs?: number;
  /**
   * Bytes of server-sent events a stream may have written that its client has not taken yet (on the
   * Node adapters: what waits in the response's buffer). Below it, events are written as they come;
   * past it, the stream stops reading its source (the log keeps what the client has not read) and the
   * client has `slowReaderTimeoutMs` to catch up before it is evicted — its stream is cut, and it
   * reconnects with `Last-Event-ID`, losing nothing. Default 262,144 (256 KiB).
   */
  readonly maxUnsentBytes?: number;
  /**
   * How long a stream past `maxUnsentBytes` may wait for its client to drain before the client is
   * evicted, in milliseconds; 0 waits forever. On the fetch adapter, where the runtime owns the socket,
   * how long the runtime may go without asking for the next event. Default 30,000.
   */
  readonly slowReaderTimeoutMs?: number;
  /**
   * Sheds load as `@fastify/under-pressure` does: while the event loop runs late or memory is above a
   * limit (sampled every `sampleIntervalMs`), new requests get 503 `overloaded` with `Retry-After`;
   * held requests are left alone. Default: off.
   */
  readonly loadShedding?: LoadSheddingOptions;
  /** Told about failures that were answered with a 5xx (server bugs) or that ended a stream. */
  readonly onError?: (error: unknown, request: PollkitRequest<Context>) => void;
  /** Lets browsers on other origins call (CORS): allowed origins, credentials, preflight. Default none. */
  readonly cors?: CorsOptions;
}

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
  readonly #settings: HandlerSettings;
  readonly #streamLimits: StreamLimits;
  readonly #held: HeldRequests<Context>;
  readonly #jobs: JobRoutes<Context> | undefined;
  readonly #topics: TopicRoutes<Context> | undefined;
  readonly #authorize: AuthorizeHook<Context> | undefined;
  readonly #load: LoadMonitor | undefined;
  readonly #cors: Cors | undefined;

  constructor(options: PollkitHandlerOptions<Context> = {}) {
    const settings = resolveSettings(options);
    if (options.authorize !== undefined && typeof options.authorize !== 'function') {
      throw new InvalidArgumentError('authorize must be a function', 'authorize');
    }
    this.#settings = settings;
    this.#streamLimits = Object.freeze({
      maxUnsentBytes: settings.maxUnsentBytes,
      slowReaderTimeoutMs: settings.slowReaderTimeoutMs,
    });
    this.#authorize = options.authorize;
    this.#cors = options.cors === undefined ? undefined : new Cors(options.cors);
    this.#held = new HeldRequests(settings, options.onError);
    this.#jobs = options.jobs === undefined ? undefined : new JobRoutes(options.jobs, settings, this.#held);
    this.#topics = options.topics === undefined ? undefined : new TopicRoutes(options.topics, settings, this.#held);
    this.#load = options.loadShedding === undefined ? undefined : new LoadMonitor(options.loadShedding, settings.clock);
  }

  /**
   * The last load sample when `loadShedding` is on (event-loop delay, memory, whether requests are
   * being shed), for metrics; `undefined` when it is off.
   *
   * @example
   * ```ts
   * import { PollkitHandler } from 'pollkit/server';
   * const handler = new PollkitHandler({ loadShedding: { maxEventLoopDelayMs: 200 } });
   * setInterval(() => console.log(handler.load?.eventLoopDelayMs), 10_000).unref();
   * ```
   */
  get load(): LoadSample | undefined {
    return this.#load?.sample;
  }

  /** The path prefix this handler answers under. */
  get prefix(): string {
    return this.#settings.prefix;
  }

  /** How many held requests and SSE streams are open right now. */
  get heldRequests(): number {
    return this.#held.size;
  }

  /**
   * The bounds adapters write server-sent event streams under: `maxUnsentBytes` and
   * `slowReaderTimeoutMs` (see the options).
   *
   * @example
   * ```ts
   * import { PollkitHandler } from 'pollkit/server';
   * console.log(new PollkitHandler().streamLimits); // { maxUnsentBytes: 262144, slowReaderTimeoutMs: 30000 }
   * ```
   */
  get streamLimits(): StreamLimits {
    return this.#streamLimits;
  }

  /** True once `close()` has been called. */
  get closing(): boolean {
    return this.#held.closing;
  }

  /**
   * Answers one request. Resolves with `null` when the path is outside the prefix (so the adapter can
   * pass the request on); never rejects.
   */
  handle(request: PollkitRequest<Context>): Promise<PollkitResponse | null> {
    return new Promise((resolve) => {
      if (!this._serve(new PromiseExchange(request, resolve))) resolve(null);
    });
  }

  /**
   * Answers `exchange` through its `respond`, exactly once, unless its path is outside the prefix:
   * then it returns false at once and answers nothing. Never throws. This is how the adapters call
   * the handler: a held request keeps no promise, frame or closure of the handler's alive.
   *
   * @internal
   */
  _serve(exchange: Exchange<Context>): boolean {
    let target: Target;
    try {
      target = parseTarget(exchange.request.url);
    } catch {
      exchange.respond(
        problemResponse(problem('bad-request', 'The request target is not a valid URL.', { parameter: 'url' })),
      );
      return true;
    }
    const rest = this.#relative(target.path);
    if (rest === undefined) return false;
    // CORS headers and HEAD's missing body apply to every answer, a held poll's included: they are
    // added where the answer goes, by an exchange that wraps the adapter's (only when they apply).
    const cors = this.#cors;
    if (cors !== undefined || exchange.request.method.toUpperCase() === 'HEAD') {
      exchange = new DecoratedExchange(exchange, cors);
    }
    let outcome: RouteOutcome | Promise<RouteOutcome>;
    try {
      outcome = this.#dispatch(exchange, target, rest);
    } catch (error) {
      exchange.respond(this.#held.failure(exchange, error));
      return true;
    }
    if (outcome instanceof Promise) {
      outcome.then(
        (answer) => {
          if (answer !== ANSWERED_LATER) exchange.respond(answer);
        },
        (error: unknown) => exchange.respond(this.#held.failure(exchange, error)),
      );
    } else if (outcome !== ANSWERED_LATER) {
      exchange.respond(outcome);
    }
    return true;
  }

  #dispatch(exchange: Exchange<Context>, target: Target, rest: string): RouteOutcome | Promise<RouteOutcome> {
    if (this.#held.closing) return this.#held.shuttingDown();
    const load = this.#load;
    if (load !== undefined && load.sample.shedding) {
      return problemResponse(
        problem('overloaded', 'The server is under pressure; try again shortly.'),
        load.retryAfterSeconds,
      );
    }
    const route = parseRoute(rest);
    if (route === undefined)
      return problemResponse(problem('not-found', `Nothing is served at ${clip(target.path, 80)}.`));
    const request = exchange.request;
    const asked = request.method.toUpperCase();
    const methods = methodsFor(route.kind);
    if (asked === 'OPTIONS') {
      return (
        this.#cors?.preflight(request, methods) ?? { status: 204, headers: { allow: methods.join(', ') }, body: null }
      );
    }
    // HEAD is GET without the body (the decorated exchange drops it).
    const method = asked === 'HEAD' && ALLOWED[route.kind].includes('GET') ? 'GET' : asked;
    if (!ALLOWED[route.kind].includes(method)) {
      return problemResponse(problem('method-not-allowed', `${clip(method, 20)} is not allowed here.`), undefined, {
        allow: methods.join(', '),
      });
    }
    const authorize = this.#authorize;
    if (authorize === undefined)
      return this.#route(route, method, { exchange, request, query: target.query, caller: undefined });
    return Promise.resolve(authorize(request)).then((caller) =>
      this.#route(route, method, { exchange, request, query: target.query, caller }),
    );
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
    this.#load?.close();
    return this.#held.close();
  }

  /** Every route is an async method, so nothing here throws synchronously once the registry exists. */
  #route(route: Route, method: string, call: Call<Context>): Promise<RouteOutcome> {
    switch (route.kind) {
      case 'jobs': {
        const jobs = this.#requireJobs();
        return method === 'POST' ? jobs.submit(call) : jobs.list(call);
      }
      case 'job': {
        const jobs = this.#requireJobs();
        return method === 'GET' ? jobs.get(route.id, call) : jobs.forget(route.id, call);
      }
      case 'job-cancel':
        return this.#requireJobs().cancel(route.id, call);
      case 'job-events':
        return this.#requireJobs().events(route.id, call);
      case 'topic':
        return this.#requireTopics().delete(route.topic, call);
      case 'topic-records': {
        const topics = this.#requireTopics();
        return method === 'POST' ? topics.append(route.topic, call) : topics.read(route.topic, call);
      }
      case 'topic-events':
        return this.#requireTopics().events(route.topic, call);
    }
  }

  #relative(path: string): string | undefined {
    const prefix = this.#settings.prefix;
    if (prefix === '') return path;
    if (path === prefix) return '';
    return path.startsWith(prefix) && path.charCodeAt(prefix.length) === 47 /* / */
      ? path.slice(prefix.length)
      : undefined;
  }

  #requireJobs(): JobRoutes<Context> {
    if (this.#jobs === undefined) throw new PollkitError('This server has no jobs', 'not-found');
    return this.#jobs;
  }

  #requireTopics(): TopicRoutes<Context> {
    if (this.#topics === undefined) throw new PollkitError('This server has no topics', 'not-found');
    return this.#topics;
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
