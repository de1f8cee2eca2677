/**
 * `pollkit/fastify`: the protocol handler as a Fastify plugin (tested with Fastify 5). It only translates:
 * it routes everything under the handler's prefix to the handler, takes the raw response over with
 * `reply.hijack()` so server-sent events are written and flushed as they happen (no serializer, no
 * buffering), and aborts a held request when its client hangs up.
 *
 * Inside its own encapsulated context the plugin replaces Fastify's body parsers with one that leaves
 * the stream unread, so the handler applies its own body limit and answers 413 and 415 as problems;
 * routes elsewhere in the application keep their parsers.
 *
 * Fastify is an optional peer dependency, imported here as types only.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * import { JobRegistry, PollkitHandler } from 'pollkit/server';
 * import { pollkitFastify } from 'pollkit/fastify';
 *
 * const app = Fastify();
 * await app.register(pollkitFastify(new PollkitHandler({ jobs: new JobRegistry() })));
 * await app.listen({ port: 8080 });
 * ```
 *
 * @module pollkit/fastify
 */
import { METHODS } from 'node:http';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { InvalidArgumentError } from '../core/errors.js';
import type { PollkitHandler } from '../server/http/handler.js';
import { serveNode } from './node-io.js';

/** Options for {@link pollkitFastify}. */
export interface FastifyAdapterOptions<Context = unknown> {
  /**
   * Builds the `context` passed to the handler's `authorize` hook, e.g. from `request.user` set by an
   * authentication hook. Default: none.
   */
  readonly context?: (request: FastifyRequest, reply: FastifyReply) => Context;
}

/**
 * Wraps a handler as a Fastify plugin. When the plugin is registered with a Fastify `prefix`, the
 * handler's own `prefix` must start with it (the handler sees the full URL): register with
 * `{ prefix: '/api' }` a handler whose prefix is `/api/pollkit`.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * import { PollkitHandler, TopicRegistry } from 'pollkit/server';
 * import { pollkitFastify } from 'pollkit/fastify';
 *
 * const app = Fastify();
 * const handler = new PollkitHandler({ topics: new TopicRegistry(), prefix: '/api/pollkit' });
 * await app.register(pollkitFastify(handler), { prefix: '/api' });
 * ```
 */
export function pollkitFastify<Context = unknown>(
  handler: PollkitHandler<Context>,
  options: FastifyAdapterOptions<Context> = {},
): FastifyPluginAsync {
  if (handler === null || typeof handler !== 'object' || typeof handler.handle !== 'function') {
    throw new InvalidArgumentError('handler must be a PollkitHandler', 'handler');
  }
  if (options.context !== undefined && typeof options.context !== 'function') {
    throw new InvalidArgumentError('context must be a function', 'context');
  }
  const plugin = async (instance: FastifyInstance): Promise<void> => {
    const mount = instance.prefix;
    const prefix = handler.prefix;
    if (prefix !== mount && !prefix.startsWith(`${mount}/`)) {
      throw new InvalidArgumentError(
        `The handler's prefix "${prefix}" must start with the plugin's Fastify prefix "${mount}"`,
        'prefix',
      );
    }
    const relative = prefix.slice(mount.length);
    // Leave bodies unread: the handler enforces its own limit and media types and answers as problems.
    instance.removeAllContentTypeParsers();
    instance.addContentTypeParser(
      '*',
      (_request: FastifyRequest, _payload: unknown, done: (error: Error | null) => void) => {
        done(null);
      },
    );
    // Not an async function, and done as soon as the handler claims the request (the response is
    // hijacked then): a held request keeps no frame or promise of the route alive for its whole wait.
    const route = (request: FastifyRequest, reply: FastifyReply): void => {
      const context = options.context?.(request, reply);
      const served = serveNode(handler, reply.raw, {
        url: request.raw.url ?? request.url,
        ...(context === undefined ? {} : { context }),
        onClaim: () => {
          reply.hijack();
        },
      });
      // The routes cover only the prefix, so this is a path the handler itself declines.
      if (!served) reply.callNotFound();
    };
    teachMethods(instance);
    instance.all(`${relative}/*`, route);
    if (relative !== '') instance.all(relative, route);
  };
  return plugin;
}

/**
 * Fastify routes only the methods it knows (GET … QUERY) and answers the others Node parses (PROPFIND,
 * PURGE, SEARCH …) with its own 404, so a client would never learn which methods a pollkit path
 * allows. Teaching Fastify those methods (Fastify 5's `addHttpMethod`; an application-wide list, but
 * one that routes nothing by itself) lets `all()` reach the handler, which answers 405 with `Allow`.
 * CONNECT never reaches a route: Node hands it to the server's `connect` event.
 */
function teachMethods(instance: FastifyInstance): void {
  const add = (instance as { addHttpMethod?: (method: string, options: { hasBody: boolean }) => unknown })
    .addHttpMethod;
  if (typeof add !== 'function') return;
  const known = new Set(instance.supportedMethods);
  for (const method of METHODS) {
    if (method !== 'CONNECT' && !known.has(method)) add.call(instance, method, { hasBody: true });
  }
}
