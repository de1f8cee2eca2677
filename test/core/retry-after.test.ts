import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRetryAfter } from '../../src/core/retry-after.js';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0); // Thu, 01 Jan 2026 12:00:00 GMT

describe('parseRetryAfter()', () => {
  it.each([
    ['0', 0],
    ['5', 5000],
    ['120', 120_000],
    ['  7  ', 7000],
    ['1.5', 1500],
    ['0.25', 250],
    ['0.0004', 0],
    ['86400', 86_400_000],
  ])('reads delay-seconds %j as %i ms', (value, expected) => {
    expect(parseRetryAfter(value, NOW)).toBe(expected);
  });

  it('reads a bare year as seconds, not as a date', () => {
    // Date.parse('2026') is 1 Jan 2026; as a Retry-After it means 2026 seconds.
    expect(parseRetryAfter('2026', NOW)).toBe(2_026_000);
    expect(parseRetryAfter('1994', NOW)).toBe(1_994_000);
  });

  it('reads an IMF-fixdate relative to the injected wall clock', () => {
    expect(parseRetryAfter('Thu, 01 Jan 2026 12:00:30 GMT', NOW)).toBe(30_000);
    expect(parseRetryAfter('Fri, 02 Jan 2026 12:00:00 GMT', NOW)).toBe(86_400_000);
    expect(parseRetryAfter('Wed, 21 Oct 2026 07:28:00 GMT', Date.UTC(2026, 9, 21, 7, 27, 0))).toBe(60_000);
  });

  it('gives 0 for a date in the past', () => {
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', NOW)).toBe(0);
    expect(parseRetryAfter('Thu, 01 Jan 2026 11:59:59 GMT', NOW)).toBe(0);
  });

  it('reads the obsolete RFC 850 form, placing two-digit years within 50 years of now', () => {
    expect(parseRetryAfter('Thursday, 01-Jan-26 12:01:00 GMT', NOW)).toBe(60_000);
    // "94" is 1994, not 2094 (more than 50 years ahead of 2026).
    expect(parseRetryAfter('Sunday, 06-Nov-94 08:49:37 GMT', NOW)).toBe(0);
    // "70" is 2070 (44 years ahead), not 1970.
    expect(parseRetryAfter('Tuesday, 01-Jan-70 12:00:00 GMT', NOW)).toBe(Date.UTC(2070, 0, 1, 12) - NOW);
  });

  it('reads the asctime form as GMT whatever the local time zone', () => {
    // Date.parse reads this zone-less form in local time; HTTP-dates are always GMT.
    expect(parseRetryAfter('Thu Jan  1 12:00:10 2026', NOW)).toBe(10_000);
    expect(parseRetryAfter('Thu Jan 1 12:00:10 2026', NOW)).toBe(10_000);
  });

  it('is lenient about case and spacing', () => {
    expect(parseRetryAfter('thu, 01 jan 2026 12:00:30 gmt', NOW)).toBe(30_000);
    expect(parseRetryAfter('Thu,  01 Jan 2026  12:00:30 GMT', NOW)).toBe(30_000);
  });

  it.each([
    [null],
    [undefined],
    [''],
    ['   '],
    ['soon'],
    ['-5'],
    ['+5'],
    ['1e3'],
    ['5s'],
    ['5 seconds'],
    ['.5'],
    ['5.'],
    ['Infinity'],
    ['NaN'],
    ['0x10'],
    ['Jan 1'], // Date.parse calls this 1 Jan 2001
    ['2026-01-01T12:00:30Z'], // ISO 8601 is not an HTTP-date
    ['Thu, 01 Jan 2026 12:00:30'], // no zone
    ['Thu, 01 Jan 2026 12:00:30 +0100'],
    ['Thu, 32 Jan 2026 12:00:30 GMT'],
    ['Mon, 30 Feb 2026 12:00:30 GMT'],
    ['Thu, 01 Foo 2026 12:00:30 GMT'],
    ['Thu, 01 Jan 2026 25:00:00 GMT'],
    ['Thu, 01 Jan 2026 12:61:00 GMT'],
  ])('returns undefined for %j', (value) => {
    expect(parseRetryAfter(value, NOW)).toBeUndefined();
  });
});

// Property tests over the whole input space; seeded so that a failure reproduces.
const params = { seed: 20_260_101, numRuns: 300 };

describe('properties', () => {
  it('parseRetryAfter inverts Date#toUTCString (IMF-fixdate) for any instant', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(1970, 0, 1), max: Date.UTC(2200, 0, 1) }),
        fc.integer({ min: Date.UTC(1970, 0, 1), max: Date.UTC(2200, 0, 1) }),
        (at, now) => {
          const whole = Math.floor(at / 1000) * 1000;
          expect(parseRetryAfter(new Date(at).toUTCString(), now)).toBe(Math.max(0, whole - now));
        },
      ),
      params,
    );
  });

  it('parseRetryAfter reads any non-negative integer as seconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), (seconds) => {
        expect(parseRetryAfter(String(seconds), 0)).toBe(seconds * 1000);
      }),
      params,
    );
  });
});
