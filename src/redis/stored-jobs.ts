/**
 * What the stores that keep jobs as JSON in Redis (`RedisJobStore`, and `BullmqJobStore` beside it)
 * share: reading a stored job back, the checks every transition must pass, and page tokens made from
 * an index's sequence numbers. Internal to the stores.
 *
 * @module
 */
import { InvalidArgumentError, PollkitError } from '../core/errors.js';
import type { StoredJob } from '../server/jobs/stores/job-store.js';

/**
 * Parses a job a store wrote; anything else is the store's corruption, not the caller's mistake.
 *
 * @example
 * ```ts
 * const job = parseStoredJob(json, 'The Redis store');
 * ```
 */
export function parseStoredJob(json: string, store: string): StoredJob {
  const job = JSON.parse(json) as StoredJob;
  if (typeof job !== 'object' || job === null || typeof job.snapshot !== 'object') {
    throw new PollkitError(`${store} holds a malformed job`, 'store-corrupt');
  }
  return job;
}

/**
 * Refuses a transition that changes the job's id or does not raise its version.
 *
 * @example
 * ```ts
 * validateTransition(id, current, next); // throws InvalidArgumentError when next is not a successor
 * ```
 */
export function validateTransition(id: string, current: StoredJob, next: StoredJob): void {
  if (next.snapshot.id !== id) throw new InvalidArgumentError('a transition must not change the job id', 'id');
  if (!(next.snapshot.version > current.snapshot.version)) {
    throw new InvalidArgumentError(
      `a transition must raise the version (from ${current.snapshot.version}, got ${next.snapshot.version})`,
      'version',
    );
  }
}

/**
 * Page tokens of one store: `mark` (one letter) and an index sequence number in base 36, so a token of
 * another store is refused rather than misread.
 *
 * @example
 * ```ts
 * const cursors = pageTokens('r');
 * const token = cursors.encode('42'); // "r16"
 * cursors.decode(token); // "42"
 * ```
 */
export function pageTokens(mark: string): { encode(seq: string): string; decode(token: string): string } {
  const shape = new RegExp(`^${mark}[0-9a-z]{1,11}$`);
  return {
    encode: (seq) => `${mark}${Number(seq).toString(36)}`,
    decode: (token) => {
      if (typeof token !== 'string' || !shape.test(token)) {
        throw new InvalidArgumentError('pageToken is not a valid page token', 'pageToken');
      }
      return String(Number.parseInt(token.slice(1), 36));
    },
  };
}
