/**
 * Parsing of `Retry-After` (RFC 9110 §10.2.3) into a delay, for both of its forms. HTTP-dates are
 * parsed by hand rather than with `Date.parse`, which accepts non-dates ("Jan 1" becomes 2001) and
 * reads the zone-less asctime form in the machine's local time zone instead of GMT.
 *
 * @module
 */

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAY = '(?:mon|tue|wed|thu|fri|sat|sun)';
const LONG_DAY = '(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)';
const MONTH = '(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)';
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
// The three forms RFC 9110 §5.6.7 obliges a recipient to accept. Matching is case-insensitive and
// tolerates runs of spaces, since senders are sloppier than the grammar.
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{1,2}) ${MONTH} (\\d{4}) ${TIME} (?:gmt|utc)$`, 'i');
const RFC850_DATE = new RegExp(`^${LONG_DAY}, (\\d{1,2})-${MONTH}-(\\d{2}) ${TIME} (?:gmt|utc)$`, 'i');
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} (\\d{1,2}) ${TIME} (\\d{4})$`, 'i');

function utc(year: number, month: string, day: string, hour: string, minute: string, second: string): number {
  const monthIndex = MONTHS.indexOf(month.toLowerCase());
  const [d, h, m, s] = [Number(day), Number(hour), Number(minute), Number(second)];
  if (d < 1 || d > 31 || h > 23 || m > 59 || s > 60) return Number.NaN;
  const at = Date.UTC(year, monthIndex, d, h, m, Math.min(s, 59));
  // Date.UTC rolls 31 Feb over into March; a date that does not exist is garbage, not a delay.
  return new Date(at).getUTCDate() === d ? at : Number.NaN;
}

function parseHttpDate(value: string, wallNow: number): number {
  const text = value.replace(/\s+/g, ' ');
  let match = IMF_FIXDATE.exec(text);
  if (match !== null) {
    const [, day, month, year, hour, minute, second] = match as unknown as string[];
    return utc(Number(year), month!, day!, hour!, minute!, second!);
  }
  match = RFC850_DATE.exec(text);
  if (match !== null) {
    const [, day, month, shortYear, hour, minute, second] = match as unknown as string[];
    // RFC 9110: a two-digit year that would lie more than 50 years ahead belongs to the past century.
    const currentYear = new Date(wallNow).getUTCFullYear();
    let year = Math.floor(currentYear / 100) * 100 + Number(shortYear);
    if (year > currentYear + 50) year -= 100;
    return utc(year, month!, day!, hour!, minute!, second!);
  }
  match = ASCTIME_DATE.exec(text);
  if (match !== null) {
    const [, month, day, hour, minute, second, year] = match as unknown as string[];
    return utc(Number(year), month!, day!, hour!, minute!, second!);
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
