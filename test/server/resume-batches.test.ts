import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { InvalidArgumentError } from '../../src/core/errors.js';
import { ResumeBatches } from '../../src/server/resume-batches.js';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('ResumeBatches', () => {
  it('admits `size` resumptions per turn at once and the rest in arrival order, one batch per turn', async () => {
    const batches = new ResumeBatches({ size: 3, clock: new ManualClock() });
    const resumed: number[] = [];
    const waits = Array.from({ length: 8 }, (_, i) => {
      const turn = batches.admit();
      if (turn === undefined) {
        resumed.push(i);
        return Promise.resolve();
      }
      return turn.then(() => {
        resumed.push(i);
      });
    });
    expect(resumed).toEqual([0, 1, 2]);
    expect(batches.queued).toBe(5);
    const perTurn: number[][] = [];
    while (resumed.length < 8) {
      const before = resumed.length;
      await nextTurn();
      perTurn.push(resumed.slice(before));
    }
    await Promise.all(waits);
    expect(resumed).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(perTurn.flat()).toEqual([3, 4, 5, 6, 7]);
    for (const batch of perTurn) expect(batch.length).toBeLessThanOrEqual(3);
    expect(batches.queued).toBe(0);
  });

  it('lets a later arrival queue behind earlier ones even when the turn still has room', async () => {
    const batches = new ResumeBatches({ size: 2, clock: new ManualClock() });
    expect(batches.admit()).toBeUndefined();
    expect(batches.admit()).toBeUndefined();
    const third = batches.admit();
    expect(third).toBeInstanceOf(Promise);
    await nextTurn();
    await third;
    // A fresh turn with nothing queued admits at once again.
    await nextTurn();
    await nextTurn();
    expect(batches.admit()).toBeUndefined();
  });

  it('rejects a size below 1', () => {
    expect(() => new ResumeBatches({ size: 0, clock: new ManualClock() })).toThrow(InvalidArgumentError);
    expect(() => new ResumeBatches({ size: 1.5, clock: new ManualClock() })).toThrow(InvalidArgumentError);
  });
});
