/**
 * The Node request/response translation that the Express, Fastify and Koa adapters share (internal, not
 * a public subpath). It differs from `pollkit/node`'s listener in what frameworks need: the URL comes
 * from the framework (a mounted router rewrites `req.url`), a body-parsing middleware may already have
 * consumed the stream, and compression middleware buffers writes unless each one is flushed.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AbortedError } from '../core/errors.js';
import type { PollkitHandler } from '../server/handler.js';
import {
  type BodyReader,
  type PollkitRequest,
  type PollkitResponse,
  isStreamBody,
  payloadTooLarge,
} from '../server/http-types.js';
import { errorToProblem, problemResponse } from '../server/problems.js';

/** How a framework adapter describes one request to {@link serveNode}. */
export interface NodeExchange<Context> {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The full request target as the client sent it (before any router stripped a mount path). */
  readonly url: string;
  /** A body a middleware already parsed, used when the stream has been consumed. */
  readonly parsedBody?: unknown;
  /** The raw text a middleware kept (koa-bodyparser's `rawBody`); preferred over `parsedBody`. */
  readonly rawBody?: string;
  /** The caller's context for `authorize`. */
  readonly context?: Context;
  /** Called before the handler's answer is written; frameworks take the response over here. */
  readonly onClaim?: () => void;
}

/**
 * Serves one request with `handler`. Resolves with false (having written nothing) when the request is
 * outside the handler's prefix, true once the response has been written or the client has left.
 *
 * @example
 * ```ts
 * const served = await serveNode(handler, { req, res, url: req.originalUrl });
 * if (!served) next();
 * ```
 */
export async function serveNode<Context>(
  handler: PollkitHandler<Context>,
  exchange: NodeExchange<Context>,
): Promise<boolean> {
  const { req, res } = exchange;
  const controller = new AbortController();
  const onClose = (): void => {
    // 'close' also fires after a normal end; only an unfinished response means the client left.
    if (!res.writableFinished) controller.abort(new AbortedError('The client disconnected'));
  };
  res.once('close', onClose);
  try {
    const request: PollkitRequest<Context> = {
      method: req.method ?? 'GET',
      url: exchange.url,
      headers: req.headers,
      readBody: bodyReader(exchange),
      signal: controller.signal,
      secure: (req.socket as { encrypted?: boolean }).encrypted === true,
      ...(req.socket.remoteAddress === undefined ? {} : { remoteAddress: req.socket.remoteAddress }),
      ...(exchange.context === undefined ? {} : { context: exchange.context }),
    };
    const response = await handler.handle(request);
    if (response === null) return false;
    exchange.onClaim?.();
    await writeNode(res, response, controller.signal);
    return true;
  } catch (error) {
    exchange.onClaim?.();
    if (!res.headersSent && !res.destroyed) {
      await writeNode(res, problemResponse(errorToProblem(error).problem), controller.signal).catch(() => {});
    } else {
      res.destroy();
    }
    return true;
  } finally {
    res.off('close', onClose);
  }
}

/** A response that compression middleware wraps exposes `flush()`; calling it pushes each event out. */
interface Flushable {
  flush?: () => void;
}

/**
 * Writes a handler response to a Node `ServerResponse`, flushing every server-sent event and pausing
 * on back-pressure; ends the stream's source when the client leaves.
 *
 * @example
 * ```ts
 * await writeNode(res, { status: 204, headers: {}, body: null }, signal);
 * ```
 */
export async function writeNode(res: ServerResponse, response: PollkitResponse, signal: AbortSignal): Promise<void> {
  const { body } = response;
  if (signal.aborted || res.destroyed) {
    if (isStreamBody(body)) await body[Symbol.asyncIterator]().return?.();
    return;
  }
  if (!isStreamBody(body)) {
    const headers: Record<string, string | number> = { ...response.headers };
    // A known length lets compression and proxies skip chunked framing for small JSON answers.
    if (body !== null && headers['content-length'] === undefined) headers['content-length'] = Buffer.byteLength(body);
    res.writeHead(response.status, headers);
    res.end(body ?? undefined);
    return;
  }
  res.writeHead(response.status, response.headers);
  // Send the headers now: an EventSource reports "open" only once it sees them.
  res.flushHeaders();
  const flush = (res as Flushable).flush;
  const iterator = body[Symbol.asyncIterator]();
  const stop = (): void => {
    void iterator.return?.();
  };
  signal.addEventListener('abort', stop, { once: true });
  try {
    for (;;) {
      const { done, value } = await iterator.next();
      if (done === true || res.destroyed) break;
      const accepted = res.write(value);
      if (typeof flush === 'function') flush.call(res);
      // Waiting for 'drain' keeps a slow reader from growing the socket buffer without bound.
      if (!accepted) await drained(res, signal);
    }
    if (!res.destroyed) res.end();
  } finally {
    signal.removeEventListener('abort', stop);
    await iterator.return?.();
  }
}

function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** True when a middleware already read the request stream to its end. */
function consumed(req: IncomingMessage): boolean {
  return req.readableEnded || (req as { _body?: boolean })._body === true;
}

function bodyReader<Context>(exchange: NodeExchange<Context>): BodyReader {
  const { req } = exchange;
  return (limitBytes) => {
    if (consumed(req)) return Promise.resolve().then(() => preParsed(exchange, limitBytes));
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limitBytes) return Promise.reject(payloadTooLarge(limitBytes));
    return new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const cleanup = (): void => {
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
        req.off('close', onAborted);
      };
      const onData = (chunk: Buffer): void => {
        size += chunk.length;
        if (size > limitBytes) {
          cleanup();
          // Stop reading: the 413 goes out with Connection: close, so the rest is never needed.
          req.pause();
          reject(payloadTooLarge(limitBytes));
          return;
        }
        chunks.push(chunk);
      };
      const onEnd = (): void => {
        cleanup();
        resolve(Buffer.concat(chunks).toString('utf8'));
      };
      const onError = (error: Error): void => {
        cleanup();
        reject(new AbortedError('The request body could not be read', { cause: error }));
      };
      const onAborted = (): void => {
        if (req.complete) return;
        cleanup();
        reject(new AbortedError('The client disconnected while sending the body'));
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onError);
      req.on('close', onAborted);
      req.resume();
    });
  };
}

/** The body a middleware already parsed, as text again, still subject to the limit. */
function preParsed<Context>(exchange: NodeExchange<Context>, limitBytes: number): string {
  let text: string;
  const parsed = exchange.parsedBody;
  if (exchange.rawBody !== undefined) text = exchange.rawBody;
  else if (parsed === undefined || parsed === null) text = '';
  else if (typeof parsed === 'string') text = parsed;
  else if (Buffer.isBuffer(parsed)) text = parsed.toString('utf8');
  // body-parser leaves `{}` for a request it did not parse; that is no body at all.
  else if (typeof parsed === 'object' && Object.keys(parsed).length === 0 && !Array.isArray(parsed)) text = '';
  else text = JSON.stringify(parsed);
  if (Buffer.byteLength(text) > limitBytes) throw payloadTooLarge(limitBytes);
  return text;
}
