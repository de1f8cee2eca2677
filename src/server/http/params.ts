/**
 * Strict parsers for the protocol's query parameters and headers. Each one either returns a value or
 * throws an {@link InvalidArgumentError} naming the parameter, which the handler answers with 400, so
 * a malformed request can never reach the registries as a surprising number. Internal to the handler:
 * not exported from `pollkit/server`.
 *
 * @module
 */
import { InvalidArgumentError } from '../../core/errors.js';

const UNSIGNED_INTEGER = /^\d{1,16}$/;
const DECIMAL_SECONDS = /^\d{1,12}(\.\d{1,9})?$/;

/**
 * Parses a non-negative safe integer (no sign, exponent or fraction).
 *
 * @example
 * ```ts
 * import { parseUnsignedInteger } from './params.js';
 * console.log(parseUnsignedInteger('120', 'offset')); // 120
 * ```
 */
export function parseUnsignedInteger(value: string, name: string): number {
  const trimmed = value.trim();
  const number = Number(trimmed);
  if (!UNSIGNED_INTEGER.test(trimmed) || !Number.isSafeInteger(number)) {
    throw new InvalidArgumentError(`${name} must be a non-negative integer, got "${clip(value)}"`, name);
  }
  return number;
}

/**
 * Parses a number of seconds (integer or decimal) into milliseconds.
 *
 * @example
 * ```ts
 * import { parseSeconds } from './params.js';
 * console.log(parseSeconds('2.5', 'wait')); // 2500
 * ```
 */
export function parseSeconds(value: string, name: string): number {
  const trimmed = value.trim();
  if (!DECIMAL_SECONDS.test(trimmed)) {
    throw new InvalidArgumentError(`${name} must be a number of seconds, got "${clip(value)}"`, name);
  }
  return Math.round(Number(trimmed) * 1000);
}

/**
 * The value of a query parameter given at most once; a repeated parameter is ambiguous and rejected.
 *
 * @example
 * ```ts
 * import { singleParam } from './params.js';
 * console.log(singleParam(new URLSearchParams('wait=5'), 'wait')); // "5"
 * ```
 */
export function singleParam(query: URLSearchParams, name: string): string | undefined {
  const values = query.getAll(name);
  if (values.length > 1) throw new InvalidArgumentError(`${name} was given ${values.length} times`, name);
  return values[0];
}

/**
 * The `wait` preference of an RFC 7240 `Prefer` header in milliseconds, or `undefined` when the header
 * states none. Other preferences are ignored, as the RFC asks.
 *
 * @example
 * ```ts
 * import { parsePreferWait } from './params.js';
 * console.log(parsePreferWait('respond-async, wait=10')); // 10000
 * ```
 */
export function parsePreferWait(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  let waitMs: number | undefined;
  for (const preference of header.split(',')) {
    const [token = ''] = preference.split(';');
    const equals = token.indexOf('=');
    const name = (equals < 0 ? token : token.slice(0, equals)).trim().toLowerCase();
    if (name !== 'wait') continue;
    if (equals < 0) throw new InvalidArgumentError('Prefer: wait needs a value in seconds', 'Prefer');
    let value = token.slice(equals + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    const ms = parseSeconds(value, 'Prefer');
    // RFC 7240 leaves repeated preferences to the server; the shortest wait is the safe reading.
    waitMs = waitMs === undefined ? ms : Math.min(waitMs, ms);
  }
  return waitMs;
}

/** A parsed `If-None-Match`: `*` or the list of entity tags (opaque values without quotes or `W/`). */
export type IfNoneMatch = '*' | readonly string[];

const ENTITY_TAG = /^(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"$/;

/**
 * Parses an `If-None-Match` header (RFC 9110 §13.1.2); weak and strong tags compare alike, as the
 * RFC's weak comparison for this header requires.
 *
 * @example
 * ```ts
 * import { parseIfNoneMatch } from './params.js';
 * console.log(parseIfNoneMatch('"6", W/"7"')); // ["6", "7"]
 * ```
 */
export function parseIfNoneMatch(header: string | undefined): IfNoneMatch | undefined {
  if (header === undefined) return undefined;
  const trimmed = header.trim();
  if (trimmed === '*') return '*';
  const tags: string[] = [];
  for (const part of trimmed.split(',')) {
    const candidate = part.trim();
    if (candidate === '') continue;
    const match = ENTITY_TAG.exec(candidate);
    if (match === null) {
      throw new InvalidArgumentError(
        `If-None-Match must be a list of quoted entity tags, got "${clip(header)}"`,
        'If-None-Match',
      );
    }
    tags.push(match[2]!);
  }
  if (tags.length === 0) throw new InvalidArgumentError('If-None-Match is empty', 'If-None-Match');
  return tags;
}

/**
 * True when a job at `version` matches the parsed `If-None-Match`.
 *
 * @example
 * ```ts
 * import { matchesVersion } from './params.js';
 * console.log(matchesVersion(['7'], 7)); // true
 * ```
 */
export function matchesVersion(condition: IfNoneMatch, version: number): boolean {
  return condition === '*' || condition.includes(String(version));
}

/**
 * Shortens client-supplied text before it is quoted back in an error detail.
 *
 * @example
 * ```ts
 * import { clip } from './params.js';
 * console.log(clip('x'.repeat(100)).length); // 41
 * ```
 */
export function clip(text: string, max = 40): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
