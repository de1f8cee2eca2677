/**
 * Parsing of `Retry-After` (RFC 9110 §10.2.3) into a delay, for both of its forms. HTTP-dates are
 * parsed by hand rather than with `Date.parse`, which accepts non-dates ("Jan 1" becomes 2001) and
 * reads the zone-less asctime form in the machine's local time zone instead of GMT.
 *
 * @module
 */

const MONTHS = 'janfebmaraprmayjunjulaugsepoctnovdec';
const DAY = '(?:mon|tue|wed|thu|fri|sat|sun)';
const MONTH = '(?<m>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)';
const TIME = '(?<h>\\d\\d):(?<i>\\d\\d):(?<s>\\d\\d)';
// The three forms RFC 9110 §5.6.7 obliges a recipient to accept, in its order: IMF-fixdate
// ("Sun, 06 Nov 1994 08:49:37 GMT"), RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
// ("Sun Nov  6 08:49:37 1994"). Matching is case-insensitive and tolerates runs of spaces, since
// senders are sloppier than the grammar.
const HTTP_DATES = /* @__PURE__ */ [
  `${DAY}, (?<d>\\d\\d?) ${MONTH} (?<y>\\d{4}) ${TIME} (?:gmt|utc)`,
  `(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday), (?<d>\\d\\d?)-${MONTH}-(?<y>\\d\\d) ${TIME} (?:gmt|utc)`,
  `${DAY} ${MONTH} (?<d>\\d\\d?) ${TIME} (?<y>\\d{4})`,
].map((form) => new RegExp(`^${form}$`, 'i'));

function parseHttpDate(value: string, wallNow: number): number {
  const text = value.replace(/\s+/g, ' ');
  for (const form of HTTP_DATES) {
    const parts = form.exec(text)?.groups;
    if (parts === undefined) continue;
    const { d, m, y, h, i, s } = parts as Record<'d' | 'm' | 'y' | 'h' | 'i' | 's', string>;
    const [day, hour, minute, second] = [d, h, i, s].map(Number) as [number, number, number, number];
    let year = Number(y);
    if (y.length === 2) {
      // RFC 9110: a two-digit year that would lie more than 50 years ahead belongs to the past century.
      const currentYear = new Date(wallNow).getUTCFullYear();
      year += Math.floor(currentYear / 100) * 100;
      if (year > currentYear + 50) year -= 100;
    }
    if (day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return Number.NaN;
    const at = Date.UTC(year, MONTHS.indexOf(m.toLowerCase()) / 3, day, hour, minute, Math.min(second, 59));
    // Date.UTC rolls 31 Feb over into March; a date that does not exist is garbage, not a delay.
    return new Date(at).getUTCDate() === day ? at : Number.NaN;
  }
  return Number.NaN;
}

/**
 * Converts a `Retry-After` header value into milliseconds from now: either delay-seconds (`"120"`,
 * decimals tolerated) or an HTTP-date in any of its three forms (always GMT). Returns `undefined` for a
 * missing or unparsable value; a date in the past gives 0.
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
  // A bare number is always delay-seconds, never a year: "2026" means 2026 s.
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = parseHttpDate(trimmed, wallNow);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - wallNow);
}
