/**
 * Yielding to the event loop (internal to the server layer).
 *
 * @module
 */
import type { Clock } from '../../core/clock.js';

type Immediate = (callback: () => void) => unknown;

/**
 * Runs `callback` on a later event-loop turn: with `setImmediate` where the runtime has one (a yield,
 * not a delay, so not the injected clock's job), otherwise with the clock's zero-delay timer (web-standard
 * runtimes such as Workers and Deno).
 *
 * @example
 * ```ts
 * import { systemClock } from '../../core/clock.js';
 * onLaterTurn(systemClock, () => console.log('after the current turn'));
 * ```
 */
export function onLaterTurn(clock: Clock, callback: () => void): void {
  const immediate = (globalThis as { setImmediate?: Immediate }).setImmediate;
  if (typeof immediate === 'function') immediate(callback);
  else clock.setTimeout(callback, 0, { unref: true });
}
