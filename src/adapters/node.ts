/**
 * `pollkit/node`: the protocol handler as a `(req, res)` listener for `node:http`, `node:https` and
 * anything built on them (Express, Connect, Polka, Next.js custom servers). It only translates, through
 * the same Node request/response code the Express, Fastify and Koa adapters share (`node-io.ts`): the
 * request's own header record is passed through uncopied, a closed response aborts the held request,
 * JSON answers carry a `Content-Length`, and each server-sent event is written as soon as it exists.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { JobRegistry, PollkitHandler } from 'pollkit/server';
 * import { createNodeListener } from 'pollkit/node';
 *
 * const handler = new PollkitHandler({ jobs: new JobRegistry() });
 * createServer(createNodeListener(handler)).listen(8080);
 * ```
 *
 * @module pollkit/node
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { problem } from '../core/protocol.js';
import type { PollkitHandler } from '../server/http/handler.js';
import { problemResponse } from '../server/http/problems.js';
import { serveNode, writeNode } from './node-io.js';

/** Options for {@link createNodeListener}. */
export interface NodeListenerOptions<Context> {
  /** Builds the `context` passed to the handler's `authorize` hook. Default: none. */
  readonly context?: (req: IncomingMessage, res: ServerResponse) => Context;
  /**
   * Answers requests outside the handler's prefix when the listener is not used as middleware (no
   * `next`). Default: a 404 problem.
   */
  readonly onUnmatched?: (req: IncomingMessage, res: ServerResponse) => void;
}

/** A Node request listener that also works as Connect/Express middleware. */
export type NodeListener = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;

/**
 * Wraps a handler as a Node request listener. Requests outside the handler's prefix go to `next` when
 * called as middleware, otherwise to `onUnmatched`.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { PollkitHandler, TopicRegistry } from 'pollkit/server';
 * import { createNodeListener } from 'pollkit/node';
 *
 * const app = express();
 * app.use(createNodeListener(new PollkitHandler({ topics: new TopicRegistry() })));
 * ```
 */
export function createNodeListener<Context = unknown>(
  handler: PollkitHandler<Context>,
  options: NodeListenerOptions<Context> = {},
): NodeListener {
  const { context, onUnmatched } = options;
  const unmatched = (req: IncomingMessage, res: ServerResponse, next: ((error?: unknown) => void) | undefined) => {
    if (next !== undefined) next();
    else if (onUnmatched !== undefined) onUnmatched(req, res);
    else void writeNode(res, problemResponse(problem('not-found', 'Nothing is served here.')));
  };
  return (req, res, next) => {
    let built: Context | undefined;
    try {
      built = context?.(req, res);
    } catch (error) {
      // A listener that throws takes the whole process down; a broken hook is a 500 (or the
      // middleware chain's error handler), never an exit.
      contextFailed(error, res, next);
      return;
    }
    // The URL is the one the client sent: as a plain listener nothing has rewritten it, and as
    // middleware the prefix check is meant against the full path anyway.
    const claimed = serveNode(handler, res, built === undefined ? undefined : { context: built });
    if (!claimed) unmatched(req, res, next);
  };
}

function contextFailed(error: unknown, res: ServerResponse, next: ((error?: unknown) => void) | undefined): void {
  if (next !== undefined) {
    next(error);
    return;
  }
  console.error('pollkit/node: the context hook threw; answering 500:', error);
  void writeNode(res, problemResponse(problem('internal-error', 'The server failed to answer.')));
}
