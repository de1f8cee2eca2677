/**
 * The protocol handler as a web-standard `(Request) => Promise<Response>` function, for runtimes and
 * frameworks built on the fetch API: Hono, Bun, Deno, Cloudflare Workers, Next.js route handlers. It
 * only translates: the request's `Headers` are read in place, its `signal` (and a cancelled response
 * stream) ends the held request, and server-sent events are enqueued one chunk per event.
 *
 * @example
 * ```ts
 * import { Hono } from 'hono';
 * import { PollkitHandler, TopicRegistry } from 'pollkit/server';
 * import { createFetchHandler } from 'pollkit/fetch';
 *
 * const pollkit = createFetchHandler(new PollkitHandler({ topics: new TopicRegistry() }));
 * const app = new Hono();
 * app.all('/pollkit/*', (c) => pollkit(c.req.raw));
 * ```
 *
 * @module pollkit/fetch
 */
import { AbortedError } from '../core/errors.js';
import { problem } from '../core/protocol.js';
import type { PollkitHandler } from '../server/http/handler.js';
import { type BodyReader, type PollkitRequest, isStreamBody, payloadTooLarge } from '../server/http/types.js';
import { errorToProblem, problemResponse } from '../server/http/problems.js';

/** Options for {@link createFetchHandler}. */
export interface FetchHandlerOptions<Context> {
  /** Builds the `context` passed to the handler's `authorize` hook. Default: none. */
  readonly context?: (request: Request) => Context;
  /** The peer address, the default key for per-caller limits (e.g. from `CF-Connecting-IP`). Default: none. */
  readonly remoteAddress?: (request: Request) => string | undefined;
  /** Answers requests outside the handler's prefix. Default: a 404 problem. */
  readonly onUnmatched?: (request: Request) => Response | Promise<Response>;
}

/**
 * Wraps a handler as a fetch-API function.
 *
 * @example
 * ```ts
 * import { JobRegistry, PollkitHandler } from 'pollkit/server';
 * import { createFetchHandler } from 'pollkit/fetch';
 *
 * const handle = createFetchHandler(new PollkitHandler({ jobs: new JobRegistry() }));
 * export default { fetch: handle }; // Bun, Deno, Cloudflare Workers
 * ```
 */
export function createFetchHandler<Context = unknown>(
  handler: PollkitHandler<Context>,
  options: FetchHandlerOptions<Context> = {},
): (request: Request) => Promise<Response> {
  // Not an async function, and no signal of its own: a held request keeps only the handler's promise
  // alive, and waits on the request's own signal. A cancelled response stream needs no signal either:
  // returning the stream's iterator ends what it waits on.
  return (request) => {
    let neutral: PollkitRequest<Context>;
    try {
      const remoteAddress = options.remoteAddress?.(request);
      neutral = {
        method: request.method,
        url: request.url,
        headers: request.headers,
        readBody: bodyReader(request),
        signal: request.signal,
        secure: request.url.startsWith('https:'),
        ...(remoteAddress === undefined ? {} : { remoteAddress }),
        ...(options.context === undefined ? {} : { context: options.context(request) }),
      };
    } catch (error) {
      return Promise.resolve(toResponse(problemResponse(errorToProblem(error).problem)));
    }
    return handler
      .handle(neutral)
      .then((response) => {
        if (response === null) {
          if (options.onUnmatched !== undefined) return options.onUnmatched(request);
          return toResponse(problemResponse(problem('not-found', 'Nothing is served here.')));
        }
        return isStreamBody(response.body)
          ? streamResponse(response, response.body, handler.streamLimits.slowReaderTimeoutMs)
          : toResponse(response);
      })
      .then(undefined, (error: unknown) => toResponse(problemResponse(errorToProblem(error).problem)));
  };
}

/** Server-sent events as a `ReadableStream`, one chunk per event, pulled only when the runtime asks. */
function streamResponse(
  response: { readonly status: number; readonly headers: Readonly<Record<string, string>> },
  body: AsyncIterable<string>,
  slowReaderTimeoutMs: number,
): Response {
  const iterator = body[Symbol.asyncIterator]();
  const encoder = new TextEncoder();
  let finished = false;
  // The runtime asks for the next event as soon as it has sent the last one; an event it has not
  // asked past within slowReaderTimeoutMs sits behind a client that stopped reading: evict it.
  let stall: ReturnType<typeof setTimeout> | undefined;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    clearTimeout(stall);
    void iterator.return?.();
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        clearTimeout(stall);
        try {
          const { done, value } = await iterator.next();
          if (done === true) {
            finish();
            controller.close();
          } else {
            controller.enqueue(encoder.encode(value));
            if (slowReaderTimeoutMs > 0 && !finished) {
              stall = setTimeout(() => {
                finish();
                controller.error(new AbortedError('The client stopped reading'));
              }, slowReaderTimeoutMs);
              (stall as { unref?: () => void }).unref?.();
            }
          }
        } catch (error) {
          finish();
          controller.error(error);
        }
      },
      cancel() {
        finish();
      },
    },
    // No read-ahead: one event is produced when the runtime asks for it, so nothing waits in a buffer.
    { highWaterMark: 0 },
  );
  return new Response(stream, { status: response.status, headers: response.headers });
}

function toResponse(response: {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | null | AsyncIterable<string>;
}): Response {
  const body = typeof response.body === 'string' ? response.body : null;
  return new Response(body, { status: response.status, headers: response.headers });
}

function bodyReader(request: Request): BodyReader {
  return async (limitBytes) => {
    const declared = Number(request.headers.get('content-length') ?? Number.NaN);
    if (Number.isFinite(declared) && declared > limitBytes) throw payloadTooLarge(limitBytes);
    if (request.body === null) return '';
    const reader = request.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        if (size > limitBytes) {
          void reader.cancel().catch(() => {});
          throw payloadTooLarge(limitBytes);
        }
        chunks.push(value);
      }
    } finally {
      reader.releaseLock();
    }
    const all = new Uint8Array(size);
    let at = 0;
    for (const chunk of chunks) {
      all.set(chunk, at);
      at += chunk.byteLength;
    }
    return new TextDecoder().decode(all);
  };
}
