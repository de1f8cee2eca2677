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
import type { Abortable, Exchange } from '../server/http/exchange.js';
import type { PollkitHandler } from '../server/http/handler.js';
import {
  type BodyReader,
  type PollkitRequest,
  type PollkitResponse,
  isStreamBody,
  payloadTooLarge,
} from '../server/http/types.js';
import { errorToProblem, problemResponse } from '../server/http/problems.js';
import { DEFAULT_STREAM_LIMITS, type StreamLimits, writeEventStream } from './stream-writer.js';

/** What a framework adapter adds to a request for {@link serveNode}; `pollkit/node` adds nothing. */
export interface NodeServeOptions<Context> {
  /** The full request target as the client sent it (before a router stripped a mount path). Default: `req.url`. */
  readonly url?: string;
  /** A body a middleware already parsed, used when the stream has been consumed. */
  readonly parsedBody?: unknown;
  /** The raw text a middleware kept (koa-bodyparser's `rawBody`); preferred over `parsedBody`. */
  readonly rawBody?: string;
  /** The caller's context for `authorize`. */
  readonly context?: Context;
  /** Called once the handler claims the request, before anything is written; frameworks take the response over here. */
  readonly onClaim?: () => void;
}

/**
 * Serves one request with `handler`. Returns false at once, having written nothing, when the request
 * is outside the handler's prefix (the caller passes it on); true when the handler claimed it, and
 * the answer is then written when it exists (for a held long poll, whenever the wait ends).
 *
 * @example
 * ```ts
 * if (!serveNode(handler, res, { url: req.originalUrl })) next();
 * ```
 */
export function serveNode<Context>(
  handler: PollkitHandler<Context>,
  res: ServerResponse,
  options?: NodeServeOptions<Context>,
): boolean {
  const exchange = new NodeExchange(res, options, handler.streamLimits);
  const req = res.req;
  const method = req.method;
  // GET and HEAD bodies are never read. Draining the (empty) stream now rather than letting Node do it
  // when the response finishes moves its end and teardown off the moment one append answers
  // thousands of held polls at once.
  if (method === 'GET' || method === 'HEAD') req.resume();
  if (!handler._serve(exchange as Exchange<Context>)) return false;
  exchange.claim();
  return true;
}

const GET_OR_HEAD = /^(GET|HEAD)$/i;

/** The exchange's own key on its response, for the close listener that every exchange shares. */
const EXCHANGE = Symbol('pollkit.exchange');

interface WithExchange {
  [EXCHANGE]?: NodeExchange<unknown>;
}

/** Flags of {@link NodeExchange}. */
const LISTENING = 1;
const GONE = 2;
const CLAIMED = 4;

/**
 * One request being served: the request as the handler reads it (read through to Node's own objects,
 * not copied), and the way its answer goes back. Nothing is allocated for a hang-up until something
 * can be hung up on: the close listener (one function shared by every exchange) is added only while
 * a request is held or someone asked for its signal, and the `AbortController` behind `signal` only
 * when someone asks for it — a held long poll never does; the adapter aborts it directly.
 */
class NodeExchange<Context> implements Exchange<Context> {
  readonly res: ServerResponse;
  readonly #options: NodeServeOptions<Context> | undefined;
  /** The handler's bounds for event streams (one frozen object shared by every exchange). */
  readonly #limits: StreamLimits;
  #controller: AbortController | undefined = undefined;
  #held: Abortable | undefined = undefined;
  #flags = 0;

  constructor(res: ServerResponse, options: NodeServeOptions<Context> | undefined, limits: StreamLimits) {
    this.res = res;
    this.#options = options;
    this.#limits = limits;
  }

  // --- the request, as PollkitRequest ---------------------------------------------------------------

  get request(): PollkitRequest<Context> {
    return this as unknown as PollkitRequest<Context>;
  }

  get req(): IncomingMessage {
    return this.res.req;
  }

  get url(): string {
    return this.#options?.url ?? this.res.req.url ?? '/';
  }

  get method(): string {
    return this.req.method ?? 'GET';
  }

  get headers(): IncomingMessage['headers'] {
    return this.req.headers;
  }

  get secure(): boolean {
    return (this.req.socket as { encrypted?: boolean }).encrypted === true;
  }

  get remoteAddress(): string | undefined {
    return this.req.socket.remoteAddress;
  }

  get context(): Context | undefined {
    return this.#options?.context;
  }

  get readBody(): BodyReader | undefined {
    return GET_OR_HEAD.test(this.method)
      ? undefined
      : (limitBytes, maxDepth) => readBody(this.req, this.#options, limitBytes, maxDepth);
  }

  /** Made on first use, aborted when the client leaves. */
  get signal(): AbortSignal {
    let controller = this.#controller;
    if (controller === undefined) {
      controller = this.#controller = new AbortController();
      if (this.gone) controller.abort(new AbortedError('The client disconnected'));
      else this.#listen();
    }
    return controller.signal;
  }

  // --- the exchange ---------------------------------------------------------------------------------

  /** The adapter aborts held requests itself, so they need no signal. */
  get hangUpSignal(): undefined {
    return undefined;
  }

  get gone(): boolean {
    if ((this.#flags & GONE) !== 0) return true;
    const { res } = this;
    return res.destroyed && !res.writableFinished;
  }

  get held(): Abortable | undefined {
    return this.#held;
  }

  set held(held: Abortable | undefined) {
    this.#held = held;
    if (held !== undefined) this.#listen();
  }

  /** Hands the response over to the handler (frameworks stop answering it themselves). */
  claim(): void {
    if ((this.#flags & CLAIMED) !== 0) return;
    this.#flags |= CLAIMED;
    try {
      this.#options?.onClaim?.();
    } catch {
      // The framework could not hand the response over; answering anyway is still the right attempt.
    }
  }

  respond(response: PollkitResponse): void {
    this.claim();
    let written: Promise<void> | undefined;
    try {
      written = writeNode(this.res, response, this.#signalFor(response), this.#limits);
    } catch (error) {
      this.#fail(error);
      return;
    }
    if (written === undefined) this.#done();
    else
      written.then(
        () => this.#done(),
        (error: unknown) => this.#fail(error),
      );
  }

  /** The client left before the response finished. */
  hangUp(): void {
    this.#flags |= GONE;
    this.#controller?.abort(new AbortedError('The client disconnected'));
    this.#held?.abort();
  }

  #listen(): void {
    if ((this.#flags & LISTENING) !== 0) return;
    this.#flags |= LISTENING;
    const res = this.res as ServerResponse & WithExchange;
    res[EXCHANGE] = this as NodeExchange<unknown>;
    res.on('close', onResponseClose);
  }

  /**
   * The signal that stops a write: always the client's when it left; otherwise only for streams
   * (whose source is told to stop when the client leaves).
   */
  #signalFor(response: PollkitResponse): AbortSignal | undefined {
    return this.gone || isStreamBody(response.body) ? this.signal : undefined;
  }

  #fail(error: unknown): void {
    const { res } = this;
    if (!res.headersSent && !res.destroyed) {
      const written = writeNode(res, problemResponse(errorToProblem(error).problem));
      if (written !== undefined) {
        written.then(
          () => this.#done(),
          () => this.#done(),
        );
        return;
      }
    } else {
      res.destroy();
    }
    this.#done();
  }

  #done(): void {
    if ((this.#flags & LISTENING) !== 0) this.res.off('close', onResponseClose);
  }
}

/** The close listener of every exchange: `this` is the response. */
function onResponseClose(this: ServerResponse & WithExchange): void {
  // 'close' also fires after a normal end; only an unfinished response means the client left.
  if (this.writableFinished) return;
  this[EXCHANGE]?.hangUp();
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
    const wire = wireOf(response, body);
    // After a 413 the rest of the body was never read; closing is cheaper than draining it. HTTP/2
    // forbids the header and has no such problem.
    if (response.status === 413 && res.req.httpVersionMajor === 1) wire.headers['connection'] = 'close';
    res.writeHead(response.status, wire.headers);
    if (wire.bytes === null) res.end();
    else res.end(wire.bytes);
    return undefined;
  }
  return writeStream(res, response, body, signal, limits ?? DEFAULT_STREAM_LIMITS);
}

/** What `res.writeHead` and `res.end` take for a complete answer. */
interface Wire {
  /** The answer's headers with a `Content-Length` (a known length lets proxies skip chunked framing). */
  readonly headers: Record<string, string | number>;
  readonly bytes: string | Buffer | null;
}

/**
 * A frozen answer is shared by many callers (every reader woken by one append, every poll of one job
 * version): its wire form is made once, so its bytes are encoded and its length counted once too.
 */
const wires = new WeakMap<PollkitResponse, Wire>();

function wireOf(response: PollkitResponse, body: string | null): Wire {
  if (!Object.isFrozen(response)) return toWire(response, body, body);
  let wire = wires.get(response);
  if (wire === undefined) {
    wire = toWire(response, body, body === null ? null : Buffer.from(body));
    wires.set(response, wire);
  }
  return wire;
}

function toWire(response: PollkitResponse, body: string | null, bytes: string | Buffer | null): Wire {
  const headers: Record<string, string | number> = { ...response.headers };
  if (body !== null && headers['content-length'] === undefined) headers['content-length'] = Buffer.byteLength(body);
  return { headers, bytes };
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

function readBody<Context>(
  req: IncomingMessage,
  options: NodeServeOptions<Context> | undefined,
  limitBytes: number,
  maxDepth: number | undefined,
): Promise<string> {
  if (consumed(req)) return Promise.resolve().then(() => preParsed(options, limitBytes, maxDepth));
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
}

/** The body a middleware already parsed, as text again, still subject to the limits. */
function preParsed<Context>(
  options: NodeServeOptions<Context> | undefined,
  limitBytes: number,
  maxDepth: number | undefined,
): string {
  let text: string;
  const parsed = options?.parsedBody;
  if (options?.rawBody !== undefined) text = options.rawBody;
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
