/**
 * Reading a JSON request body within the handler's limits: media type, size, nesting depth, syntax —
 * each refusal a 4xx problem naming what was wrong.
 *
 * @module
 */
import { InvalidArgumentError, PollkitError } from '../../core/errors.js';
import { HEADERS } from '../../core/protocol.js';
import { clip } from './params.js';
import { type PollkitRequest, getHeader } from './types.js';

const JSON_MEDIA = /^(application\/([\w.+-]*\+)?json|text\/plain)\s*(;|$)/i;

/** The limits a body is read under. */
export interface BodyLimits {
  readonly bodyLimitBytes: number;
  readonly maxJsonDepth: number;
}

/**
 * Reads and parses the request's JSON body; rejects with a `PollkitError` for anything a client got wrong.
 *
 * @example
 * ```ts
 * const body = await readJsonBody(request, { bodyLimitBytes: 102_400, maxJsonDepth: 64 });
 * ```
 */
export async function readJsonBody(request: PollkitRequest<unknown>, limits: BodyLimits): Promise<unknown> {
  const contentType = getHeader(request.headers, HEADERS.contentType);
  if (contentType !== undefined && contentType.trim() !== '' && !JSON_MEDIA.test(contentType.trim())) {
    throw new PollkitError(`Content-Type ${clip(contentType)} is not JSON`, 'unsupported-media-type');
  }
  const text = request.readBody === undefined ? '' : await request.readBody(limits.bodyLimitBytes, limits.maxJsonDepth);
  if (text.trim() === '') throw new InvalidArgumentError('The request needs a JSON body', 'body');
  if (jsonDepth(text) > limits.maxJsonDepth) {
    throw new InvalidArgumentError(`The body nests deeper than ${limits.maxJsonDepth} levels`, 'body');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new InvalidArgumentError('The body is not valid JSON', 'body');
  }
}

/** Whether `value` is a JSON object (not an array, not null). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The deepest nesting of `[` and `{` in JSON text, outside strings; one linear pass, no recursion. */
function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === 0x5c)
        i++; // backslash: skip the escaped character
      else if (char === 0x22) inString = false;
    } else if (char === 0x22) {
      inString = true;
    } else if (char === 0x5b || char === 0x7b) {
      depth++;
      if (depth > deepest) deepest = depth;
    } else if (char === 0x5d || char === 0x7d) {
      depth--;
    }
  }
  return deepest;
}
