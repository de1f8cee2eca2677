/**
 * Cancels, in a worker's own process, the attempts that pollkit canceled from another process. BullMQ
 * 6 aborts a running processor's `signal` only through `worker.cancelJob(id)`, which acts inside the
 * worker's process; pollkit announces a cancel as a `pollkit:change` event with `cancel` on the queue's
 * event stream, and this listener turns it into that call. The processor itself stays as it was: it
 * receives BullMQ's `signal` (its third argument) and stops when it aborts.
 *
 * Without it a canceled job's running attempt still finishes (its result is ignored) and BullMQ runs
 * no further attempt: pollkit marks the job to fail at its next start (BullMQ's deferred failure).
 *
 * @module
 */
import type { QueueEvents, Worker } from 'bullmq';
import { InvalidArgumentError } from '../core/errors.js';

/** How long a cancel waits for an attempt that had not started when it arrived. */
const LATE_START_MS = 60_000;

/**
 * The reason a processor's signal aborts with when pollkit cancels its job.
 *
 * @example
 * ```ts
 * import { CANCELED_THROUGH_POLLKIT } from 'pollkit/bullmq';
 * const canceledByUser = (signal: AbortSignal) => signal.reason === CANCELED_THROUGH_POLLKIT;
 * ```
 */
export const CANCELED_THROUGH_POLLKIT = 'canceled through pollkit';

/**
 * Aborts the `signal` of `worker`'s processors when pollkit cancels their job, whichever process the
 * cancel came through. `events` is a `QueueEvents` of the worker's queue (one per process is enough).
 * Returns a function that stops forwarding.
 *
 * @throws InvalidArgumentError when `worker` or `events` is not a BullMQ `Worker` / `QueueEvents` of one queue.
 *
 * @example
 * ```ts
 * import { QueueEvents, Worker } from 'bullmq';
 * import { forwardCancellations } from 'pollkit/bullmq';
 *
 * const connection = { host: '127.0.0.1', port: 6379 };
 * const worker = new Worker('media', async (job, _token, signal) => transcode(job.data, signal), { connection });
 * const stop = forwardCancellations(worker, new QueueEvents('media', { connection }));
 * ```
 */
export function forwardCancellations(worker: Worker, events: QueueEvents): () => void {
  if (typeof worker !== 'object' || worker === null || typeof worker.cancelJob !== 'function') {
    throw new InvalidArgumentError('worker must be a BullMQ Worker', 'worker');
  }
  if (typeof events !== 'object' || events === null || typeof events.on !== 'function') {
    throw new InvalidArgumentError('events must be a BullMQ QueueEvents', 'events');
  }
  if (events.qualifiedName !== worker.qualifiedName) {
    throw new InvalidArgumentError(
      `events listens to ${events.qualifiedName}, not to ${worker.qualifiedName}`,
      'events',
    );
  }
  // A cancel can overtake the start of the attempt it is about (the worker took the job just before
  // pollkit marked it): remember it briefly and cancel the attempt once it is running.
  const early = new Map<string, number>();
  const onChange = (args: Record<string, unknown>): void => {
    const id = args['jobId'];
    if (args['cancel'] !== '1' || typeof id !== 'string') return;
    if (!worker.cancelJob(id, CANCELED_THROUGH_POLLKIT)) {
      const now = Date.now();
      for (const [key, until] of early) if (until < now) early.delete(key);
      early.set(id, now + LATE_START_MS);
    }
  };
  const onActive = (job: { id?: string | undefined }): void => {
    const id = job.id;
    if (id === undefined || !early.delete(id)) return;
    // 'active' fires just before the processor is tracked; cancel once it is.
    setImmediate(() => worker.cancelJob(id, CANCELED_THROUGH_POLLKIT));
  };
  events.on('pollkit:change' as 'active', onChange as never);
  worker.on('active', onActive as never);
  return () => {
    events.off('pollkit:change' as 'active', onChange as never);
    worker.off('active', onActive as never);
    early.clear();
  };
}
