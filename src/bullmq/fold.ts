/**
 * How a BullMQ job's state becomes a pollkit job's next version. BullMQ keeps no version of its own, so
 * the store keeps one beside each job and folds what BullMQ says into it with pure functions from
 * `job-state.ts`: every observable change (started, progress, finished) raises the version by one, a
 * finished job never changes again, and a status never moves backwards (a retry waiting for its next
 * attempt stays `running`). The fold is idempotent — folding the same BullMQ state twice changes
 * nothing — so any process may run it, and the compare-and-set that stores its result decides which one
 * counts.
 *
 * @module
 */
import { type JobProgress, problem } from '../core/protocol.js';
import { jobFailureProblem } from '../server/jobs/job-problem.js';
import { cancelJob, failJob, progressJob, startJob, succeedJob } from '../server/jobs/job-state.js';
import type { StoredJob } from '../server/jobs/stores/job-store.js';

/**
 * Where BullMQ keeps a job: the name of the list or sorted set it is in, or `missing` when its hash is
 * gone (removed, or not added yet).
 *
 * @example
 * ```ts
 * import type { BullmqState } from 'pollkit/bullmq';
 * const waiting: BullmqState = 'prioritized';
 * ```
 */
export type BullmqState =
  'waiting' | 'delayed' | 'prioritized' | 'waiting-children' | 'active' | 'completed' | 'failed' | 'missing';

/**
 * What the store reads of a BullMQ job, as BullMQ stores it (numbers parsed, JSON left as text).
 *
 * @example
 * ```ts
 * import type { BullmqView } from 'pollkit/bullmq';
 * const view: BullmqView = { state: 'active', attemptsStarted: 1, attemptsMade: 0, progress: '40' };
 * ```
 */
export interface BullmqView {
  /** Where the job is. */
  readonly state: BullmqState;
  /** How many times a worker took the job (BullMQ's `ats`). */
  readonly attemptsStarted: number;
  /** How many attempts ended, failed or not (BullMQ's `atm`). */
  readonly attemptsMade: number;
  /** The last `job.updateProgress` value as JSON, if any. */
  readonly progress?: string | undefined;
  /** The processor's return value as JSON, once completed. */
  readonly returnValue?: string | undefined;
  /** Why the last attempt failed. */
  readonly failedReason?: string | undefined;
  /** When the current (or last) attempt started, epoch ms. */
  readonly processedOn?: number | undefined;
  /** When the job completed or finally failed, epoch ms. */
  readonly finishedOn?: number | undefined;
  /** The job's options as JSON (`removeOnComplete`, `removeOnFail`, `attempts`, …). */
  readonly opts?: string | undefined;
}

/** Options of {@link foldBullmqState}. */
export interface FoldOptions {
  /** Now, wall clock, epoch ms. */
  readonly nowMs: number;
  /** How long a finished job stays when its removal option gives no age (`true`, or a count). */
  readonly retentionMs: number;
  /** How long a job may be missing from BullMQ after its submit before it counts as lost. */
  readonly lostAfterMs: number;
}

/** The result of a fold that changed something. */
export interface Folded {
  /** The job's next state. */
  readonly job: StoredJob;
  /** The BullMQ progress JSON this state reflects, so a later fold applies only newer reports. */
  readonly progressSeen: string;
}

/**
 * Folds `view` into `job`; `progressSeen` is the BullMQ progress the job already reflects. Resolves to
 * `undefined` when nothing observable changed.
 *
 * @example
 * ```ts
 * import { foldBullmqState } from './fold.js';
 * declare const job: import('pollkit/server').StoredJob;
 * const next = foldBullmqState(job, '', { state: 'active', attemptsStarted: 1, attemptsMade: 0 }, {
 *   nowMs: Date.now(),
 *   retentionMs: 3_600_000,
 *   lostAfterMs: 60_000,
 * });
 * ```
 */
export function foldBullmqState(
  job: StoredJob,
  progressSeen: string,
  view: BullmqView,
  options: FoldOptions,
): Folded | undefined {
  if (job.snapshot.done) return undefined;
  const { nowMs } = options;
  if (view.state === 'missing') {
    if (nowMs - Date.parse(job.snapshot.createdAt) < options.lostAfterMs) return undefined;
    const lost = jobFailureProblem({
      code: 'job-lost',
      message: 'The job left the BullMQ queue before pollkit saw it finish (it was removed, or its submit failed).',
    });
    return { job: failJob(job, lost, nowMs, { retentionMs: options.retentionMs }), progressSeen };
  }
  const target = statusOf(view);
  const progress = view.progress ?? '';
  const newProgress = progress !== '' && progress !== progressSeen ? bullmqProgress(progress) : undefined;
  let next = job;
  if (next.snapshot.status === 'queued' && target !== 'queued') next = startJob(next, view.processedOn ?? nowMs);
  if (target === 'succeeded' || target === 'failed') {
    const finishedAt = view.finishedOn ?? nowMs;
    const finish = { retentionMs: retentionOf(view, target, options.retentionMs), progress: newProgress };
    next =
      target === 'succeeded'
        ? succeedJob(next, parseJson(view.returnValue), finishedAt, finish)
        : failJob(next, problem('job-failed', view.failedReason ?? 'The job failed.'), finishedAt, finish);
  } else if (newProgress !== undefined && next.snapshot.status === 'running') {
    next = progressJob(next, newProgress, nowMs);
  }
  if (next === job && progress === progressSeen) return undefined;
  return { job: next, progressSeen: progress };
}

/**
 * A job that left the queue by `removed` (BullMQ's event) before it started is canceled; one that had
 * started keeps its state until it is folded as missing.
 *
 * @example
 * ```ts
 * import { foldRemoval } from './fold.js';
 * declare const job: import('pollkit/server').StoredJob;
 * const canceled = foldRemoval(job, Date.now(), 60_000);
 * ```
 */
export function foldRemoval(job: StoredJob, nowMs: number, retentionMs: number): StoredJob | undefined {
  if (job.snapshot.done) return undefined;
  return cancelJob(job, problem('canceled', 'The job was removed from the BullMQ queue.'), nowMs, { retentionMs });
}

function statusOf(view: BullmqView): 'queued' | 'running' | 'succeeded' | 'failed' {
  switch (view.state) {
    case 'completed':
      return 'succeeded';
    case 'failed':
      return 'failed';
    case 'active':
      return 'running';
    default:
      // Back in a waiting set after an attempt (a retry's backoff, a stalled job): still in progress.
      return view.attemptsStarted > 0 || view.attemptsMade > 0 ? 'running' : 'queued';
  }
}

/**
 * The pollkit progress of a BullMQ progress value (`job.updateProgress(n)` or `(object)`): a number
 * from 0 to 100 is `percent`; an object keeps a numeric `percent` (0–100) and a string `message`, and
 * is also `data` when it has any other member; a string is `message`; anything else is `data`.
 *
 * @example
 * ```ts
 * import { bullmqProgress } from 'pollkit/bullmq';
 * bullmqProgress('40'); // { percent: 40 }
 * bullmqProgress('{"percent":50,"stage":"encode"}'); // { percent: 50, data: { percent: 50, stage: 'encode' } }
 * ```
 */
export function bullmqProgress(json: string): JobProgress {
  const value = parseJson(json);
  if (typeof value === 'number') return isPercent(value) ? { percent: value } : { data: value };
  if (typeof value === 'string') return { message: value };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { data: value };
  const record = value as Record<string, unknown>;
  const { percent, message } = record;
  const others = Object.keys(record).some((key) => key !== 'percent' && key !== 'message');
  return {
    ...(isPercent(percent) ? { percent } : {}),
    ...(typeof message === 'string' ? { message } : {}),
    ...(others || (percent !== undefined && !isPercent(percent)) ? { data: value } : {}),
  };
}

function isPercent(value: unknown): value is number {
  return typeof value === 'number' && value >= 0 && value <= 100;
}

// BullMQ removes a finished job by age, by count, or at once; only an age says when. Without one, a
// job kept forever is kept forever here too, and one removed by count or at once keeps its final state
// here for `fallbackMs`, so a client polling it still learns how it ended.
function retentionOf(view: BullmqView, target: 'succeeded' | 'failed', fallbackMs: number): number {
  const opts = parseJson(view.opts);
  const option =
    typeof opts === 'object' && opts !== null
      ? (opts as Record<string, unknown>)[target === 'succeeded' ? 'removeOnComplete' : 'removeOnFail']
      : undefined;
  if (option === undefined || option === false) return Number.POSITIVE_INFINITY;
  if (typeof option === 'object' && option !== null) {
    const age = (option as { age?: unknown }).age;
    if (typeof age === 'number' && age >= 0) return age * 1000;
  }
  return fallbackMs;
}

function parseJson(json: string | undefined): unknown {
  if (json === undefined || json === '') return null;
  try {
    return JSON.parse(json) as unknown;
  } catch {
    // BullMQ stores JSON; anything else is shown as it is rather than lost.
    return json;
  }
}
