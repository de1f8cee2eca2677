import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { DelayedOperation, DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function settledHeap(): number {
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage().heapUsed;
}

class QuietOp extends DelayedOperation {
  tryComplete(): boolean {
    return false;
  }
  onComplete(): void {}
}

describe('DelayedOperationPurgatory memory', () => {
  it('a million operations on quiet keys expire; watched() returns to 0 and the heap to near its baseline', () => {
    const n = 1_000_000;
    const keys = Array.from({ length: n }, (_, i) => `quiet-${i}`);
    const keyLists = keys.map((key) => [key]);
    const purgatory = new DelayedOperationPurgatory({ mode: 'manual' });
    const start = purgatory.timer.now();
    const baseline = settledHeap();
    for (let i = 0; i < n; i++) {
      purgatory.tryCompleteElseWatch(new QuietOp(30_000 + (i % 10_000)), keyLists[i]!);
    }
    const loaded = settledHeap();
    expect(purgatory.watched()).toBe(n);
    expect(purgatory.numDelayed()).toBe(n);
    expect(purgatory.metrics()).toMatchObject({ pending: n, watchedKeys: n });
    const perOp = (loaded - baseline) / n;
    console.log(`heap per pending op: ${perOp.toFixed(1)} B`);
    // The operation object itself (112 B: header + Kafka's fields + the intrusive links) plus the key's
    // Map entry. docs/purgatory.md has the breakdown; the bound here leaves room for V8 differences.
    expect(perOp).toBeLessThan(200);
    expect(purgatory.advanceClock(start + 29_999)).toBe(0);
    expect(purgatory.advanceClock(start + 40_000)).toBe(n);
    expect(purgatory.metrics()).toMatchObject({ pending: 0, watched: 0, watchedKeys: 0, delayed: 0, expirations: n });
    const after = settledHeap();
    // Back near the baseline: no op, list entry or map entry lingers (a few MB of slack for the Map's
    // shrunken table and the wheel's buckets).
    expect(after - baseline).toBeLessThan(8 * 1024 * 1024);
    expect(keyLists.length).toBe(n);
  }, 60_000);
});
