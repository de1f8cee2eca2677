import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { DelayedOperation, DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';

const KEYS = ['k0', 'k1', 'k2', 'k3', 'k4'];

type Action =
  | {
      readonly t: 'add';
      readonly keys: readonly number[];
      readonly goal: number;
      readonly timeout: number;
      readonly signal: boolean;
    }
  | { readonly t: 'satisfy'; readonly key: number }
  | { readonly t: 'advance'; readonly ms: number }
  | { readonly t: 'abort'; readonly op: number }
  | { readonly t: 'force'; readonly op: number }
  | { readonly t: 'cancel'; readonly key: number };

const action: fc.Arbitrary<Action> = fc.oneof(
  {
    arbitrary: fc.record({
      t: fc.constant('add' as const),
      keys: fc.uniqueArray(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 4 }),
      goal: fc.nat(3),
      timeout: fc.oneof(
        fc.integer({ min: -2, max: 60 }),
        fc.double({ min: 0.1, max: 60, noNaN: true }),
        fc.constant(Infinity),
      ),
      signal: fc.boolean(),
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ t: fc.constant('satisfy' as const), key: fc.nat(4) }), weight: 2 },
  {
    arbitrary: fc.record({ t: fc.constant('advance' as const), ms: fc.double({ min: 0, max: 25, noNaN: true }) }),
    weight: 3,
  },
  { arbitrary: fc.record({ t: fc.constant('abort' as const), op: fc.nat(200) }), weight: 1 },
  { arbitrary: fc.record({ t: fc.constant('force' as const), op: fc.nat(200) }), weight: 1 },
  { arbitrary: fc.record({ t: fc.constant('cancel' as const), key: fc.nat(4) }), weight: 1 },
);

describe('DelayedOperationPurgatory properties', () => {
  it('random interleavings of add / complete / expire / abort / cancel keep the invariants', () => {
    fc.assert(
      fc.property(
        fc.array(action, { maxLength: 120 }),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom(2, 3, 8, 512),
        (actions, maxBatch, wheelSize) => {
          const clock = new ManualClock({ start: 1000.5 });
          const purgatory = new DelayedOperationPurgatory({ clock, maxBatch, wheelSize });
          const ready = new Set<string>();

          class Op extends DelayedOperation {
            completes = 0;
            expiredAt = -1;
            readonly addedAt = clock.now();
            constructor(
              readonly keys: readonly string[],
              readonly goal: string,
              timeout: number,
              readonly controller: AbortController | undefined,
            ) {
              super(timeout, controller === undefined ? undefined : { signal: controller.signal });
            }
            tryComplete(): boolean {
              return ready.has(this.goal) ? this.forceComplete() : false;
            }
            onComplete(): void {
              this.completes++;
            }
            override onExpiration(): void {
              this.expiredAt = clock.now();
            }
          }

          const ops: Op[] = [];
          const check = (): void => {
            const pending = ops.filter((op) => !op.isCompleted());
            for (const op of ops) {
              expect(op.completes).toBe(op.isCompleted() ? 1 : 0);
              if (op.settlement === 'expired') {
                // Never early.
                expect(op.expiredAt - op.addedAt).toBeGreaterThanOrEqual(op.delayMs);
              }
            }
            // Nothing overdue is left pending for long: the timer ran everything due (batches included,
            // since the ManualClock fires the zero-delay yields within the advance).
            for (const op of pending) expect(clock.now() - op.addedAt).toBeLessThan(op.delayMs + 2);
            const metrics = purgatory.metrics();
            expect(metrics.pending).toBe(pending.length);
            expect(purgatory.watched()).toBe(pending.reduce((n, op) => n + op.keys.length, 0));
            expect(purgatory.watchedKeys()).toBe(new Set(pending.flatMap((op) => op.keys)).size);
            expect(purgatory.numDelayed()).toBe(pending.filter((op) => op.delayMs !== Infinity).length);
            const by = (s: string): number => ops.filter((op) => op.settlement === s).length;
            expect(metrics.completions).toBe(by('completed'));
            expect(metrics.expirations).toBe(by('expired'));
            expect(metrics.aborts).toBe(by('aborted'));
            expect(metrics.cancellations).toBe(by('canceled'));
          };

          for (const a of actions) {
            switch (a.t) {
              case 'add': {
                const keys = a.keys.map((k) => KEYS[k]!);
                const goal = keys[a.goal % keys.length]!;
                const op = new Op(keys, goal, a.timeout, a.signal ? new AbortController() : undefined);
                ops.push(op);
                const byMe = purgatory.tryCompleteElseWatch(op, keys);
                expect(byMe).toBe(op.settlement === 'completed');
                break;
              }
              case 'satisfy': {
                const key = KEYS[a.key]!;
                ready.add(key);
                const waiting = ops.filter((op) => !op.isCompleted() && op.goal === key);
                expect(purgatory.checkAndComplete(key)).toBe(waiting.length);
                ready.delete(key);
                // No lost wake-up: every op waiting for this key is done.
                expect(waiting.every((op) => op.settlement === 'completed')).toBe(true);
                break;
              }
              case 'advance':
                clock.advance(a.ms);
                break;
              case 'abort': {
                const op = ops[a.op];
                op?.controller?.abort();
                if (op?.controller !== undefined) expect(op.isCompleted()).toBe(true);
                break;
              }
              case 'force': {
                const op = ops[a.op];
                if (op !== undefined) {
                  const wasDone = op.isCompleted();
                  expect(op.forceComplete()).toBe(!wasDone);
                }
                break;
              }
              case 'cancel': {
                const key = KEYS[a.key]!;
                const watching = ops.filter((op) => !op.isCompleted() && op.keys.includes(key));
                expect(purgatory.cancelForKey(key)).toBe(watching.length);
                break;
              }
            }
            check();
          }
          purgatory.shutdown();
          expect(ops.every((op) => op.completes === 1)).toBe(true);
          expect(purgatory.metrics()).toMatchObject({ pending: 0, watched: 0, watchedKeys: 0, delayed: 0 });
          expect(clock.pendingTimers).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});
