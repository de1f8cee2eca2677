import { describe, expect, it } from 'vitest';
import { RetryBudget } from '../../src/client/retry-budget.js';
import { ManualClock } from '../../src/core/clock.js';
import { InvalidArgumentError } from '../../src/core/errors.js';

describe('RetryBudget', () => {
  it('allows a burst of `capacity` retries, then refuses until time refills it', () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ capacity: 3, refillPerSecond: 0.5, depositPerSuccess: 0, clock });
    expect([budget.tryAcquire(), budget.tryAcquire(), budget.tryAcquire(), budget.tryAcquire()]).toEqual([
      true,
      true,
      true,
      false,
    ]);
    expect(budget.msUntilAvailable()).toBe(2000);
    clock.advance(1999);
    expect(budget.tryAcquire()).toBe(false);
    clock.advance(1);
    expect(budget.tryAcquire()).toBe(true);
  });

  it('never refills beyond capacity', () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ capacity: 2, refillPerSecond: 10, clock });
    clock.advance(60_000);
    expect(budget.tokens).toBe(2);
  });

  it('earns tokens back from successes', () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ capacity: 1, refillPerSecond: 0, depositPerSuccess: 0.25, clock });
    expect(budget.tryAcquire()).toBe(true);
    expect(budget.tryAcquire()).toBe(false);
    expect(budget.msUntilAvailable()).toBe(Number.POSITIVE_INFINITY);
    for (let i = 0; i < 3; i++) budget.recordSuccess();
    expect(budget.tryAcquire()).toBe(false);
    budget.recordSuccess();
    expect(budget.tryAcquire()).toBe(true);
  });

  it('reserves tokens in debt so callers sharing a budget queue up one refill apart', () => {
    const clock = new ManualClock();
    const budget = new RetryBudget({ capacity: 1, refillPerSecond: 1, depositPerSuccess: 0, clock });
    expect(budget.reserve()).toBe(0);
    expect(budget.reserve()).toBe(1000);
    expect(budget.reserve()).toBe(2000);
    clock.advance(2000);
    expect(budget.reserve()).toBe(1000);
  });

  it('reserves nothing when time does not refill it', () => {
    const budget = new RetryBudget({ capacity: 1, refillPerSecond: 0, clock: new ManualClock() });
    expect(budget.reserve()).toBe(0);
    expect(budget.reserve()).toBe(Number.POSITIVE_INFINITY);
    expect(budget.tokens).toBe(0);
  });

  it('validates its options', () => {
    expect(() => new RetryBudget({ capacity: 0 })).toThrow(InvalidArgumentError);
    expect(() => new RetryBudget({ refillPerSecond: -1 })).toThrow(InvalidArgumentError);
    expect(() => new RetryBudget({ depositPerSuccess: Number.NaN })).toThrow(InvalidArgumentError);
  });
});
