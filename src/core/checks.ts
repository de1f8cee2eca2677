/**
 * Option checks with one message format, shared by the core and the client so that a broken rule reads
 * the same wherever it is broken, and a browser bundle carries one message template instead of one per
 * option. Internal: not re-exported from the core's index.
 *
 * @module
 * @internal
 */
import { InvalidArgumentError } from './errors.js';

/**
 * Throws {@link InvalidArgumentError} for option `name` of `owner`: `<owner> option "<name>" must be
 * <rule>, got <value>`.
 *
 * @internal
 */
export function invalidOption(owner: string, name: string, rule: string, value: unknown): never {
  throw new InvalidArgumentError(`${owner} option "${name}" must be ${rule}, got ${String(value)}`, name);
}

/**
 * What a number must be besides at least `min`: `finite`, a (safe) `integer`, `above` `min` rather
 * than equal to it, or any number (`Infinity` too).
 *
 * @internal
 */
export type NumberKind = 'number' | 'finite' | 'integer' | 'above';

/**
 * Throws unless `value` is undefined or a number of `kind` from `min` up to `max`.
 *
 * @internal
 */
export function checkNumber(
  owner: string,
  name: string,
  value: unknown,
  min: number,
  kind: NumberKind = 'number',
  max = Infinity,
): void {
  if (
    value !== undefined &&
    (typeof value !== 'number' ||
      !(kind === 'above' ? value > min : value >= min) ||
      !(value <= max) ||
      (kind === 'finite' && !Number.isFinite(value)) ||
      (kind === 'integer' && !Number.isSafeInteger(value)))
  ) {
    invalidOption(
      owner,
      name,
      `${kind === 'integer' ? 'an integer' : kind === 'finite' ? 'a finite number' : 'a number'} ${kind === 'above' ? '>' : '>='} ${min}${max < Infinity ? ` and <= ${max}` : ''}`,
      value,
    );
  }
}

/**
 * Throws unless `value` is undefined or a function.
 *
 * @internal
 */
export function checkFunction(owner: string, name: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'function') invalidOption(owner, name, 'a function', value);
}
