/**
 * `pollkit/koa`: the protocol handler as Koa middleware (tested with Koa 3). It only translates: requests
 * outside the handler's prefix go to `next()`; pollkit's own are answered on the raw response with
 * `ctx.respond = false`, so neither Koa's body handling nor compression middleware ever buffers a
 * server-sent event, and a client that hangs up aborts its held request. A body that a body parser
 * already read is reused (its `rawBody` when kept).
 *
 * Koa is an optional peer dependency, imported here as types only.
 *
 * @example
 * ```ts
 * import Koa from 'koa';
 * import { JobRegistry, PollkitHandler } from 'pollkit/server';
 * import { pollkitKoa } from 'pollkit/koa';
 *
 * const app = new Koa();
 * app.use(pollkitKoa(new PollkitHandler({ jobs: new JobRegistry() })));
 * app.listen(8080);
 * ```
 *
 * @module pollkit/koa
 */
import type { Context as KoaContext, Middleware, Next } from 'koa';
import { InvalidArgumentError } from '../core/errors.js';
import type { PollkitHandler } from '../server/http/handler.js';
import { serveNode } from './node-io.js';

/** Options for {@link pollkitKoa}. */
export interface KoaAdapterOptions<Context = unknown> {
  /**
   * Builds the `context` passed to the handler's `authorize` hook, e.g. from `ctx.state.user`.
   * Default: none.
   */
  readonly context?: (ctx: KoaContext) => Context;
}

/**
 * Wraps a handler as Koa middleware. It routes on `ctx.originalUrl`, so under `koa-mount` the
 * handler's `prefix` must be the full path.
 *
 * @example
 * ```ts
 * import Koa from 'koa';
 * import { PollkitHandler, TopicRegistry } from 'pollkit/server';
 * import { pollkitKoa } from 'pollkit/koa';
 *
 * const app = new Koa();
 * app.use(pollkitKoa(new PollkitHandler({ topics: new TopicRegistry() }), {
 *   context: (ctx) => ({ user: ctx.state['user'] }),
 * }));
 * ```
 */
export function pollkitKoa<Context = unknown>(
  handler: PollkitHandler<Context>,
  options: KoaAdapterOptions<Context> = {},
): Middleware {
  if (handler === null || typeof handler !== 'object' || typeof handler.handle !== 'function') {
    throw new InvalidArgumentError('handler must be a PollkitHandler', 'handler');
  }
  if (options.context !== undefined && typeof options.context !== 'function') {
    throw new InvalidArgumentError('context must be a function', 'context');
  }
  // Not an async function, and resolved as soon as the handler claims the request: a held request
  // keeps no frame or promise of the middleware alive for its whole wait.
  return (ctx: KoaContext, next: Next): Promise<void> => {
    const context = options.context?.(ctx);
    const request = ctx.request as { body?: unknown; rawBody?: unknown };
    const served = serveNode(handler, ctx.res, {
      url: ctx.originalUrl,
      parsedBody: request.body,
      ...(typeof request.rawBody === 'string' ? { rawBody: request.rawBody } : {}),
      ...(context === undefined ? {} : { context }),
      // Koa leaves the response alone from here on, even once this middleware's promise settles.
      onClaim: () => {
        ctx.respond = false;
      },
    });
    return served ? Promise.resolve() : next();
  };
}
