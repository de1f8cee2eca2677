/**
 * Rules every job store applies alike (internal, shared by the in-memory and Redis stores): which jobs
 * give up their idempotency key, and how a store refuses an owner past its cap.
 *
 * @module
 */
import { PollkitError } from '../../../core/errors.js';
import type { StoredJob } from './job-store.js';

/**
 * Whether a job no longer holds its idempotency key: it failed with a retryable problem (`worker-lost`,
 * `shutting-down`), so a client repeating the request means "try again", not "tell me how it went".
 *
 * @example
 * ```ts
 * declare const job: import('pollkit/server').StoredJob;
 * if (releasesKey(job)) console.log('a resubmit with the same key makes a new job');
 * ```
 */
export function releasesKey(job: StoredJob): boolean {
  return job.snapshot.status === 'failed' && job.snapshot.error?.['retryable'] === true;
}

/**
 * The refusal of an insert past `maxPerOwner`.
 *
 * @example
 * ```ts
 * throw tooManyJobs(10_000);
 * ```
 */
export function tooManyJobs(count: number): PollkitError {
  return new PollkitError(
    `This owner already has ${count} jobs; forget finished ones or wait for them to expire`,
    'too-many-jobs',
    { retryable: true },
  );
}
