import { describe, expect, it, vi } from 'vitest';
import { type Clock, type TimerHandle, type TimerOptions, ManualClock, seededRandom } from '../../../src/core/clock.js';
import { isPollkitError } from '../../../src/core/errors.js';
import { TimerTask, TimingWheel } from '../../../src/server/purgatory/timing-wheel.js';

/** A ManualClock that records every setTimeout/clearTimeout, to check how the wheel arms its timer. */
class SpyClock extends ManualClock {
  readonly armed: { ms: number; options: TimerOptions | undefined }[] = [];
  cleared = 0;
  override setTimeout(callback: () => void, ms: number, options?: TimerOptions): TimerHandle {
    this.armed.push({ ms, options });
    return super.setTimeout(callback, ms);
  }
  override clearTimeout(handle: TimerHandle): void {
    this.cleared++;
    super.clearTimeout(handle);
  }
}

describe('TimingWheel (manual mode, after Kafka TimerTest)', () => {
  it('runs already-expired tasks (delay 0 or negative) at once, synchronously', () => {
    const wheel = new TimingWheel({ mode: 'manual', tickMs: 1, wheelSize: 3 });
    const ran: number[] = [];
    for (let i = -5; i <= 0; i++) wheel.schedule(() => ran.push(i), i);
    expect(ran).toEqual([-5, -4, -3, -2, -1, 0]);
    expect(wheel.size()).toBe(0);
  });

  it('expires tasks at their deadline, never earlier, across overflow wheels', () => {
    const wheel = new TimingWheel({ mode: 'manual', tickMs: 1, wheelSize: 3 });
    const start = wheel.now();
    const fired = new Map<number, number[]>();
    const record = (id: number) => () => {
      const list = fired.get(id) ?? [];
      list.push(wheel.now() - start);
      fired.set(id, list);
    };
    // As in Kafka's TimerTest: 5..9, 10..19 (twice), 0..19 after those.
    const deadlines: number[] = [];
    for (let i = 5; i < 10; i++) deadlines.push(i);
    for (let i = 10; i < 100; i++) deadlines.push(i, i);
    for (let i = 100; i < 500; i++) deadlines.push(i);
    deadlines.forEach((d, id) => wheel.schedule(record(id), d));
    expect(wheel.size()).toBe(deadlines.length);
    expect(wheel.overflowLevels).toBeGreaterThanOrEqual(4);
    for (let t = 1; t <= 600; t++) wheel.advanceClock(start + t);
    deadlines.forEach((d, id) => expect(fired.get(id), `task ${id}`).toEqual([d]));
    expect(wheel.size()).toBe(0);
  });

  it('cancels in O(1): cancelled tasks never run and leave the count', () => {
    const wheel = new TimingWheel({ mode: 'manual', wheelSize: 4 });
    const ran: number[] = [];
    const tasks = Array.from({ length: 100 }, (_, i) => wheel.schedule(() => ran.push(i), 1 + i * 3));
    for (let i = 0; i < 100; i += 2) expect(tasks[i]!.cancel()).toBe(true);
    expect(tasks[0]!.cancel()).toBe(false);
    expect(wheel.size()).toBe(50);
    wheel.advanceClock(wheel.now() + 1000);
    expect(ran).toEqual(Array.from({ length: 50 }, (_, i) => 2 * i + 1));
    expect(tasks[1]!.isScheduled).toBe(false);
  });

  it('a wheel of size 3 with thousands of tasks runs each exactly once, in deadline order, never early', () => {
    const wheel = new TimingWheel({ mode: 'manual', tickMs: 1, wheelSize: 3 });
    const random = seededRandom(7);
    const start = wheel.now();
    const n = 5000;
    const runs = new Array<number>(n).fill(0);
    const order: number[] = [];
    const deadline: number[] = [];
    const bad: number[] = [];
    let previous = 0;
    for (let i = 0; i < n; i++) {
      const delay = 1 + Math.floor(random() * 20_000);
      deadline.push(delay);
      wheel.schedule(() => {
        runs[i]!++;
        order.push(i);
        const now = wheel.now() - start;
        // Never early; and late only by the advance step (the previous target was before the deadline).
        if (now < delay || previous >= delay) bad.push(i);
      }, delay);
    }
    expect(wheel.overflowLevels).toBeGreaterThanOrEqual(8);
    // Advance in uneven steps, including big jumps.
    let t = 0;
    while (t < 21_000) {
      previous = t;
      t += 1 + Math.floor(random() * 3);
      wheel.advanceClock(start + t);
    }
    expect(bad).toEqual([]);
    expect(runs.every((r) => r === 1)).toBe(true);
    for (let k = 1; k < order.length; k++) {
      expect(deadline[order[k]!]!).toBeGreaterThanOrEqual(deadline[order[k - 1]!]!);
    }
  });

  it('one big jump runs everything once, in order', () => {
    const wheel = new TimingWheel({ mode: 'manual', wheelSize: 3 });
    const order: number[] = [];
    for (let i = 3000; i > 0; i--) wheel.schedule(() => order.push(i), i);
    expect(wheel.advanceClock(wheel.now() + 10_000)).toBe(3000);
    expect(order).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
  });

  it('rounds deadlines up to the tick: never early, at most one tick late', () => {
    const wheel = new TimingWheel({ mode: 'manual', tickMs: 10, wheelSize: 8 });
    const start = wheel.now();
    const at: number[] = [];
    wheel.schedule(() => at.push(wheel.now() - start), 11);
    wheel.schedule(() => at.push(wheel.now() - start), 20);
    for (let t = 1; t <= 40; t++) wheel.advanceClock(start + t);
    expect(at).toEqual([20, 20]);
  });

  it('tasks added from a running task at an already-due deadline run in the same advance', () => {
    const wheel = new TimingWheel({ mode: 'manual' });
    const seen: string[] = [];
    wheel.schedule(() => {
      seen.push('a');
      wheel.schedule(() => seen.push('b'), 0);
      wheel.schedule(() => seen.push('c'), 5);
    }, 5);
    wheel.advanceClock(wheel.now() + 5);
    expect(seen).toEqual(['a', 'b']);
    wheel.advanceClock(wheel.now() + 5);
    expect(seen).toEqual(['a', 'b', 'c']);
  });

  it('re-adding a waiting task moves it; subclassed tasks need no wrapper', () => {
    const wheel = new TimingWheel({ mode: 'manual' });
    let runs = 0;
    class Counted extends TimerTask {
      override run(): void {
        runs++;
      }
    }
    const task = new Counted();
    wheel.add(task, 10);
    wheel.add(task, 50);
    expect(wheel.size()).toBe(1);
    wheel.advanceClock(wheel.now() + 20);
    expect(runs).toBe(0);
    wheel.advanceClock(wheel.now() + 30);
    expect(runs).toBe(1);
  });

  it('a throwing task does not stop the others; the error goes to onError', () => {
    const errors: unknown[] = [];
    const wheel = new TimingWheel({ mode: 'manual', onError: (e) => errors.push(e) });
    let ran = 0;
    wheel.schedule(() => {
      throw new Error('boom');
    }, 1);
    wheel.schedule(() => ran++, 1);
    wheel.advanceClock(wheel.now() + 1);
    expect(ran).toBe(1);
    expect(errors).toHaveLength(1);
  });

  it('validates its options', () => {
    const bad = [{ tickMs: 0 }, { tickMs: 1.5 }, { wheelSize: 1 }, { maxBatch: 0 }];
    for (const options of bad) {
      expect(() => new TimingWheel(options)).toThrowError(expect.objectContaining({ code: 'invalid-argument' }));
    }
    expect(() => new TimingWheel({ mode: 'manual' }).schedule(() => {}, Number.NaN)).toThrow();
    try {
      new TimingWheel({ tickMs: -1 });
    } catch (error) {
      expect(isPollkitError(error, 'invalid-argument')).toBe(true);
    }
  });
});

describe('TimingWheel (auto mode: one unref’d timer)', () => {
  it('arms exactly one unref’d timer for the earliest bucket and nothing while idle', () => {
    const clock = new SpyClock();
    const wheel = new TimingWheel({ clock });
    expect(clock.armed).toHaveLength(0);
    const ran: number[] = [];
    wheel.schedule(() => ran.push(100), 100);
    expect(clock.armed).toEqual([{ ms: 100, options: { unref: true } }]);
    // Later deadlines do not re-arm.
    for (let i = 0; i < 1000; i++) wheel.schedule(() => ran.push(200), 200 + i);
    expect(clock.armed).toHaveLength(1);
    expect(clock.pendingTimers).toBe(1);
    // An earlier deadline re-arms (and clears the old timer).
    wheel.schedule(() => ran.push(50), 50);
    expect(clock.armed).toHaveLength(2);
    expect(clock.cleared).toBe(1);
    expect(clock.pendingTimers).toBe(1);
    clock.advance(50);
    expect(ran).toEqual([50]);
    clock.advance(50);
    expect(ran).toEqual([50, 100]);
    expect(clock.pendingTimers).toBe(1);
    clock.advance(2000);
    expect(ran).toHaveLength(1002);
    // Idle: nothing armed.
    expect(clock.pendingTimers).toBe(0);
    expect(wheel.armed).toBe(false);
  });

  it('disarms when cancellations leave it empty', () => {
    const clock = new SpyClock();
    const wheel = new TimingWheel({ clock });
    const a = wheel.schedule(() => {}, 1000);
    const b = wheel.schedule(() => {}, 30_000);
    expect(clock.pendingTimers).toBe(1);
    a.cancel();
    expect(clock.pendingTimers).toBe(1);
    b.cancel();
    expect(clock.pendingTimers).toBe(0);
    expect(wheel.size()).toBe(0);
  });

  it('never fires early and at most a tick late with distinct deadlines (ManualClock)', () => {
    const clock = new ManualClock({ start: 12_345.678 });
    const wheel = new TimingWheel({ clock, wheelSize: 16 });
    const random = seededRandom(3);
    const lateness: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const delay = random() * 5000;
      const due = clock.now() + delay;
      wheel.schedule(() => {
        const late = clock.now() - due;
        expect(late).toBeGreaterThanOrEqual(0);
        lateness.push(late);
      }, delay);
      if (i % 10 === 0) clock.advance(random() * 7);
    }
    clock.advance(10_000);
    expect(lateness).toHaveLength(2000);
    expect(Math.max(...lateness)).toBeLessThanOrEqual(2);
  });

  it('runs a burst of expirations in bounded batches, yielding in between', () => {
    const clock = new SpyClock();
    const wheel = new TimingWheel({ clock, maxBatch: 100 });
    let ran = 0;
    const ranAtYield: number[] = [];
    const armed = clock.armed;
    const push = armed.push.bind(armed);
    armed.push = (...items) => {
      for (const item of items) if (item.ms === 0) ranAtYield.push(ran);
      return push(...items);
    };
    for (let i = 0; i < 1000; i++) wheel.schedule(() => ran++, 10);
    clock.advance(10);
    expect(ran).toBe(1000);
    expect(wheel.size()).toBe(0);
    // Nine yields, each after a batch of 100: the event loop got control between batches.
    expect(ranAtYield).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900]);
    expect(clock.armed.every((a) => a.options?.unref === true)).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it('re-arms when the timer fires before the clock reaches the bucket', () => {
    // A clock whose timers fire 1 ms early, as Node's millisecond timers can.
    const inner = new ManualClock();
    const early: Clock = {
      now: () => inner.now(),
      wallNow: () => inner.wallNow(),
      random: () => inner.random(),
      setTimeout: (cb, ms) => inner.setTimeout(cb, ms > 1 ? ms - 1 : ms),
      clearTimeout: (h) => inner.clearTimeout(h),
    };
    const wheel = new TimingWheel({ clock: early });
    let firedAt = -1;
    wheel.schedule(() => (firedAt = inner.now()), 10);
    inner.advance(9);
    expect(firedAt).toBe(-1);
    inner.advance(1);
    expect(firedAt).toBe(10);
  });

  it('shutdown drops tasks and leaves no timer', () => {
    const clock = new SpyClock();
    const wheel = new TimingWheel({ clock });
    const fn = vi.fn();
    for (let i = 1; i < 100; i++) wheel.schedule(fn, i * 10);
    wheel.shutdown();
    expect(clock.pendingTimers).toBe(0);
    expect(wheel.size()).toBe(0);
    wheel.schedule(fn, 1);
    clock.advance(5000);
    expect(fn).not.toHaveBeenCalled();
  });

  it('with the real clock: the timer is unref’d, fires on time and nothing stays armed', async () => {
    const wheel = new TimingWheel();
    const started = performance.now();
    const firedAfter = await new Promise<number>((resolve) => {
      wheel.schedule(() => resolve(performance.now() - started), 30);
    });
    expect(firedAfter).toBeGreaterThanOrEqual(30);
    expect(firedAfter).toBeLessThan(30 + 200);
    expect(wheel.armed).toBe(false);
    // An armed timer is unref'd: check the handle through a spy on the system clock wrapper.
    const handles: { hasRef(): boolean }[] = [];
    const spy: Clock = {
      now: () => performance.now(),
      wallNow: () => Date.now(),
      random: Math.random,
      setTimeout(cb, ms, options) {
        const handle = setTimeout(cb, ms);
        if (options?.unref === true) handle.unref();
        handles.push(handle);
        return handle;
      },
      clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
    };
    const wheel2 = new TimingWheel({ clock: spy });
    wheel2.schedule(() => {}, 60_000);
    expect(handles).toHaveLength(1);
    expect(handles[0]!.hasRef()).toBe(false);
    wheel2.shutdown();
  });
});
