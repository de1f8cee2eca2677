import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { InvalidArgumentError } from '../../../src/core/errors.js';
import { ResumeBatches } from '../../../src/server/purgatory/resume-batches.js';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Resolves after `hops` microtask hops, each behind everything queued before it. */
function afterHops(hops: number): Promise<void> {
  let chain = Promise.resolve();
  for (let i = 1; i < hops; i++) chain = chain.then();
  return chain;
}

describe('ResumeBatches', () => {
  it('runs up to a batch at once and the rest in arrival order, batch after batch, in the same drain', async () => {
    const batches = new ResumeBatches({ resumeBatchSize: 3, clock: new ManualClock() });
    const resumed: number[] = [];
    for (let i = 0; i < 8; i++) batches.schedule({ resume: () => resumed.push(i) });
    expect(resumed).toEqual([0, 1, 2]);
    expect(batches.queued).toBe(5);
    await afterHops(1);
    // A batch waits `gap` hops behind the one before it, not a turn.
    expect(resumed).toEqual([0, 1, 2]);
    await nextTurn();
    expect(resumed).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(batches.queued).toBe(0);
  });

  it('lets each batch run `gap` hops ahead before the next one starts', async () => {
    const gap = 8;
    const batches = new ResumeBatches({ resumeBatchSize: 4, gap, clock: new ManualClock() });
    const log: string[] = [];
    const finished: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      batches.schedule({
        resume: () => {
          log.push(`start ${i}`);
          // A continuation a few awaits long, like a woken long poll building and writing its answer.
          finished.push(afterHops(gap - 2).then(() => void log.push(`end ${i}`)));
        },
      });
    }
    await nextTurn();
    await Promise.all(finished);
    for (let batch = 1; batch < 5; batch++) {
      const firstOfBatch = log.indexOf(`start ${batch * 4}`);
      for (let i = (batch - 1) * 4; i < batch * 4; i++) expect(log.indexOf(`end ${i}`)).toBeLessThan(firstOfBatch);
    }
  });

  it('a lone wake-up runs at once, and a burst that drained leaves room for the next at once too', async () => {
    const batches = new ResumeBatches({ resumeBatchSize: 2, clock: new ManualClock() });
    const resumed: string[] = [];
    batches.schedule({ resume: () => resumed.push('a') });
    batches.schedule({ resume: () => resumed.push('b') });
    batches.schedule({ resume: () => resumed.push('c') });
    expect(resumed).toEqual(['a', 'b']);
    // A later arrival queues behind the earlier one even though it is alone in its call.
    await afterHops(1);
    batches.schedule({ resume: () => resumed.push('d') });
    expect(resumed).toEqual(['a', 'b']);
    await nextTurn();
    expect(resumed).toEqual(['a', 'b', 'c', 'd']);
    batches.schedule({ resume: () => resumed.push('e') });
    expect(resumed).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('after resumeSliceMs of continuous resuming, the next batch waits for an event-loop turn', async () => {
    const clock = new ManualClock();
    const batches = new ResumeBatches({ resumeBatchSize: 2, resumeSliceMs: 10, clock });
    const resumed: number[] = [];
    for (let i = 0; i < 12; i++) {
      batches.schedule({
        resume: () => {
          resumed.push(i);
          // Each resumption "takes" 3 ms of the clock.
          clock.advance(3);
        },
      });
    }
    expect(resumed).toEqual([0, 1]);
    await afterHops(20);
    // 0 and 1 at once (6 ms), 2 and 3 one gap later in the same drain (12 ms: past the slice) …
    expect(resumed).toEqual([0, 1, 2, 3]);
    await afterHops(40);
    expect(resumed).toEqual([0, 1, 2, 3]);
    // … and from then on each turn starts a fresh slice, which two batches fill.
    const perTurn: number[][] = [];
    while (resumed.length < 12) {
      const before = resumed.length;
      await nextTurn();
      perTurn.push(resumed.slice(before));
    }
    expect(perTurn.filter((batch) => batch.length > 0)).toEqual([
      [4, 5, 6, 7],
      [8, 9, 10, 11],
    ]);
  });

  it('resumeSliceMs 0 gives every batch after the first its own turn', async () => {
    const batches = new ResumeBatches({ resumeBatchSize: 2, resumeSliceMs: 0, clock: new ManualClock() });
    const resumed: number[] = [];
    for (let i = 0; i < 6; i++) batches.schedule({ resume: () => resumed.push(i) });
    const perTurn: number[] = [];
    while (resumed.length < 6) {
      const before = resumed.length;
      await nextTurn();
      perTurn.push(resumed.length - before);
    }
    expect(perTurn.filter((count) => count > 0)).toEqual([2, 2]);
  });

  it('rejects a batch size or gap below 1 and a negative slice', () => {
    const clock = new ManualClock();
    expect(() => new ResumeBatches({ resumeBatchSize: 0, clock })).toThrow(InvalidArgumentError);
    expect(() => new ResumeBatches({ resumeBatchSize: 1.5, clock })).toThrow(/resumeBatchSize/);
    expect(() => new ResumeBatches({ gap: 0, clock })).toThrow(InvalidArgumentError);
    expect(() => new ResumeBatches({ resumeSliceMs: -1, clock })).toThrow(/resumeSliceMs/);
    expect(() => new ResumeBatches({ resumeSliceMs: Number.NaN, clock })).toThrow(InvalidArgumentError);
  });
});
