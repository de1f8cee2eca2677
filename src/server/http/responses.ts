/**
 * Building answers: JSON bodies, empty answers, and the `wait=` value of `Preference-Applied`.
 *
 * @module
 */
import { HEADERS, MEDIA_TYPES } from '../../core/protocol.js';
import { isStreamBody, type PollkitResponse } from './types.js';

/** The answer for a client that already left; nobody reads it. */
export const CLIENT_GONE: PollkitResponse = Object.freeze({ status: 204, headers: Object.freeze({}), body: null });

/** A JSON answer that no cache may keep. */
export function json(status: number, body: unknown, headers: Record<string, string>): PollkitResponse {
  return {
    status,
    headers: { ...headers, [HEADERS.contentType]: MEDIA_TYPES.json, [HEADERS.cacheControl]: 'no-store' },
    body: JSON.stringify(body),
  };
}

/** A 204 that no cache may keep. */
export function noContent(): PollkitResponse {
  return { status: 204, headers: { [HEADERS.cacheControl]: 'no-store' }, body: null };
}

/** Milliseconds as decimal seconds without trailing zeros: 25000 → "25", 25312 → "25.312". */
export function formatSeconds(ms: number): string {
  return String(Math.round(ms) / 1000);
}

/** Whether a route's intermediate value is already a response (a limit, a hang-up) rather than data. */
export function isResponse(value: unknown): value is PollkitResponse {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { status?: unknown }).status === 'number' &&
    'body' in value &&
    'headers' in value
  );
}

/** The answer to `HEAD`: `GET`'s status and headers, no body (a stream is ended at once, releasing its slot). */
export function withoutBody(response: PollkitResponse): PollkitResponse {
  const { body } = response;
  if (isStreamBody(body)) void body[Symbol.asyncIterator]().return?.();
  return body === null ? response : { status: response.status, headers: response.headers, body: null };
}
