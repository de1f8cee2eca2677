/**
 * The protocol's routes: a request target split into path and query, the path matched to a resource,
 * and the methods each resource allows.
 *
 * @module
 */
import { InvalidArgumentError } from '../../core/errors.js';

/** A request target split into its path and query. */
export interface Target {
  readonly path: string;
  readonly query: URLSearchParams;
}

/** A matched route, relative to the handler's prefix. */
export type Route =
  | { readonly kind: 'jobs' }
  | { readonly kind: 'job'; readonly id: string }
  | { readonly kind: 'job-cancel'; readonly id: string }
  | { readonly kind: 'job-events'; readonly id: string }
  | { readonly kind: 'topic'; readonly topic: string }
  | { readonly kind: 'topic-records'; readonly topic: string }
  | { readonly kind: 'topic-events'; readonly topic: string };

/** The methods each route allows, as sent in `Allow`. */
export const ALLOWED: Readonly<Record<Route['kind'], readonly string[]>> = {
  jobs: ['GET', 'POST'],
  job: ['GET', 'DELETE'],
  'job-cancel': ['POST'],
  'job-events': ['GET'],
  topic: ['DELETE'],
  'topic-records': ['GET', 'POST'],
  'topic-events': ['GET'],
};

/** Every method a route answers: its own, `HEAD` wherever `GET` is allowed, and `OPTIONS`. */
export function methodsFor(kind: Route['kind']): readonly string[] {
  const own = ALLOWED[kind];
  return [...own, ...(own.includes('GET') ? ['HEAD'] : []), 'OPTIONS'];
}

const MAX_ID_LENGTH = 256;

/** Splits an origin-form or absolute-form target; throws on a malformed absolute URL. */
export function parseTarget(url: string): Target {
  let pathAndQuery = url;
  if (!url.startsWith('/')) {
    // Absolute-form targets (proxies, fetch) carry an origin we do not route on.
    const parsed = new URL(url);
    pathAndQuery = `${parsed.pathname}${parsed.search}`;
  }
  const hash = pathAndQuery.indexOf('#');
  if (hash >= 0) pathAndQuery = pathAndQuery.slice(0, hash);
  const mark = pathAndQuery.indexOf('?');
  const path = mark < 0 ? pathAndQuery : pathAndQuery.slice(0, mark);
  const query = new URLSearchParams(mark < 0 ? '' : pathAndQuery.slice(mark + 1));
  return { path, query };
}

/** Matches a path below the prefix to a route; `undefined` when nothing is served there. */
export function parseRoute(rest: string): Route | undefined {
  if (!rest.startsWith('/')) return undefined;
  const raw = rest.slice(1).split('/');
  const segments: string[] = [];
  for (const segment of raw) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      throw new InvalidArgumentError('The path holds a malformed percent-encoding', 'path');
    }
    if (decoded === '' || decoded.length > MAX_ID_LENGTH) return undefined;
    segments.push(decoded);
  }
  const [collection, name, action] = segments;
  if (collection === 'jobs') {
    if (segments.length === 1) return { kind: 'jobs' };
    if (name === undefined) return undefined;
    if (segments.length === 2) {
      const cancel = name.endsWith(':cancel') ? name.slice(0, -':cancel'.length) : undefined;
      return cancel === undefined
        ? { kind: 'job', id: name }
        : cancel === ''
          ? undefined
          : { kind: 'job-cancel', id: cancel };
    }
    if (segments.length === 3 && action === 'cancel') return { kind: 'job-cancel', id: name };
    if (segments.length === 3 && action === 'events') return { kind: 'job-events', id: name };
    return undefined;
  }
  if (collection === 'topics' && name !== undefined && segments.length === 2) return { kind: 'topic', topic: name };
  if (collection === 'topics' && name !== undefined && segments.length === 3) {
    if (action === 'records') return { kind: 'topic-records', topic: name };
    if (action === 'events') return { kind: 'topic-events', topic: name };
  }
  return undefined;
}
