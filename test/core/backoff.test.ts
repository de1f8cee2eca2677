import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Backoff,
  backoff,
  type BackoffOptions,
  grpcBackoff,
  type JitterStrategy,
  withHint,
} from '../../src/core/backoff.js';
import { seededRandom, systemClock } from '../../src/core/clock.js';
import { InvalidArgumentError } from '../../src/core/errors.js';

const STRATEGIES: readonly JitterStrategy[] = ['none', 'full', 'equal', 'decorrelated', 'proportional'];

/** The un-jittered exponential curve, written independently of the implementation. */
function curve(attempt: number, initial = 1000, factor = 2, max = 30_000): number {
  let value = initial;
  for (let i = 0; i < attempt && value < max; i++) value *= factor;
  return Math.min(max, value);
}

const constant =
  (value: number): (() => number) =>
  () =>
    value;

// Reductions rather than Math.min(...values): spreading 100k arguments can overflow the stack.
function lowest(values: readonly number[]): number {
  return values.reduce((a, b) => Math.min(a, b), Number.POSITIVE_INFINITY);
}

function highest(values: readonly number[]): number {
  return values.reduce((a, b) => Math.max(a, b), Number.NEGATIVE_INFINITY);
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

describe('backoff()', () => {
  it('fills in the documented defaults', () => {
    expect(backoff().options).toEqual({
      strategy: 'full',
      initial: 1000,
      factor: 2,
      max: 30_000,
      jitter: 0.2,
      flatFor: 0,
    });
    expect(Object.isFrozen(backoff().options)).toBe(true);
  });

  it('holds the curve at initial for flatFor attempts, then grows', () => {
    const policy = backoff({ strategy: 'none', flatFor: 2 });
    const delays = Array.from({ length: 5 }, (_, attempt) => policy.delay(attempt, undefined, constant(0.5)));
    expect(delays).toEqual([1000, 1000, 1000, 2000, 4000]);
  });

  it('"none" follows the curve exactly and stops at the cap', () => {
    const policy = backoff({ strategy: 'none' });
    const delays = Array.from({ length: 8 }, (_, attempt) => policy.delay(attempt, undefined, constant(0.5)));
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });

  it('"none" never consults the random source', () => {
    let draws = 0;
    backoff({ strategy: 'none' }).delay(3, undefined, () => {
      draws++;
      return 0.5;
    });
    expect(draws).toBe(0);
  });

  describe.each(STRATEGIES)('strategy "%s"', (strategy) => {
    const options: BackoffOptions = { strategy, initial: 100, factor: 2, max: 10_000, jitter: 0.25 };
    const policy = backoff(options);

    it('stays within its bounds at every attempt up to 2000, and is never NaN', () => {
      const random = seededRandom(99);
      let previous: number | undefined;
      for (let attempt = 0; attempt < 2000; attempt++) {
        const value = policy.delay(attempt, previous, random);
        const c = curve(attempt, 100, 2, 10_000);
        expect(Number.isFinite(value)).toBe(true);
        switch (strategy) {
          case 'none':
            expect(value).toBe(c);
            break;
          case 'full':
            expect(value).toBeGreaterThanOrEqual(0);
            expect(value).toBeLessThanOrEqual(c);
            break;
          case 'equal':
            expect(value).toBeGreaterThanOrEqual(c / 2);
            expect(value).toBeLessThanOrEqual(c);
            break;
          case 'decorrelated':
            expect(value).toBeGreaterThanOrEqual(100);
            expect(value).toBeLessThanOrEqual(Math.min(10_000, (previous ?? 100) * 3));
            break;
          case 'proportional':
            expect(value).toBeGreaterThanOrEqual(c * 0.75);
            expect(value).toBeLessThanOrEqual(c * 1.25);
            break;
        }
        previous = value;
      }
    });

    it('is a pure function of (attempt, previous, draw)', () => {
      const a = Array.from({ length: 50 }, (_, i) => policy.delay(i, i * 37, seededRandom(5)));
      const b = Array.from({ length: 50 }, (_, i) => policy.delay(i, i * 37, seededRandom(5)));
      expect(a).toEqual(b);
    });

    it('draws at most one random number per delay', () => {
      let draws = 0;
      const counting = (): number => {
        draws++;
        return 0.3;
      };
      for (let attempt = 0; attempt < 20; attempt++) policy.delay(attempt, 500, counting);
      expect(draws).toBeLessThanOrEqual(20);
    });

    it('reproduces the same schedule from the same seed, and a different one from another seed', () => {
      const run = (seed: number): number[] => {
        const schedule = new Backoff(policy, seededRandom(seed));
        return Array.from({ length: 20 }, () => schedule.next());
      };
      expect(run(42)).toEqual(run(42));
      if (strategy !== 'none') expect(run(42)).not.toEqual(run(43));
    });

    it('does not turn edge-case attempts into NaN (initial 0, factor 1, NaN and negative attempts)', () => {
      for (const edge of [
        backoff({ strategy, initial: 0, factor: 2, max: 1000 }),
        backoff({ strategy, initial: 10, factor: 1, max: 1000 }),
      ]) {
        for (const attempt of [0, 1, 1100, Number.MAX_SAFE_INTEGER, Number.POSITIVE_INFINITY, Number.NaN, -3]) {
          const value = edge.delay(attempt, undefined, constant(0.5));
          expect(Number.isNaN(value), `attempt ${attempt}`).toBe(false);
          expect(value).toBeLessThanOrEqual(1000 * 1.25);
        }
      }
    });
  });

  it('treats a NaN or negative attempt as the first', () => {
    const policy = backoff({ strategy: 'none', initial: 100 });
    expect(policy.delay(Number.NaN, undefined, constant(0))).toBe(100);
    expect(policy.delay(-5, undefined, constant(0))).toBe(100);
  });

  it('caps huge attempts at max instead of overflowing', () => {
    const policy = backoff({ strategy: 'none', initial: 1, factor: 10, max: 5000 });
    expect(policy.delay(400, undefined, constant(0))).toBe(5000);
    expect(policy.delay(Number.POSITIVE_INFINITY, undefined, constant(0))).toBe(5000);
  });

  it('maps the random draw onto each strategy as documented', () => {
    const at = (strategy: JitterStrategy, attempt: number, draw: number, previous?: number): number =>
      backoff({ strategy, initial: 100, factor: 2, max: 10_000, jitter: 0.2 }).delay(attempt, previous, constant(draw));
    // curve(3) = 800
    expect(at('full', 3, 0)).toBe(0);
    expect(at('full', 3, 0.5)).toBe(400);
    expect(at('equal', 3, 0)).toBe(400);
    expect(at('equal', 3, 0.5)).toBe(600);
    expect(at('proportional', 3, 0)).toBeCloseTo(640);
    expect(at('proportional', 3, 0.5)).toBeCloseTo(800);
    expect(at('proportional', 3, 0.999_999)).toBeCloseTo(960, 2);
    // decorrelated: uniform in [initial, previous × 3], ignoring the attempt number
    expect(at('decorrelated', 3, 0, 1000)).toBe(100);
    expect(at('decorrelated', 3, 0.5, 1000)).toBe(1550);
    expect(at('decorrelated', 0, 0.5)).toBe(200); // no previous: [100, 300]
    expect(at('decorrelated', 0, 0.5, 9000)).toBe(10_000); // capped
  });

  it('full jitter averages half the curve over 100k draws', () => {
    const policy = backoff({ strategy: 'full', initial: 1000, max: 30_000 });
    const random = seededRandom(2024);
    for (const attempt of [0, 3, 10]) {
      const c = curve(attempt);
      const values = Array.from({ length: 100_000 }, () => policy.delay(attempt, undefined, random));
      expect(mean(values) / c).toBeCloseTo(0.5, 2);
      expect(lowest(values)).toBeLessThan(c * 0.01);
      expect(highest(values)).toBeGreaterThan(c * 0.99);
    }
  });

  it('equal jitter averages three quarters of the curve over 100k draws', () => {
    const policy = backoff({ strategy: 'equal', initial: 1000, max: 30_000 });
    const random = seededRandom(2025);
    for (const attempt of [0, 4, 12]) {
      const c = curve(attempt);
      const values = Array.from({ length: 100_000 }, () => policy.delay(attempt, undefined, random));
      expect(mean(values) / c).toBeCloseTo(0.75, 2);
      expect(lowest(values)).toBeGreaterThanOrEqual(c / 2);
      expect(lowest(values)).toBeLessThan(c * 0.51);
    }
  });

  it('proportional jitter is centred on the curve and fills ±jitter', () => {
    const policy = backoff({ strategy: 'proportional', initial: 1000, factor: 1.5, max: 60_000, jitter: 0.3 });
    const random = seededRandom(7);
    const c = 1000 * 1.5 ** 4;
    const values = Array.from({ length: 100_000 }, () => policy.delay(4, undefined, random));
    expect(mean(values) / c).toBeCloseTo(1, 2);
    expect(lowest(values)).toBeGreaterThanOrEqual(c * 0.7);
    expect(lowest(values)).toBeLessThan(c * 0.71);
    expect(highest(values)).toBeLessThanOrEqual(c * 1.3);
    expect(highest(values)).toBeGreaterThan(c * 1.29);
  });

  it('jitter 0 makes proportional deterministic', () => {
    const policy = backoff({ strategy: 'proportional', initial: 100, jitter: 0 });
    expect(policy.delay(2, undefined, seededRandom(1))).toBe(400);
  });

  it('decorrelated grows from the previous delay and stays under the cap', () => {
    const policy = backoff({ strategy: 'decorrelated', initial: 100, max: 5000 });
    const schedule = new Backoff(policy, constant(0.999));
    const delays = Array.from({ length: 10 }, () => schedule.next());
    // With draws near 1 each delay is almost triple the previous, until the cap holds it.
    expect(delays[0]).toBeCloseTo(300, -1);
    expect(delays[1]).toBeCloseTo(900, -1);
    expect(delays[2]).toBeCloseTo(2700, -2);
    expect(delays[2]).toBeLessThan(2700);
    expect(delays.slice(3).every((delay) => delay === 5000)).toBe(true);
  });

  describe('option validation', () => {
    const invalid: [keyof BackoffOptions, unknown][] = [
      ['initial', -1],
      ['initial', Number.NaN],
      ['initial', Number.POSITIVE_INFINITY],
      ['factor', 0.5],
      ['factor', -2],
      ['factor', Number.NaN],
      ['factor', Number.POSITIVE_INFINITY],
      ['max', 500], // below the default initial of 1000
      ['max', -1],
      ['max', Number.NaN],
      ['max', Number.POSITIVE_INFINITY],
      ['jitter', -0.1],
      ['jitter', 1.5],
      ['jitter', Number.NaN],
      ['jitter', Number.POSITIVE_INFINITY],
      ['flatFor', -1],
      ['flatFor', 1.5],
      ['flatFor', Number.NaN],
      ['strategy', 'exponential'],
      ['strategy', 'FULL'],
    ];

    it.each(invalid)('rejects %s = %s with an InvalidArgumentError naming the option', (name, value) => {
      let caught: unknown;
      try {
        backoff({ [name]: value } as BackoffOptions);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(InvalidArgumentError);
      expect(InvalidArgumentError.is(caught)).toBe(true);
      expect((caught as InvalidArgumentError).argument).toBe(name);
      expect((caught as InvalidArgumentError).code).toBe('invalid-argument');
      expect((caught as Error).message).toContain(name);
    });

    it('accepts the boundaries', () => {
      expect(() => backoff({ initial: 0, factor: 1, max: 0, jitter: 0 })).not.toThrow();
      expect(() => backoff({ initial: 500, max: 500, jitter: 1 })).not.toThrow();
    });
  });
});

describe('grpcBackoff', () => {
  it('has gRPC connection-backoff parameters: 1 s, ×1.6, ±20 %, 120 s cap', () => {
    expect(grpcBackoff.options).toEqual({
      strategy: 'proportional',
      initial: 1000,
      factor: 1.6,
      max: 120_000,
      jitter: 0.2,
      flatFor: 0,
    });
  });

  it('reproduces the gRPC schedule at the middle and both edges of the jitter band', () => {
    // gRPC: current = min(current × 1.6, 120 s); sleep current ± 20 %.
    const expected: number[] = [];
    let current = 1000;
    for (let attempt = 0; attempt < 20; attempt++) {
      expected.push(current);
      current = Math.min(current * 1.6, 120_000);
    }
    expected.forEach((center, attempt) => {
      expect(grpcBackoff.delay(attempt, undefined, constant(0.5))).toBeCloseTo(center, 6);
      expect(grpcBackoff.delay(attempt, undefined, constant(0))).toBeCloseTo(center * 0.8, 6);
      expect(grpcBackoff.delay(attempt, undefined, constant(1))).toBeCloseTo(center * 1.2, 6);
    });
    // 1.6^10 × 1 s ≈ 110 s < 120 s < 1.6^11 × 1 s ≈ 176 s: the cap holds from attempt 11.
    expect(expected[10]).toBeCloseTo(109_951.16, 1);
    expect(expected[11]).toBe(120_000);
  });

  it('jitters around the cap, as gRPC does, instead of pinning every client to 120 s', () => {
    const random = seededRandom(3);
    const values = Array.from({ length: 10_000 }, () => grpcBackoff.delay(50, undefined, random));
    expect(lowest(values)).toBeGreaterThanOrEqual(96_000);
    expect(highest(values)).toBeLessThanOrEqual(144_000);
    expect(new Set(values).size).toBeGreaterThan(9_900);
    expect(mean(values) / 120_000).toBeCloseTo(1, 2);
  });
});

describe('withHint()', () => {
  it('returns the computed delay when there is no usable hint', () => {
    for (const hint of [undefined, 0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(withHint(1234, hint, constant(0.5))).toBe(1234);
    }
  });

  it('floors at the hint and jitters up to 20 % above it by default', () => {
    expect(withHint(300, 5000, constant(0))).toBe(5000);
    expect(withHint(300, 5000, constant(0.5))).toBe(5500);
    const random = seededRandom(11);
    const values = Array.from({ length: 10_000 }, () => withHint(300, 5000, random));
    expect(lowest(values)).toBeGreaterThanOrEqual(5000);
    expect(highest(values)).toBeLessThan(6000);
    expect(new Set(values.map(Math.round)).size).toBeGreaterThan(900);
  });

  it('keeps a computed delay that is already above the band', () => {
    expect(withHint(9000, 5000, constant(0.99))).toBe(9000);
  });

  it('takes a custom spread', () => {
    expect(withHint(0, 1000, constant(0.5), 1)).toBe(1500);
    expect(withHint(0, 1000, constant(0.5), 0)).toBe(1000);
  });
});

describe('Backoff', () => {
  it('counts attempts and walks the curve', () => {
    const schedule = new Backoff(backoff({ strategy: 'none', initial: 10, max: 1000 }), constant(0));
    expect(schedule.attempt).toBe(0);
    expect([schedule.next(), schedule.next(), schedule.next()]).toEqual([10, 20, 40]);
    expect(schedule.attempt).toBe(3);
  });

  it('starts over after reset()', () => {
    const schedule = new Backoff(backoff({ strategy: 'none', initial: 10, max: 1000 }), constant(0));
    schedule.next();
    schedule.next();
    schedule.reset();
    expect(schedule.attempt).toBe(0);
    expect(schedule.next()).toBe(10);
  });

  it('feeds its previous delay to decorrelated, and forgets it on reset', () => {
    const calls: (number | undefined)[] = [];
    const spy = {
      options: backoff().options,
      delay(_attempt: number, previous: number | undefined): number {
        calls.push(previous);
        return (previous ?? 1) * 2;
      },
    };
    const schedule = new Backoff(spy, constant(0));
    schedule.next();
    schedule.next();
    schedule.next();
    schedule.reset();
    schedule.next();
    expect(calls).toEqual([undefined, 2, 4, undefined]);
  });

  it('applies a hint as a floor without letting it inflate the next computed delay', () => {
    const schedule = new Backoff(backoff({ strategy: 'decorrelated', initial: 100, max: 100_000 }), constant(0));
    expect(schedule.next(5000)).toBe(5000);
    // previous is the computed 100, not the hinted 5000, so the next delay restarts from [100, 300].
    expect(schedule.next()).toBe(100);
  });

  it('gives a thousand clients started in the same instant different first delays (shared source)', () => {
    // One process, one random source, a thousand pollers: each draws its own number per attempt.
    const shared = seededRandom(20_260_101);
    for (const strategy of ['full', 'equal', 'decorrelated', 'proportional'] as const) {
      const policy = backoff({ strategy, initial: 1000, max: 30_000 });
      const firsts = Array.from({ length: 1000 }, () => new Backoff(policy, shared).next());
      expectSpread(firsts, strategy);
    }
  });

  it('gives a thousand clients different first delays with systemClock.random', () => {
    for (const strategy of ['full', 'equal', 'decorrelated', 'proportional'] as const) {
      const policy = backoff({ strategy, initial: 1000, max: 30_000 });
      const firsts = Array.from({ length: 1000 }, () => new Backoff(policy, () => systemClock.random()).next());
      expectSpread(firsts, strategy);
    }
  });

  it('lockstep "none" is the counter-example: every client waits exactly as long', () => {
    const policy = backoff({ strategy: 'none' });
    const firsts = Array.from({ length: 1000 }, () => new Backoff(policy, () => systemClock.random()).next());
    expect(new Set(firsts).size).toBe(1);
  });
});

/** The first delays are (almost) all distinct, never clump on one millisecond, and fill ten buckets. */
function expectSpread(values: readonly number[], strategy: JitterStrategy): void {
  expect(new Set(values).size, `${strategy}: distinct first delays`).toBeGreaterThan(values.length - 5);
  const perMillisecond = new Map<number, number>();
  for (const value of values) perMillisecond.set(Math.round(value), (perMillisecond.get(Math.round(value)) ?? 0) + 1);
  // 1000 clients over a 400-2000 ms band average at most 2.5 per millisecond; even the busiest of
  // those milliseconds stays far below 20 (p < 1e-6), where a lockstep schedule puts all 1000.
  expect(highest([...perMillisecond.values()]), `${strategy}: most clients in one millisecond`).toBeLessThan(20);
  const [low, high] = {
    full: [0, 1000],
    equal: [500, 1000],
    decorrelated: [1000, 3000],
    proportional: [800, 1200],
    none: [1000, 1000],
  }[strategy];
  const buckets = Array.from({ length: 10 }, () => 0);
  for (const value of values) {
    expect(value).toBeGreaterThanOrEqual(low!);
    expect(value).toBeLessThanOrEqual(high!);
    const index = Math.min(9, Math.floor(((value - low!) / (high! - low!)) * 10));
    buckets[index]!++;
  }
  // Uniform over 10 buckets: 100 expected each; a lockstep or clumped schedule would fill one or two.
  for (const count of buckets) expect(count, `${strategy}: bucket counts ${buckets.join(',')}`).toBeGreaterThan(50);
  expect(Math.max(...buckets)).toBeLessThan(160);
}

// Property tests over the whole input space; seeded so that a failure reproduces.
const params = { seed: 20_260_101, numRuns: 300 };

const anyStrategy = fc.constantFrom<JitterStrategy>('none', 'full', 'equal', 'decorrelated', 'proportional');

describe('properties', () => {
  it('every valid policy yields finite delays in [0, max × (1 + jitter)] for any attempt', () => {
    fc.assert(
      fc.property(
        anyStrategy,
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.double({ min: 1, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 1e7, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 2 ** 31 }),
        fc.integer(),
        (s, initial, factor, extra, jitter, attempts, seed) => {
          const max = initial + extra;
          const schedule = new Backoff(backoff({ strategy: s, initial, factor, max, jitter }), seededRandom(seed));
          const policy = backoff({ strategy: s, initial, factor, max, jitter });
          const random = seededRandom(seed);
          for (const attempt of [0, 1, 2, attempts]) {
            const value = policy.delay(attempt, undefined, random);
            expect(Number.isFinite(value)).toBe(true);
            expect(value).toBeGreaterThanOrEqual(0);
            expect(value).toBeLessThanOrEqual(max * (1 + jitter) + 1e-6);
          }
          for (let i = 0; i < 30; i++) {
            const value = schedule.next();
            expect(value).toBeGreaterThanOrEqual(0);
            expect(value).toBeLessThanOrEqual(max * (1 + jitter) + 1e-6);
          }
        },
      ),
      params,
    );
  });
});
