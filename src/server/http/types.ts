/**
 * The plain request and response that the protocol handler speaks. Adapters translate a framework's
 * request into a {@link PollkitRequest} and a {@link PollkitResponse} back into the framework's reply;
 * nothing else crosses that line, so the protocol is written and tested once.
 *
 * The request is deliberately not a web `Request`: a held long poll lives for up to 30 s, and ten
 * thousand of them held at once multiply every byte of per-request state. `bench/held-request-shape.ts`
 * measures the two shapes: on Node 20 a web `Request` with its `Headers` copy and `AbortController`
 * keeps about 3.5 KB per held request, the plain object over the framework's own header record about
 * 1.1 KB (0.31×; 34 MiB against 11 MiB per 10 000 held). A web `Request` still fits where a runtime
 * hands one over anyway, because its `Headers` has `get()`.
 *
 * @module
 */
import { PollkitError } from '../../core/errors.js';

/**
 * Request headers as either a web `Headers`-like object or a plain record with lowercase names
 * (Node's `req.headers`), so adapters can pass what they already hold without copying.
 *
 * @example
 * ```ts
 * import type { RequestHeaders } from 'pollkit/server';
 * const fromRecord: RequestHeaders = { 'if-none-match': '"7"' };
 * const fromFetch: RequestHeaders = new Headers({ 'if-none-match': '"7"' });
 * ```
 */
export type RequestHeaders = HeaderGetter | Readonly<Record<string, string | readonly string[] | undefined>>;

/** The `Headers`-like shape of {@link RequestHeaders}. */
export interface HeaderGetter {
  /** The header's value, `null` or `undefined` when absent. */
  get(name: string): string | null | undefined;
}

/**
 * Reads the whole request body as UTF-8 text, rejecting with a {@link PollkitError} of code
 * `payload-too-large` as soon as more than `limitBytes` bytes arrive (or `Content-Length` announces
 * them), so an oversized body is never buffered. `maxDepth` is the handler's `maxJsonDepth`: a reader
 * that hands back a body a framework already parsed checks it before turning it into text again
 * (serializing a value nested thousands deep is costly, and fails).
 *
 * @example
 * ```ts
 * import type { BodyReader } from 'pollkit/server';
 * const readBody: BodyReader = async () => '{"type":"echo","input":1}';
 * ```
 */
export type BodyReader = (limitBytes: number, maxDepth?: number) => Promise<string>;

/**
 * One HTTP request as the protocol handler sees it.
 *
 * @example
 * ```ts
 * import type { PollkitRequest } from 'pollkit/server';
 * const request: PollkitRequest = {
 *   method: 'GET',
 *   url: '/pollkit/jobs/3f1c?version=7&wait=25',
 *   headers: {},
 *   signal: new AbortController().signal,
 * };
 * ```
 */
export interface PollkitRequest<Context = unknown> {
  /** The HTTP method, any case. */
  readonly method: string;
  /** The request target: a path with its query (`/pollkit/jobs?status=running`) or an absolute URL. */
  readonly url: string;
  /** The request headers. */
  readonly headers: RequestHeaders;
  /** Reads the body; absent when the request has none. */
  readonly readBody?: BodyReader;
  /** Aborts when the client disconnects; ends held requests and streams at once. */
  readonly signal: AbortSignal;
  /** True when the request arrived over TLS; used to build absolute URLs when no `baseUrl` is set. */
  readonly secure?: boolean;
  /** The peer's address, the default key for per-caller limits. */
  readonly remoteAddress?: string;
  /** Whatever the adapter's caller attached (a session, a user); passed to `authorize`. */
  readonly context?: Context;
}

/**
 * A response body: nothing, a complete string, or a stream of UTF-8 chunks (server-sent events) that
 * the adapter writes and flushes one by one, calling `return()` on the iterator if the client leaves.
 */
export type PollkitResponseBody = string | AsyncIterable<string> | null;

/**
 * One HTTP response as the protocol handler produces it. Header names are lowercase.
 *
 * @example
 * ```ts
 * import type { PollkitResponse } from 'pollkit/server';
 * const notModified: PollkitResponse = { status: 304, headers: { etag: '"7"' }, body: null };
 * ```
 */
export interface PollkitResponse {
  /** The HTTP status code. */
  readonly status: number;
  /** Response headers with lowercase names. */
  readonly headers: Readonly<Record<string, string>>;
  /** The body; a stream for server-sent events. */
  readonly body: PollkitResponseBody;
}

/**
 * True when `body` is a chunk stream rather than a string or nothing.
 *
 * @example
 * ```ts
 * import { isStreamBody } from 'pollkit/server';
 * console.log(isStreamBody('{}'), isStreamBody(null)); // false false
 * ```
 */
export function isStreamBody(body: PollkitResponseBody): body is AsyncIterable<string> {
  return body !== null && typeof body === 'object' && Symbol.asyncIterator in body;
}

/**
 * The error a {@link BodyReader} rejects with when the body exceeds its limit (`code:
 * "payload-too-large"`, answered with 413).
 *
 * @example
 * ```ts
 * import { payloadTooLarge } from 'pollkit/server';
 * throw payloadTooLarge(102_400);
 * ```
 */
export function payloadTooLarge(limitBytes: number): PollkitError {
  return new PollkitError(`The request body exceeds the limit of ${limitBytes} bytes`, 'payload-too-large');
}

/**
 * Looks up one header in either shape of {@link RequestHeaders}; repeated headers are joined with
 * `", "` as HTTP allows for list-valued fields.
 *
 * @example
 * ```ts
 * import { getHeader } from 'pollkit/server';
 * console.log(getHeader({ prefer: 'wait=5' }, 'prefer')); // "wait=5"
 * ```
 */
export function getHeader(headers: RequestHeaders, name: string): string | undefined {
  // A record could hold a header literally named "get"; only a function counts as the Headers shape.
  const get = (headers as { get?: unknown }).get;
  if (typeof get === 'function') {
    const value = (get as (n: string) => string | null | undefined).call(headers, name);
    return value ?? undefined;
  }
  const value = (headers as Readonly<Record<string, string | readonly string[] | undefined>>)[name];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.join(', ');
}

/**
 * The bounds adapters write server-sent event streams under (`PollkitHandler.streamLimits`, from the
 * handler's options of the same names).
 *
 * @example
 * ```ts
 * import type { StreamLimits } from 'pollkit/server';
 * const limits: StreamLimits = { maxUnsentBytes: 262_144, slowReaderTimeoutMs: 30_000 };
 * ```
 */
export interface StreamLimits {
  /** Unsent bytes above which a stream stops pulling events and its client's slow-reader clock runs. */
  readonly maxUnsentBytes: number;
  /** How long a client above the bound may take to drain before it is evicted, in ms; 0: forever. */
  readonly slowReaderTimeoutMs: number;
}
