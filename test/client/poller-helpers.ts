/**
 * Test helpers shared by the ShortPoller and LongPoller suites: both pollers emit the same lifecycle
 * events, so one recorder serves both.
 */
import type { PollerLifecycleEvents } from '../../src/client/poller-lifecycle.js';
import type { RetryInfo, ScheduleInfo } from '../../src/client/poller-support.js';
import type { Emitter } from '../../src/core/emitter.js';
import type { ManualClock } from '../../src/core/clock.js';

/** A poll function that always fails with a retryable error (a `TypeError`, as `fetch` throws offline). */
export async function down(): Promise<never> {
  throw new TypeError('down');
}

/** Records every `schedule` event of a poller. */
export function schedules(poller: object): ScheduleInfo[] {
  const seen: ScheduleInfo[] = [];
  (poller as Emitter<PollerLifecycleEvents>).on('schedule', (info: ScheduleInfo) => seen.push(info));
  return seen;
}

/** Records `[reason, delayMs]` of every `error` event of a poller. */
export function retryDelays(poller: object): [string, number][] {
  const seen: [string, number][] = [];
  (poller as Emitter<PollerLifecycleEvents>).on('error', (_error: unknown, info: RetryInfo) =>
    seen.push([info.reason, info.delayMs]),
  );
  return seen;
}

/** Calls `result()` (which starts the poller), then runs the clock for `ms`; returns the result still unawaited. */
export async function resultAfter<R>(
  poller: { result(): Promise<R> },
  clock: ManualClock,
  ms: number,
): Promise<{ result: Promise<R> }> {
  const result = poller.result();
  await clock.advanceAsync(ms);
  return { result };
}

/** Starts a poller, runs the clock for `ms` and stops it; returns `[reason, delayMs]` of its retries meanwhile. */
export async function retriesWithin(
  poller: { start(): unknown; stop(): void },
  clock: ManualClock,
  ms: number,
): Promise<[string, number][]> {
  const delays = retryDelays(poller);
  poller.start();
  await clock.advanceAsync(ms);
  poller.stop();
  return delays;
}

/** Iterates `iterable` into `seen` in the background; resolves with the error the loop threw, if any. */
export function consume<T>(iterable: AsyncIterable<T>, seen: T[]): Promise<unknown> {
  return (async () => {
    for await (const value of iterable) seen.push(value);
  })().then(
    () => undefined,
    (error: unknown) => error,
  );
}
