import { describe, expect, it } from 'vitest';
import { bullmqProgress, type BullmqView } from '../../src/bullmq/index.js';
import { foldBullmqState, foldRemoval } from '../../src/bullmq/fold.js';
import { cancelJob, newJob, startJob } from '../../src/server/jobs/job-state.js';
import { problem } from '../../src/core/protocol.js';

const T0 = Date.UTC(2026, 5, 1);
const options = { nowMs: T0 + 1000, retentionMs: 60_000, lostAfterMs: 30_000 };
const queued = newJob({ id: 'j', type: 'render', input: {}, runner: 'external', nowMs: T0 });
const view = (extra: Partial<BullmqView>): BullmqView => ({
  state: 'waiting',
  attemptsStarted: 0,
  attemptsMade: 0,
  ...extra,
});

describe('foldBullmqState', () => {
  it('changes nothing while BullMQ has the job waiting, and is idempotent', () => {
    for (const state of ['waiting', 'delayed', 'prioritized', 'waiting-children'] as const) {
      expect(foldBullmqState(queued, '', view({ state }), options)).toBeUndefined();
    }
    const once = foldBullmqState(queued, '', view({ state: 'active', attemptsStarted: 1, progress: '40' }), options)!;
    expect(
      foldBullmqState(
        once.job,
        once.progressSeen,
        view({ state: 'active', attemptsStarted: 1, progress: '40' }),
        options,
      ),
    ).toBeUndefined();
  });

  it('raises the version by one per observable change: start, then progress', () => {
    const folded = foldBullmqState(
      queued,
      '',
      view({ state: 'active', attemptsStarted: 1, processedOn: T0 + 10, progress: '40' }),
      options,
    )!;
    expect(folded.job.snapshot).toMatchObject({
      status: 'running',
      version: 3,
      progress: { percent: 40 },
      startedAt: new Date(T0 + 10).toISOString(),
    });
    expect(folded.progressSeen).toBe('40');
  });

  it('keeps a job between attempts running, never queued again', () => {
    const running = startJob(queued, T0);
    for (const state of ['waiting', 'delayed'] as const) {
      expect(
        foldBullmqState(running, '', view({ state, attemptsStarted: 1, attemptsMade: 1 }), options),
      ).toBeUndefined();
    }
    const retrying = foldBullmqState(
      queued,
      '',
      view({ state: 'delayed', attemptsStarted: 1, attemptsMade: 1 }),
      options,
    );
    expect(retrying?.job.snapshot.status).toBe('running');
  });

  it('finishes with the return value or the failed reason, with an expiry from the removal age', () => {
    const done = foldBullmqState(
      queued,
      '',
      view({
        state: 'completed',
        attemptsStarted: 1,
        attemptsMade: 1,
        returnValue: '{"url":"/out.mp4"}',
        finishedOn: T0 + 500,
        opts: '{"removeOnComplete":{"age":60}}',
      }),
      options,
    )!.job;
    expect(done.snapshot).toMatchObject({ status: 'succeeded', done: true, result: { url: '/out.mp4' } });
    expect(done.expiresAtMs).toBe(T0 + 500 + 60_000);
    const failed = foldBullmqState(
      queued,
      '',
      view({ state: 'failed', attemptsStarted: 2, attemptsMade: 2, failedReason: 'codec missing', opts: '{}' }),
      options,
    )!.job;
    expect(failed.snapshot).toMatchObject({ status: 'failed', error: { code: 'job-failed', detail: 'codec missing' } });
    expect(failed.expiresAtMs).toBeUndefined();
    const removedAtOnce = foldBullmqState(
      queued,
      '',
      view({
        state: 'completed',
        attemptsMade: 1,
        returnValue: '1',
        finishedOn: T0,
        opts: '{"removeOnComplete":true}',
      }),
      options,
    )!.job;
    expect(removedAtOnce.expiresAtMs).toBe(T0 + options.retentionMs);
  });

  it('never changes a finished job, whatever BullMQ says later', () => {
    const canceled = cancelJob(queued, problem('canceled'), T0, { retentionMs: 1000 });
    expect(foldBullmqState(canceled, '', view({ state: 'completed', returnValue: '1' }), options)).toBeUndefined();
    expect(foldRemoval(canceled, T0, 1000)).toBeUndefined();
    expect(foldRemoval(queued, T0, 1000)?.snapshot).toMatchObject({ status: 'canceled', error: { code: 'canceled' } });
  });

  it('counts a job missing from the queue as lost only after lostAfterMs', () => {
    expect(foldBullmqState(queued, '', view({ state: 'missing' }), options)).toBeUndefined();
    const lost = foldBullmqState(queued, '', view({ state: 'missing' }), { ...options, nowMs: T0 + 30_000 })!.job;
    expect(lost.snapshot).toMatchObject({ status: 'failed', error: { code: 'job-lost' } });
  });
});

describe('bullmqProgress', () => {
  it('maps numbers, objects, strings and the rest', () => {
    expect(bullmqProgress('40')).toEqual({ percent: 40 });
    expect(bullmqProgress('250')).toEqual({ data: 250 });
    expect(bullmqProgress('{"percent":50,"message":"encoding"}')).toEqual({ percent: 50, message: 'encoding' });
    expect(bullmqProgress('{"percent":50,"stage":"encode"}')).toEqual({
      percent: 50,
      data: { percent: 50, stage: 'encode' },
    });
    expect(bullmqProgress('{"percent":"half"}')).toEqual({ data: { percent: 'half' } });
    expect(bullmqProgress('"uploading"')).toEqual({ message: 'uploading' });
    expect(bullmqProgress('[1,2]')).toEqual({ data: [1, 2] });
    expect(bullmqProgress('true')).toEqual({ data: true });
  });
});
