/**
 * A fetch stand-in for client tests: records every request and answers through a handler, so tests
 * can speak PROTOCOL.md without a server.
 *
 * @module
 */
import type { FetchFunction } from '../../src/client/http.js';
import type { JobSnapshot, Problem } from '../../src/core/protocol.js';

/** One request as the fake saw it. */
export interface SeenRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: Headers;
  readonly body: unknown;
  readonly signal: AbortSignal | undefined;
}

/** Builds a fake fetch from a handler that returns (or resolves to) a Response. */
export function fakeFetch(handler: (request: SeenRequest) => Response | Promise<Response>): FetchFunction & {
  readonly requests: SeenRequest[];
} {
  const requests: SeenRequest[] = [];
  const fetch = async (input: string, init: RequestInit): Promise<Response> => {
    const request: SeenRequest = {
      method: init.method ?? 'GET',
      url: new URL(input),
      headers: new Headers(init.headers),
      body: typeof init.body === 'string' ? (JSON.parse(init.body) as unknown) : undefined,
      signal: init.signal ?? undefined,
    };
    requests.push(request);
    return handler(request);
  };
  return Object.assign(fetch, { requests });
}

/** A JSON response. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

/** A problem+json response. */
export function problemResponse(
  status: number,
  code: string,
  extensions: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Response {
  const body: Problem = {
    type: `urn:pollkit:problem:${code}`,
    title: code,
    status,
    code,
    detail: `${code}!`,
    ...extensions,
  };
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/problem+json', ...headers },
  });
}

/** A job snapshot with sensible defaults. */
export function job(overrides: Partial<JobSnapshot> = {}): JobSnapshot {
  const status = overrides.status ?? 'running';
  return {
    id: 'job-1',
    type: 'test.job',
    status,
    progress: null,
    result: null,
    error: null,
    version: 1,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    startedAt: null,
    finishedAt: null,
    expiresAt: null,
    ...overrides,
    // Always derived, so a spread of an earlier snapshot cannot carry a stale flag.
    done: status === 'succeeded' || status === 'failed' || status === 'canceled',
  };
}

/** A response that never arrives unless the request's signal aborts (a held request). */
export function held(signal: AbortSignal | undefined): Promise<Response> {
  return new Promise((_resolve, reject) => {
    signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}
