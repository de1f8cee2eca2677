/**
 * `pollkit/hono`: the protocol handler mounted on a Hono app, built on the web-standard fetch adapter
 * (`pollkit/fetch`), so it runs wherever Hono runs (Node through `@hono/node-server`, Bun, Deno,
 * Cloudflare Workers). It only translates: requests outside the handler's prefix go to `next()`, the
 * request's `signal` (and a cancelled response stream) ends a held request, and server-sent events are
 * streamed one chunk per event with no read-ahead.
 *
 * Hono is an optional peer dependency, imported here as types only.
 *
 * @example
 * ```ts
 * import { Hono } from 'hono';
 * import { serve } from '@hono/node-server';
 * import { JobRegistry, PollkitHandler } from 'pollkit/server';
 * import { mountPollkit } from 'pollkit/hono';
 *
 * const app = new Hono();
 * mountPollkit(app, new PollkitHandler({ jobs: new JobRegistry() }));
 * serve({ fetch: app.fetch, port: 8080 });
 * ```
 *
 * @module pollkit/hono
 */
import type { Context as HonoContext, MiddlewareHandler } from 'hono';
import { InvalidArgumentError } from '../core/errors.js';
import type { PollkitHandler } from '../server/http/handler.js';
import { createFetchHandler } from './fetch.js';

/** Options for {@link pollkitHono} and {@link mountPollkit}. */
export interface HonoAdapterOptions<Context = unknown> {
  /**
   * Builds the `context` passed to the handler's `authorize` hook, e.g. from `c.get('user')`.
   * Default: none.
   */
  readonly context?: (c: HonoContext) => Context;
  /**
   * The peer address, the default key for per-caller held-request limits. Default: the socket's
   * address under `@hono/node-server` (`c.env.incoming`), otherwise none.
   */
  readonly remoteAddress?: (c: HonoContext) => string | undefined;
}

/** The part of a Hono app {@link mountPollkit} uses; any `Hono` instance fits. */
export interface HonoApp {
  /** Registers handlers for every method on `path`. */
  all(path: string, ...handlers: MiddlewareHandler[]): unknown;
}

/**
 * Wraps a handler as Hono middleware: pollkit answers requests under its prefix and passes the rest
 * to `next()`. Register it on the prefix (`app.use('/pollkit/*', …)`) or globally.
 *
 * @example
 * ```ts
 * import { Hono } from 'hono';
 * import { PollkitHandler, TopicRegistry } from 'pollkit/server';
 * import { pollkitHono } from 'pollkit/hono';
 *
 * const app = new Hono();
 * app.use('/pollkit/*', pollkitHono(new PollkitHandler({ topics: new TopicRegistry() })));
 * ```
 */
export function pollkitHono<Context = unknown>(
  handler: PollkitHandler<Context>,
  options: HonoAdapterOptions<Context> = {},
): MiddlewareHandler {
  if (handler === null || typeof handler !== 'object' || typeof handler.handle !== 'function') {
    throw new InvalidArgumentError('handler must be a PollkitHandler', 'handler');
  }
  if (options.context !== undefined && typeof options.context !== 'function') {
    throw new InvalidArgumentError('context must be a function', 'context');
  }
  if (options.remoteAddress !== undefined && typeof options.remoteAddress !== 'function') {
    throw new InvalidArgumentError('remoteAddress must be a function', 'remoteAddress');
  }
  // The fetch adapter sees only the Request; this finds the Hono context behind it without a copy.
  const contexts = new WeakMap<Request, HonoContext>();
  const unmatched = new Response(null, { status: 404 });
  const contextOf = options.context;
  const addressOf = options.remoteAddress ?? nodeRemoteAddress;
  const fetchHandler = createFetchHandler(handler, {
    ...(contextOf === undefined ? {} : { context: (request: Request) => contextOf(contexts.get(request)!) }),
    remoteAddress: (request) => {
      const c = contexts.get(request);
      return c === undefined ? undefined : addressOf(c);
    },
    onUnmatched: () => unmatched,
  });
  // Not an async function: a held request would keep one more suspended frame alive for its whole wait.
  return (c, next) => {
    const request = c.req.raw;
    contexts.set(request, c);
    return fetchHandler(request).then((response) => (response === unmatched ? next().then(() => undefined) : response));
  };
}

/**
 * Mounts a handler on a Hono app at the handler's prefix.
 *
 * @example
 * ```ts
 * import { Hono } from 'hono';
 * import { JobRegistry, PollkitHandler } from 'pollkit/server';
 * import { mountPollkit } from 'pollkit/hono';
 *
 * const app = mountPollkit(new Hono(), new PollkitHandler({ jobs: new JobRegistry() }));
 * export default app; // Bun, Deno, Cloudflare Workers
 * ```
 */
export function mountPollkit<App extends HonoApp, Context = unknown>(
  app: App,
  handler: PollkitHandler<Context>,
  options: HonoAdapterOptions<Context> = {},
): App {
  const middleware = pollkitHono(handler, options);
  const prefix = handler.prefix;
  app.all(prefix === '' ? '*' : `${prefix}/*`, middleware);
  if (prefix !== '') app.all(prefix, middleware);
  return app;
}

/** The socket address `@hono/node-server` exposes as `c.env.incoming`, read structurally. */
function nodeRemoteAddress(c: HonoContext): string | undefined {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: unknown } } } | undefined;
  const address = env?.incoming?.socket?.remoteAddress;
  return typeof address === 'string' ? address : undefined;
}
