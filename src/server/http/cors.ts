/**
 * Cross-origin access for browsers (the Fetch standard's CORS protocol): which origins may call, with
 * or without credentials; the answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`);
 * and the headers every answer to an allowed origin carries, exposing the protocol's response headers
 * (`ETag`, `Location`, `Operation-Location`, `Retry-After`, `Preference-Applied`, …) to the page's
 * script. Without `cors`, a handler sends none of this and browsers keep other origins out.
 *
 * @module
 */
import { InvalidArgumentError } from '../../core/errors.js';
import { HEADERS } from '../../core/protocol.js';
import { getHeader, type PollkitRequest, type PollkitResponse } from './types.js';

/** Options for the handler's `cors`. */
export interface CorsOptions {
  /**
   * Which origins may call: `"*"` for any (never with credentials), a list of exact origins
   * (`https://app.example.com`), or a function deciding per origin. Required.
   */
  readonly origins: '*' | readonly string[] | ((origin: string) => boolean);
  /**
   * Let pages send cookies and HTTP authentication (`credentials: "include"`, `withCredentials`); the
   * request's origin is then echoed rather than `*`. Default `false`.
   */
  readonly credentials?: boolean;
  /** Request headers allowed beyond the protocol's own and `authorization`. Default none. */
  readonly allowHeaders?: readonly string[];
  /** How long a browser may cache a preflight answer, in seconds. Default `600`. */
  readonly maxAgeSeconds?: number;
}

/**
 * The response headers a page's script may read: everything the protocol tells a client.
 *
 * @example
 * ```ts
 * import { EXPOSED_HEADERS } from 'pollkit/server';
 * console.log(EXPOSED_HEADERS.includes('etag')); // true
 * ```
 */
export const EXPOSED_HEADERS: readonly string[] = [
  HEADERS.etag,
  HEADERS.location,
  HEADERS.operationLocation,
  HEADERS.retryAfter,
  HEADERS.preferenceApplied,
  HEADERS.pollInterval,
  HEADERS.expires,
];

/** The request headers the protocol itself uses, always allowed in a preflight. */
const PROTOCOL_REQUEST_HEADERS = [
  HEADERS.ifNoneMatch,
  HEADERS.prefer,
  HEADERS.lastEventId,
  HEADERS.idempotencyKey,
  HEADERS.contentType,
  HEADERS.cacheControl,
  'accept',
  'authorization',
];

/**
 * A validated CORS policy.
 *
 * @example
 * ```ts
 * import { Cors } from 'pollkit/server';
 * const cors = new Cors({ origins: ['https://app.example.com'], credentials: true });
 * console.log(cors.allows('https://app.example.com')); // true
 * ```
 */
export class Cors {
  readonly #origins: CorsOptions['origins'];
  readonly #credentials: boolean;
  readonly #allowHeaders: ReadonlySet<string>;
  readonly #maxAge: string;
  readonly #expose = EXPOSED_HEADERS.join(', ');

  constructor(options: CorsOptions) {
    const origins = options?.origins;
    const list = Array.isArray(origins);
    if (!(origins === '*' || typeof origins === 'function' || (list && origins.every((o) => typeof o === 'string')))) {
      throw new InvalidArgumentError('cors.origins must be "*", a list of origins or a function', 'origins');
    }
    if (options.credentials === true && origins === '*') {
      // Browsers refuse credentials with a wildcard; echoing every origin instead would let any site in.
      throw new InvalidArgumentError('cors.credentials needs explicit origins, not "*"', 'credentials');
    }
    const maxAge = options.maxAgeSeconds ?? 600;
    if (!(Number.isInteger(maxAge) && maxAge >= 0)) {
      throw new InvalidArgumentError(`cors.maxAgeSeconds must be an integer >= 0, got ${maxAge}`, 'maxAgeSeconds');
    }
    this.#origins = list ? origins.map((o) => o.replace(/\/+$/, '')) : origins;
    this.#credentials = options.credentials === true;
    this.#allowHeaders = new Set(
      [...PROTOCOL_REQUEST_HEADERS, ...(options.allowHeaders ?? [])].map((h) => h.toLowerCase()),
    );
    this.#maxAge = String(maxAge);
  }

  /** Whether `origin` may call. */
  allows(origin: string): boolean {
    const origins = this.#origins;
    if (origins === '*') return true;
    return typeof origins === 'function' ? origins(origin) : origins.includes(origin);
  }

  /**
   * The answer to a preflight for a route allowing `methods`, or `undefined` when `request` is not one
   * (no `Origin` or no `Access-Control-Request-Method`). A disallowed origin gets a 204 without CORS
   * headers, which the browser reads as a refusal.
   */
  preflight(request: PollkitRequest<unknown>, methods: readonly string[]): PollkitResponse | undefined {
    const origin = getHeader(request.headers, 'origin');
    const wanted = getHeader(request.headers, 'access-control-request-method');
    if (origin === undefined || wanted === undefined) return undefined;
    const headers: Record<string, string> = {
      vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
      allow: methods.join(', '),
    };
    if (this.allows(origin)) {
      Object.assign(headers, this.#originHeaders(origin));
      headers['access-control-allow-methods'] = methods.join(', ');
      const asked = (getHeader(request.headers, 'access-control-request-headers') ?? '')
        .split(',')
        .map((h) => h.trim().toLowerCase())
        .filter((h) => h !== '');
      // Only headers we know are granted: an unknown one fails the preflight, as it should.
      const granted = asked.filter((h) => this.#allowHeaders.has(h));
      if (granted.length > 0) headers['access-control-allow-headers'] = granted.join(', ');
      headers['access-control-max-age'] = this.#maxAge;
    }
    return { status: 204, headers, body: null };
  }

  /** `response` with the CORS headers an answer to `request`'s origin needs (unchanged without one). */
  decorate(request: PollkitRequest<unknown>, response: PollkitResponse): PollkitResponse {
    const origin = getHeader(request.headers, 'origin');
    const vary = response.headers[HEADERS.vary];
    const headers: Record<string, string> = {
      ...response.headers,
      // Caches must not serve one origin's answer to another.
      [HEADERS.vary]: vary === undefined ? 'Origin' : `${vary}, Origin`,
    };
    if (origin !== undefined && this.allows(origin) && headers['access-control-allow-origin'] === undefined) {
      Object.assign(headers, this.#originHeaders(origin));
      headers['access-control-expose-headers'] = this.#expose;
    }
    return { status: response.status, headers, body: response.body };
  }

  #originHeaders(origin: string): Record<string, string> {
    return this.#origins === '*'
      ? { 'access-control-allow-origin': '*' }
      : {
          'access-control-allow-origin': origin,
          ...(this.#credentials ? { 'access-control-allow-credentials': 'true' } : {}),
        };
  }
}
