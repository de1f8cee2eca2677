/**
 * The protocol's URLs for one job or topic, built from the resource URL a user has (the `Location` of
 * a submitted job, a topic's address): the HTTP base, the SSE stream, the WebSocket (`ws:`/`wss:`).
 *
 * @module
 */
import { parseResourceUrl } from './protocol-pollers.js';

/** The URLs of one resource. @internal */
export interface Endpoints {
  /** The origin and prefix (`https://host/pollkit`). */
  readonly baseUrl: string;
  /** The prefix alone (`/pollkit`). */
  readonly prefix: string;
  /** The job id or topic name. */
  readonly name: string;
  /** The resource URL itself, normalised. */
  readonly resource: string;
  /** `resource` + `suffix`, with a query. */
  http(suffix: string, query?: Readonly<Record<string, string | number>>): string;
  /** The same on the WebSocket scheme. */
  ws(suffix: string, query?: Readonly<Record<string, string | number>>): string;
}

/** @internal */
export function endpoints(url: string | URL, kind: 'jobs' | 'topics'): Endpoints {
  const { baseUrl, prefix, name } = parseResourceUrl(url, kind);
  const resource = `${baseUrl}${prefix}/${kind}/${encodeURIComponent(name)}`;
  const http = (suffix: string, query: Readonly<Record<string, string | number>> = {}): string => {
    const search = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)])).toString();
    return `${resource}${suffix}${search === '' ? '' : `?${search}`}`;
  };
  return {
    baseUrl,
    prefix,
    name,
    resource,
    http,
    ws: (suffix, query) => http(suffix, query).replace(/^http/, 'ws'),
  };
}
