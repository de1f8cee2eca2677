/**
 * Parsing of `Retry-After` (RFC 9110 §10.2.3) into a delay, for both of its forms. HTTP-dates are
 * parsed by hand rather than with `Date.parse`, which accepts non-dates ("Jan 1" becomes 2001) and
 * reads the zone-less asctime form in the machine's local time zone instead of GMT.
 *
 * @module
 */

const MONTHS = 'janfebmaraprmayjunjulaugsepoctnovdec';
// The three forms RFC 9110 §5.6.7 obliges a recipient to accept, as one literal (a bundler keeps a
// pattern built at load time): IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", groups 1-6), RFC 850
// ("Sunday, 06-Nov-94 08:49:37 GMT", groups 7-12) and asctime ("Sun Nov  6 08:49:37 1994", groups
// 13-18, month first and year last). Matching is case-insensitive and runs of spaces are folded first,
// since senders are sloppier than the grammar. A month is any three letters here; MONTHS vets it.
const HTTP_DATE =
  /^(?:(?:mon|tue|wed|thu|fri|sat|sun), (\d\d?) ([a-z]{3}) (\d{4}) (\d\d):(\d\d):(\d\d) (?:gmt|utc)|(?:mon|tues|wednes|thurs|fri|satur|sun)day, (\d\d?)-([a-z]{3})-(\d\d) (\d\d):(\d\d):(\d\d) (?:gmt|utc)|(?:mon|tue|wed|thu|fri|sat|sun) ([a-z]{3}) (\d\d?) (\d\d):(\d\d):(\d\d) (\d{4}))$/i;

function parseHttpDate(value: string, wallNow: number): number {
  const match = HTTP_DATE.exec(value.replace(/\s+/g, ' '));
  if (match === null) return Number.NaN;
  // Only the matched form's six groups are set.
  type Six = [string, string, string, string, string, string];
  const parts = match.slice(1).filter((part) => part !== undefined) as Six;
  let [d, m, y, h, i, s] = parts;
  if (match[13] !== undefined) [m, d, h, i, s, y] = parts;
  const [day, hour, minute, second] = [d, h, i, s].map(Number) as [number, number, number, number];
  const month = MONTHS.indexOf(m.toLowerCase());
  let year = Number(y);
  if (y.length === 2) {
    // RFC 9110: a two-digit year that would lie more than 50 years ahead belongs to the past century.
    const currentYear = new Date(wallNow).getUTCFullYear();
    year += Math.floor(currentYear / 100) * 100;
    if (year > currentYear + 50) year -= 100;
  }
  if (month % 3 !== 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return Number.NaN;
  const at = Date.UTC(year, month / 3, day, hour, minute, Math.min(second, 59));
  // Date.UTC rolls 31 Feb over into March; a date that does not exist is garbage, not a delay.
  return new Date(at).getUTCDate() === day ? at : Number.NaN;
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
