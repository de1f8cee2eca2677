import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.js';
import { IllegalTransitionError } from '../../../src/core/errors.js';
import { isTerminalStatus, type JobSnapshot } from '../../../src/core/protocol.js';
import { JobRegistry } from '../../../src/server/jobs/job-registry.js';
import { DelayedOperationPurgatory } from '../../../src/server/purgatory/purgatory.js';

type Op = 'start' | 'progress' | 'succeed' | 'fail' | 'cancel';
const ops = fc.constantFrom<Op>('start', 'progress', 'succeed', 'fail', 'cancel');

function apply(registry: JobRegistry, id: string, op: Op, step: number): Promise<JobSnapshot | undefined> {
  switch (op) {
    case 'start':
      return registry.start(id);
    case 'progress':
      return registry.progress(id, { percent: step % 101 });
    case 'succeed':
      return registry.succeed(id, step);
    case 'fail':
      return registry.fail(id, new Error(`step ${step}`));
    case 'cancel':
      return registry.cancel(id);
  }
}

// The legal moves of PROTOCOL.md's state machine, as an oracle independent of the implementation.
function legal(status: JobSnapshot['status'], op: Op): boolean {
  switch (op) {
    case 'start':
      return status === 'queued';
    case 'progress':
    case 'succeed':
      return status === 'running';
    case 'fail':
      return status === 'queued' || status === 'running';
    case 'cancel':
      return true; // idempotent on finished jobs
  }
}

describe('JobRegistry properties', () => {
  it('raises the version by exactly one per legal change and never on an illegal one', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(ops, { maxLength: 12 }), async (sequence) => {
        const clock = new ManualClock();
        const registry = new JobRegistry({ clock, retentionMs: Infinity });
        let current = await registry.create('t', null);
        for (const [step, op] of sequence.entries()) {
          clock.advance(1);
          const before = current;
          const outcome = await apply(registry, current.id, op, step).then(
            (job) => ({ ok: true as const, job }),
            (error: unknown) => ({ ok: false as const, error }),
          );
          current = (await registry.get(before.id))!;
          if (legal(before.status, op)) {
            expect(outcome.ok).toBe(true);
            const changed = !(op === 'cancel' && before.done);
            expect(current.version).toBe(before.version + (changed ? 1 : 0));
          } else {
            expect(outcome.ok).toBe(false);
            expect(IllegalTransitionError.is(outcome.ok ? undefined : outcome.error)).toBe(true);
            expect(current).toEqual(before);
          }
          expect(current.done).toBe(isTerminalStatus(current.status));
          expect(current.result !== null).toBe(current.status === 'succeeded');
          expect(current.error !== null).toBe(current.status === 'failed' || current.status === 'canceled');
        }
        await registry.close();
      }),
      { numRuns: 200 },
    );
  });

  it('settles every waiter exactly once, with a state that satisfies its request', async () => {
    const waiterArb = fc.record({
      sinceVersion: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }),
      timeoutMs: fc.integer({ min: 0, max: 5000 }),
      abortAfterMs: fc.option(fc.integer({ min: 0, max: 6000 }), { nil: undefined }),
    });
    const stepArb = fc.oneof(
      fc.record({ kind: fc.constant('op' as const), op: ops }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 2000 }) }),
      fc.record({ kind: fc.constant('wait' as const), waiter: waiterArb }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { maxLength: 25 }), fc.boolean(), async (steps, closeAtEnd) => {
        const clock = new ManualClock();
        const purgatory = new DelayedOperationPurgatory({ clock });
        const registry = new JobRegistry({ clock, purgatory, retentionMs: Infinity });
        const job = await registry.create('t', null);
        const settlements: { count: number; since: number | undefined; startedAt: number; timeoutMs: number }[] = [];
        const results: { value?: JobSnapshot | undefined; error?: unknown; at: number }[] = [];
        for (const [index, step] of steps.entries()) {
          if (step.kind === 'op') {
            await apply(registry, job.id, step.op, index).catch(() => undefined);
          } else if (step.kind === 'advance') {
            await clock.advanceAsync(step.ms);
          } else {
            const { sinceVersion, timeoutMs, abortAfterMs } = step.waiter;
            const controller = new AbortController();
            if (abortAfterMs !== undefined) clock.setTimeout(() => controller.abort(new Error('gone')), abortAfterMs);
            const record = { count: 0, since: sinceVersion, startedAt: clock.now(), timeoutMs };
            settlements.push(record);
            const slot = results.length;
            results.push({ at: -1 });
            const options =
              sinceVersion === undefined
                ? { timeoutMs, signal: controller.signal }
                : { sinceVersion, timeoutMs, signal: controller.signal };
            registry.wait(job.id, options).then(
              (value) => {
                record.count++;
                results[slot] = { value, at: clock.now() };
              },
              (error: unknown) => {
                record.count++;
                results[slot] = { error, at: clock.now() };
              },
            );
          }
        }
        if (closeAtEnd) await registry.close();
        else await clock.advanceAsync(10_000);
        await clock.advanceAsync(0);
        expect(purgatory.watched()).toBe(0);
        for (const [i, record] of settlements.entries()) {
          expect(record.count).toBe(1);
          const result = results[i]!;
          if (result.error !== undefined) {
            expect(result.error).toMatchObject({ message: 'gone' });
            continue;
          }
          const value = result.value!;
          // Either the version moved past what the waiter had, or the wait ended (timeout or close).
          const timedOut = result.at - record.startedAt >= record.timeoutMs;
          if (value.version === record.since) expect(timedOut || closeAtEnd).toBe(true);
        }
      }),
      { numRuns: 150 },
    );
  });
});
