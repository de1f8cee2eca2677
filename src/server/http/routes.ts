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

/** The query of every target without one; routes only read queries. */
const NO_QUERY = new URLSearchParams();

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
  if (mark < 0) return { path: pathAndQuery, query: NO_QUERY };
  return { path: pathAndQuery.slice(0, mark), query: new URLSearchParams(pathAndQuery.slice(mark + 1)) };
}

/** Matches a path below the prefix to a route; `undefined` when nothing is served there. */
export function parseRoute(rest: string): Route | undefined {
  if (!rest.startsWith('/')) return undefined;
  const segments = rest.slice(1).split('/');
  for (let i = 0; i < segments.length; i++) {
    let segment = segments[i]!;
    // decodeURIComponent costs about half a microsecond even when there is nothing to decode.
    if (segment.includes('%')) {
      try {
        segment = decodeURIComponent(segment);
      } catch {
        throw new InvalidArgumentError('The path holds a malformed percent-encoding', 'path');
      }
      segments[i] = segment;
    }
    if (segment === '' || segment.length > MAX_ID_LENGTH) return undefined;
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
