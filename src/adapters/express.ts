/**
 * `pollkit/express`: the protocol handler as Express middleware (tested with Express 5). It only translates:
 * the handler's prefix decides which requests are pollkit's (others go to `next()`), a client that
 * hangs up aborts its held request, each server-sent event is flushed past compression middleware,
 * and a body that `express.json()` already parsed is used rather than read again.
 *
 * Express is an optional peer dependency, imported here as types only.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { JobRegistry, PollkitHandler } from 'pollkit/server';
 * import { pollkitExpress } from 'pollkit/express';
 *
 * const app = express();
 * app.use(pollkitExpress(new PollkitHandler({ jobs: new JobRegistry() })));
 * app.listen(8080);
 * ```
 *
 * @module pollkit/express
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { InvalidArgumentError } from '../core/errors.js';
import type { PollkitHandler } from '../server/http/handler.js';
import { serveNode } from './node-io.js';

/** Options for {@link pollkitExpress}. */
export interface ExpressAdapterOptions<Context = unknown> {
  /**
   * Builds the `context` passed to the handler's `authorize` hook, e.g. from `req.user` set by an
   * authentication middleware. Default: none.
   */
  readonly context?: (req: Request, res: Response) => Context;
}

/**
 * Wraps a handler as Express middleware. Mount it anywhere: it routes on the full original URL
 * (`req.originalUrl`), so the handler's `prefix` must be the full path (`/api/pollkit` when mounted
 * with `app.use('/api', …)` and the handler's prefix is meant to live there).
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { PollkitHandler, TopicRegistry } from 'pollkit/server';
 * import { pollkitExpress } from 'pollkit/express';
 *
 * const app = express();
 * app.use(express.json()); // optional: pollkit reuses a parsed body
 * app.use(pollkitExpress(new PollkitHandler({ topics: new TopicRegistry() }), {
 *   context: (req) => ({ user: req.get('x-user') }),
 * }));
 * ```
 */
export function pollkitExpress<Context = unknown>(
  handler: PollkitHandler<Context>,
  options: ExpressAdapterOptions<Context> = {},
): RequestHandler {
  if (handler === null || typeof handler !== 'object' || typeof handler.handle !== 'function') {
    throw new InvalidArgumentError('handler must be a PollkitHandler', 'handler');
  }
  if (options.context !== undefined && typeof options.context !== 'function') {
    throw new InvalidArgumentError('context must be a function', 'context');
  }
  return (req: Request, res: Response, next: NextFunction): void => {
    let context: Context | undefined;
    try {
      context = options.context?.(req, res);
    } catch (error) {
      next(error);
      return;
    }
    const served = serveNode(handler, res, {
      url: req.originalUrl,
      parsedBody: (req as { body?: unknown }).body,
      ...(context === undefined ? {} : { context }),
    });
    if (!served) next();
  };
}
