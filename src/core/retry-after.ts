/**
 * Parsing of `Retry-After` (RFC 9110 §10.2.3) into a delay, for both of its forms.
 *
 * @module
 */

/**
 * Converts a `Retry-After` header value into milliseconds from now: either delay-seconds (`"120"`,
 * decimals tolerated) or an HTTP-date. Returns `undefined` for a missing or unparsable value; a date in
 * the past gives 0.
 *
 * @param value - the header value.
 * @param wallNow - the current wall-clock time in epoch milliseconds (inject a clock's `wallNow()`).
 *
 * @example
 * ```ts
 * import { parseRetryAfter } from 'pollkit';
 * parseRetryAfter('5', Date.now()); // 5000
 * parseRetryAfter('Wed, 21 Oct 2026 07:28:00 GMT', Date.now());
 * ```
 */
export function parseRetryAfter(value: string | null | undefined, wallNow: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (trimmed === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  // Only the HTTP-date forms: Date.parse alone would accept "1" or "2026" as dates.
  if (!/[a-z]/i.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - wallNow);
}
