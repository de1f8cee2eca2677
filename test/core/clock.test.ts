import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sleep } from '../../src/core/abort.js';
import { ManualClock, seededRandom, systemClock } from '../../src/core/clock.js';

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('systemClock', () => {
  it('is frozen', () => {
    expect(Object.isFrozen(systemClock)).toBe(true);
  });

  it('looks up the timer globals on every call, so fake timers installed after import apply', () => {
    // The module was imported above, before this line: a clock that captured setTimeout at import
    // would keep using the real one and this timer would never fire under the fake clock.
    vi.useFakeTimers();
    const fired: number[] = [];
    systemClock.setTimeout(() => fired.push(1), 1000);
    const cleared = systemClock.setTimeout(() => fired.push(2), 500);
    systemClock.clearTimeout(cleared);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(999);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([1]);
  });

  it('reads Date.now and performance.now lazily too', () => {
    vi.useFakeTimers({ toFake: ['Date', 'performance'] });
    vi.setSystemTime(Date.UTC(2030, 5, 1));
    expect(systemClock.wallNow()).toBe(Date.UTC(2030, 5, 1));
    const before = systemClock.now();
    vi.advanceTimersByTime(250);
    expect(systemClock.now() - before).toBe(250);
  });

  it('reads Math.random lazily', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.25);
    expect(systemClock.random()).toBe(0.25);
  });

  it('random() is in [0, 1) and differs between calls', () => {
    const values = Array.from({ length: 1000 }, () => systemClock.random());
    expect(values.every((value) => value >= 0 && value < 1)).toBe(true);
    expect(new Set(values).size).toBeGreaterThan(990);
  });

  it('unrefs the timer only when asked', () => {
    const plain = systemClock.setTimeout(() => {}, 60_000) as NodeJS.Timeout;
    const unref = systemClock.setTimeout(() => {}, 60_000, { unref: true }) as NodeJS.Timeout;
    try {
      expect(plain.hasRef()).toBe(true);
      expect(unref.hasRef()).toBe(false);
    } finally {
      systemClock.clearTimeout(plain);
      systemClock.clearTimeout(unref);
    }
  });

  it('ignores clearTimeout of unknown or already-fired handles', () => {
    expect(() => systemClock.clearTimeout(undefined)).not.toThrow();
    expect(() => systemClock.clearTimeout({})).not.toThrow();
  });

  it('clamps delays beyond the platform limit instead of letting them fire at once', async () => {
    // Node fires a delay above 2^31 - 1 ms after 1 ms (with a TimeoutOverflowWarning).
    const spy = vi.spyOn(globalThis, 'setTimeout');
    let fired = 0;
    const far = systemClock.setTimeout(() => fired++, 2 ** 31 + 10);
    const never = systemClock.setTimeout(() => fired++, Number.POSITIVE_INFINITY);
    expect(spy.mock.calls.map((call) => call[1])).toEqual([2_147_483_647, 2_147_483_647]);
    spy.mockRestore();
    await new Promise((resolve) => setTimeout(resolve, 30));
    systemClock.clearTimeout(far);
    systemClock.clearTimeout(never);
    expect(fired).toBe(0);
  });

  it('treats negative and NaN delays as 0', () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    systemClock.clearTimeout(systemClock.setTimeout(() => {}, -50));
    systemClock.clearTimeout(systemClock.setTimeout(() => {}, Number.NaN));
    expect(spy.mock.calls.map((call) => call[1])).toEqual([0, 0]);
  });
});

describe('ManualClock', () => {
  it('starts at the given times, defaulting to 0 and 2026-01-01', () => {
    expect(new ManualClock().now()).toBe(0);
    expect(new ManualClock().wallNow()).toBe(Date.UTC(2026, 0, 1));
    const clock = new ManualClock({ start: 500, wallStart: 1_000_000 });
    expect(clock.now()).toBe(500);
    expect(clock.wallNow()).toBe(1_000_000);
    clock.advance(250);
    expect(clock.now()).toBe(750);
    expect(clock.wallNow()).toBe(1_000_250);
  });

  it('fires timers in deadline order, ties in creation order', () => {
    const clock = new ManualClock();
    const order: string[] = [];
    clock.setTimeout(() => order.push('c@300'), 300);
    clock.setTimeout(() => order.push('a@100'), 100);
    clock.setTimeout(() => order.push('b1@200'), 200);
    clock.setTimeout(() => order.push('b2@200'), 200);
    clock.setTimeout(() => order.push('z@0'), 0);
    clock.setTimeout(() => order.push('b3@200'), 200);
    clock.advance(1000);
    expect(order).toEqual(['z@0', 'a@100', 'b1@200', 'b2@200', 'b3@200', 'c@300']);
  });

  it('shows each timer its own deadline as now(), then settles on the target', () => {
    const clock = new ManualClock();
    const seen: number[] = [];
    clock.setTimeout(() => seen.push(clock.now()), 40);
    clock.setTimeout(() => seen.push(clock.now()), 70);
    clock.advance(100);
    expect(seen).toEqual([40, 70]);
    expect(clock.now()).toBe(100);
  });

  it('fires a timer exactly at its deadline, not before', () => {
    const clock = new ManualClock();
    let fired = false;
    clock.setTimeout(() => (fired = true), 1000);
    clock.advance(999);
    expect(fired).toBe(false);
    clock.advance(1);
    expect(fired).toBe(true);
  });

  it('fires timers created during advance in the same call when they fall inside the span', () => {
    const clock = new ManualClock();
    const fired: number[] = [];
    const tick = (): void => {
      fired.push(clock.now());
      clock.setTimeout(tick, 100);
    };
    clock.setTimeout(tick, 100);
    clock.advance(450);
    expect(fired).toEqual([100, 200, 300, 400]);
    expect(clock.pendingTimers).toBe(1);
    expect(clock.nextTimerAt()).toBe(500);
  });

  it('fires a zero-delay timer created during advance before a later one', () => {
    const clock = new ManualClock();
    const order: string[] = [];
    clock.setTimeout(() => {
      order.push('first');
      clock.setTimeout(() => order.push('nested'), 0);
    }, 10);
    clock.setTimeout(() => order.push('later'), 20);
    clock.advance(20);
    expect(order).toEqual(['first', 'nested', 'later']);
  });

  it('refuses to go backwards', () => {
    const clock = new ManualClock({ start: 100 });
    expect(() => clock.advanceTo(99)).toThrow(RangeError);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(() => clock.advanceTo(Number.NaN)).toThrow(RangeError);
    expect(clock.now()).toBe(100);
    clock.advanceTo(100);
    expect(clock.now()).toBe(100);
  });

  it('refuses to go backwards in advanceAsync too', async () => {
    const clock = new ManualClock({ start: 100 });
    await expect(clock.advanceAsync(-10)).rejects.toThrow(RangeError);
    await expect(clock.advanceAsync(Number.NaN)).rejects.toThrow(RangeError);
    expect(clock.now()).toBe(100);
  });

  it('clearTimeout removes a pending timer and ignores unknown handles', () => {
    const clock = new ManualClock();
    let fired = 0;
    const a = clock.setTimeout(() => fired++, 10);
    clock.setTimeout(() => fired++, 20);
    expect(clock.pendingTimers).toBe(2);
    clock.clearTimeout(a);
    clock.clearTimeout(a);
    clock.clearTimeout('nope');
    expect(clock.pendingTimers).toBe(1);
    clock.advance(100);
    expect(fired).toBe(1);
    clock.clearTimeout(a); // already gone: still ignored
  });

  it('a timer cleared by an earlier timer in the same advance does not fire', () => {
    const clock = new ManualClock();
    let fired = false;
    const victim = clock.setTimeout(() => (fired = true), 50);
    clock.setTimeout(() => clock.clearTimeout(victim), 10);
    clock.advance(100);
    expect(fired).toBe(false);
  });

  it('reports pendingTimers and nextTimerAt', () => {
    const clock = new ManualClock({ start: 1000 });
    expect(clock.pendingTimers).toBe(0);
    expect(clock.nextTimerAt()).toBeUndefined();
    clock.setTimeout(() => {}, 500);
    clock.setTimeout(() => {}, 200);
    expect(clock.pendingTimers).toBe(2);
    expect(clock.nextTimerAt()).toBe(1200);
    clock.advance(300);
    expect(clock.pendingTimers).toBe(1);
    expect(clock.nextTimerAt()).toBe(1500);
  });

  it('treats negative and NaN delays as 0, so now() never becomes NaN', () => {
    const clock = new ManualClock();
    const seen: number[] = [];
    clock.setTimeout(() => seen.push(clock.now()), Number.NaN);
    clock.setTimeout(() => seen.push(clock.now()), -5);
    expect(clock.nextTimerAt()).toBe(0);
    clock.advance(0);
    expect(seen).toEqual([0, 0]);
  });

  it('never fires an Infinity timer', () => {
    const clock = new ManualClock();
    let fired = false;
    clock.setTimeout(() => (fired = true), Number.POSITIVE_INFINITY);
    clock.advance(1e15);
    expect(fired).toBe(false);
    expect(clock.pendingTimers).toBe(1);
  });

  it('advance() is synchronous: an awaiting loop only gets its first timer', async () => {
    const clock = new ManualClock();
    const ticks: number[] = [];
    const loop = (async () => {
      for (let i = 0; i < 3; i++) {
        await sleep(100, { clock });
        ticks.push(clock.now());
      }
    })();
    clock.advance(300);
    await Promise.resolve();
    await Promise.resolve();
    // The continuation of the first sleep runs only after advance() returned, when now() is 300.
    expect(ticks).toEqual([300]);
    expect(clock.nextTimerAt()).toBe(400);
    await clock.advanceAsync(300);
    await loop;
    // The second sleep was scheduled at 300 (after advance), so it and the third fire later.
    expect(ticks).toEqual([300, 400, 500]);
  });

  it('advanceAsync lets promise chains schedule further timers inside the span', async () => {
    const clock = new ManualClock();
    const ticks: number[] = [];
    const loop = (async () => {
      for (let i = 0; i < 5; i++) {
        await sleep(100, { clock });
        await Promise.resolve(); // an extra hop between timers
        ticks.push(clock.now());
      }
    })();
    await clock.advanceAsync(350);
    expect(ticks).toEqual([100, 200, 300]);
    expect(clock.now()).toBe(350);
    await clock.advanceAsync(1000);
    await loop;
    expect(ticks).toEqual([100, 200, 300, 400, 500]);
  });

  it('runAllAsync fires until no timer is left, or up to the limit', async () => {
    const clock = new ManualClock();
    let count = 0;
    const loop = (async () => {
      while (count < 7) {
        await sleep(1000, { clock });
        count++;
      }
    })();
    expect(await clock.runAllAsync()).toBe(7);
    await loop;
    expect(clock.now()).toBe(7000);

    const forever = new ManualClock();
    const again = (): void => void forever.setTimeout(again, 5);
    again();
    expect(await forever.runAllAsync(20)).toBe(20);
    expect(forever.now()).toBe(100);
    expect(forever.pendingTimers).toBe(1);
  });

  it('random() is seeded (default seed 1) or taken from options', () => {
    const a = new ManualClock();
    const b = new ManualClock({ seed: 1 });
    const reference = seededRandom(1);
    const draws = [a.random(), a.random(), a.random()];
    expect(draws).toEqual([b.random(), b.random(), b.random()]);
    expect(draws).toEqual([reference(), reference(), reference()]);
    expect(new ManualClock({ seed: 2 }).random()).not.toBe(draws[0]);
    expect(new ManualClock({ random: () => 0.125 }).random()).toBe(0.125);
  });
});

describe('seededRandom()', () => {
  it('repeats the same sequence for the same seed', () => {
    const a = seededRandom(123);
    const b = seededRandom(123);
    const first = Array.from({ length: 1000 }, a);
    expect(first).toEqual(Array.from({ length: 1000 }, b));
  });

  it('gives different sequences for different seeds, including 0 and negative seeds', () => {
    const sequences = [0, 1, 2, -1, 0x7fff_ffff].map((seed) => {
      const random = seededRandom(seed);
      return Array.from({ length: 5 }, random).join();
    });
    expect(new Set(sequences).size).toBe(sequences.length);
  });

  it('stays in [0, 1)', () => {
    for (const seed of [0, 1, 42, -7, 2 ** 32 - 1]) {
      const random = seededRandom(seed);
      for (let i = 0; i < 100_000; i++) {
        const value = random();
        if (!(value >= 0 && value < 1)) expect.fail(`seed ${seed} draw ${i} gave ${value}`);
      }
    }
  });

  it('is roughly uniform: 100k draws over 20 buckets pass a chi-square test', () => {
    const random = seededRandom(31_337);
    const buckets = Array.from({ length: 20 }, () => 0);
    const draws = 100_000;
    for (let i = 0; i < draws; i++) buckets[Math.floor(random() * 20)]!++;
    const expected = draws / 20;
    const chiSquare = buckets.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
    // 19 degrees of freedom: the 99.9th percentile is 43.8.
    expect(chiSquare).toBeLessThan(43.8);
    const mean = Array.from({ length: 100_000 }, random).reduce((a, b) => a + b, 0) / 100_000;
    expect(mean).toBeCloseTo(0.5, 2);
  });

  it('does not correlate consecutive draws', () => {
    const random = seededRandom(8);
    let previous = random();
    let sum = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const next = random();
      sum += (previous - 0.5) * (next - 0.5);
      previous = next;
    }
    // The covariance of independent uniforms is 0; its standard error here is about 0.0003.
    expect(Math.abs(sum / n)).toBeLessThan(0.002);
  });
});

// Property tests over the whole input space; seeded so that a failure reproduces.
const params = { seed: 20_260_101, numRuns: 300 };

describe('properties', () => {
  it('ManualClock fires any set of timers in (deadline, creation) order, each at its deadline', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 1000 }), { maxLength: 60 }),
        fc.integer({ min: 0, max: 1200 }),
        (delays, span) => {
          const clock = new ManualClock();
          const fired: { index: number; at: number }[] = [];
          delays.forEach((delay, index) => clock.setTimeout(() => fired.push({ index, at: clock.now() }), delay));
          clock.advance(span);
          const expected = delays
            .map((delay, index) => ({ index, at: delay }))
            .filter(({ at }) => at <= span)
            .sort((a, b) => a.at - b.at || a.index - b.index);
          expect(fired).toEqual(expected);
          expect(clock.pendingTimers).toBe(delays.length - expected.length);
        },
      ),
      params,
    );
  });
});
