/**
 * The Node request/response translation that the Express, Fastify and Koa adapters share (internal, not
 * a public subpath). It differs from `pollkit/node`'s listener in what frameworks need: the URL comes
 * from the framework (a mounted router rewrites `req.url`), a body-parsing middleware may already have
 * consumed the stream, and compression middleware buffers writes unless each one is flushed.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AbortedError, InvalidArgumentError } from '../core/errors.js';
import type { PollkitHandler } from '../server/http/handler.js';
import {
  type BodyReader,
  type PollkitRequest,
  type PollkitResponse,
  isStreamBody,
  payloadTooLarge,
} from '../server/http/types.js';
import { errorToProblem, problemResponse } from '../server/http/problems.js';
import { offerController } from '../server/http/request-abort.js';
import { DEFAULT_STREAM_LIMITS, type StreamLimits, writeEventStream } from './stream-writer.js';

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
 * Not an async function, and the per-request state lives in one small object rather than in closures:
 * a server holds thousands of these requests at once, each for as long as its long poll waits.
 *
 * @example
 * ```ts
 * const served = await serveNode(handler, { req, res, url: req.originalUrl });
 * if (!served) next();
 * ```
 */
export function serveNode<Context>(
  handler: PollkitHandler<Context>,
  exchange: NodeExchange<Context>,
): Promise<boolean> {
  const served = new Served(exchange, handler.streamLimits);
  const { req } = exchange;
  const method = req.method ?? 'GET';
  const request: PollkitRequest<Context> = {
    method,
    url: exchange.url,
    headers: req.headers,
    signal: served.controller.signal,
    secure: (req.socket as { encrypted?: boolean }).encrypted === true,
  };
  // GET and HEAD bodies are never read, so a held poll does not carry a reader for one. Draining the
  // (empty) stream now rather than letting Node do it when the response finishes moves its end and
  // teardown off the moment one append answers thousands of held polls at once.
  if (method !== 'GET' && method !== 'HEAD') (request as { readBody?: BodyReader }).readBody = bodyReader(exchange);
  else req.resume();
  const remoteAddress = req.socket.remoteAddress;
  if (remoteAddress !== undefined) (request as { remoteAddress?: string }).remoteAddress = remoteAddress;
  if (exchange.context !== undefined) (request as { context?: Context }).context = exchange.context;
  // The handler may end a held poll through this controller at shutdown instead of linking a second
  // signal to it; `Served` then still writes the answer, since only a hang-up sets `gone`.
  offerController(request as PollkitRequest<unknown>, served.controller);
  return handler.handle(request).then(
    (response) => served.respond(response),
    (error: unknown) => served.fail(error),
  );
}

/** One request being served: its abort controller and the listener that aborts it on a hang-up. */
class Served {
  readonly exchange: NodeExchange<unknown>;
  readonly controller = new AbortController();
  readonly onClose: () => void;
  readonly limits: StreamLimits;
  /** The client left before the response finished. */
  gone = false;

  constructor(exchange: NodeExchange<unknown>, limits: StreamLimits) {
    this.exchange = exchange;
    this.limits = limits;
    const { res } = exchange;
    this.onClose = () => {
      // 'close' also fires after a normal end; only an unfinished response means the client left.
      if (res.writableFinished) return;
      this.gone = true;
      this.controller.abort(new AbortedError('The client disconnected'));
    };
    res.on('close', this.onClose);
  }

  respond(response: PollkitResponse | null): boolean | Promise<boolean> {
    const { res } = this.exchange;
    if (response === null) {
      res.off('close', this.onClose);
      return false;
    }
    try {
      this.exchange.onClaim?.();
      const written = writeNode(res, response, this.#signalFor(response), this.limits);
      if (written === undefined) {
        res.off('close', this.onClose);
        return true;
      }
      return written.then(
        () => this.#done(),
        (error: unknown) => this.fail(error),
      );
    } catch (error) {
      return this.fail(error);
    }
  }

  fail(error: unknown): boolean | Promise<boolean> {
    const { res } = this.exchange;
    try {
      this.exchange.onClaim?.();
    } catch {
      // The framework could not hand the response over; answering below is still the right attempt.
    }
    if (!res.headersSent && !res.destroyed) {
      const written = writeNode(res, problemResponse(errorToProblem(error).problem), this.#signalFor(null));
      if (written !== undefined)
        return written.then(
          () => this.#done(),
          () => this.#done(),
        );
    } else {
      res.destroy();
    }
    return this.#done();
  }

  /**
   * The signal that stops a write: always the client's when it left; otherwise only for streams, since
   * the handler may have aborted the signal itself to answer a held poll at shutdown.
   */
  #signalFor(response: PollkitResponse | null): AbortSignal | undefined {
    return this.gone || (response !== null && isStreamBody(response.body)) ? this.controller.signal : undefined;
  }

  #done(): true {
    this.exchange.res.off('close', this.onClose);
    return true;
  }
}

/**
 * Writes a handler response to a Node `ServerResponse`, flushing every server-sent event and pausing
 * on back-pressure; ends the stream's source when the client leaves. A JSON answer is written at once
 * (with a `Content-Length`, so no chunked framing) and nothing is returned; a stream returns the
 * promise of its end.
 *
 * @example
 * ```ts
 * await writeNode(res, { status: 204, headers: {}, body: null }, signal);
 * ```
 */
export function writeNode(
  res: ServerResponse,
  response: PollkitResponse,
  signal?: AbortSignal,
  limits?: StreamLimits,
): Promise<void> | undefined {
  const { body } = response;
  if (signal?.aborted === true || res.destroyed) {
    if (isStreamBody(body)) return Promise.resolve(body[Symbol.asyncIterator]().return?.()).then(() => {});
    return undefined;
  }
  if (!isStreamBody(body)) {
    const headers: Record<string, string | number> = { ...response.headers };
    // A known length lets compression and proxies skip chunked framing for small JSON answers.
    if (body !== null && headers['content-length'] === undefined) headers['content-length'] = Buffer.byteLength(body);
    // After a 413 the rest of the body was never read; closing is cheaper than draining it. HTTP/2
    // forbids the header and has no such problem.
    if (response.status === 413 && res.req.httpVersionMajor === 1) headers['connection'] = 'close';
    res.writeHead(response.status, headers);
    res.end(body ?? undefined);
    return undefined;
  }
  return writeStream(res, response, body, signal, limits ?? DEFAULT_STREAM_LIMITS);
}

async function writeStream(
  res: ServerResponse,
  response: PollkitResponse,
  body: AsyncIterable<string>,
  signal: AbortSignal | undefined,
  limits: StreamLimits,
): Promise<void> {
  res.writeHead(response.status, response.headers);
  // Send the headers now: an EventSource reports "open" only once it sees them.
  res.flushHeaders();
  await writeEventStream(res, body, signal, limits);
}

/** True when a middleware already read the request stream to its end. */
function consumed(req: IncomingMessage): boolean {
  return req.readableEnded || (req as { _body?: boolean })._body === true;
}

function bodyReader<Context>(exchange: NodeExchange<Context>): BodyReader {
  const { req } = exchange;
  return (limitBytes, maxDepth) => {
    if (consumed(req)) return Promise.resolve().then(() => preParsed(exchange, limitBytes, maxDepth));
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

/** The body a middleware already parsed, as text again, still subject to the limits. */
function preParsed<Context>(exchange: NodeExchange<Context>, limitBytes: number, maxDepth: number | undefined): string {
  let text: string;
  const parsed = exchange.parsedBody;
  if (exchange.rawBody !== undefined) text = exchange.rawBody;
  else if (parsed === undefined || parsed === null) text = '';
  else if (typeof parsed === 'string') text = parsed;
  else if (Buffer.isBuffer(parsed)) text = parsed.toString('utf8');
  // body-parser leaves `{}` for a request it did not parse; that is no body at all.
  else if (typeof parsed === 'object' && Object.keys(parsed).length === 0 && !Array.isArray(parsed)) text = '';
  else text = reserialize(parsed, maxDepth);
  if (Buffer.byteLength(text) > limitBytes) throw payloadTooLarge(limitBytes);
  return text;
}

/**
 * A parsed body as JSON text again. A body parser with no depth limit (express.json()) hands over
 * values nested thousands deep; `JSON.stringify` recurses through them until the stack runs out,
 * milliseconds per body — so the depth is checked first, without recursion, and a body past it is
 * the client's fault: a 400.
 */
function reserialize(parsed: unknown, maxDepth: number | undefined): string {
  if (maxDepth !== undefined && nestsDeeper(parsed, maxDepth)) {
    throw new InvalidArgumentError(`The body nests deeper than ${maxDepth} levels`, 'body');
  }
  try {
    return JSON.stringify(parsed);
  } catch (error) {
    if (error instanceof RangeError) {
      throw new InvalidArgumentError('The body nests too deeply', 'body', { cause: error });
    }
    throw error;
  }
}

/** Whether arrays and objects in `value` nest deeper than `limit`; an explicit stack, no recursion. */
function nestsDeeper(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (typeof current !== 'object' || current === null) continue;
    if (depth + 1 > limit) return true;
    for (const child of Array.isArray(current) ? current : Object.values(current)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}
