/**
 * Validation of numeric options, shared by the server layer's constructors (internal).
 *
 * @module
 */
import { InvalidArgumentError } from '../core/errors.js';

/**
 * Returns `value` when it is a safe integer of at least `min`; otherwise throws an
 * {@link InvalidArgumentError} naming the option.
 *
 * @example
 * ```ts
 * const size = integerAtLeast(options.resumeBatchSize ?? 256, 'resumeBatchSize', 1);
 * ```
 */
export function integerAtLeast(value: number, name: string, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got ${String(value)}`, name);
  }
  return value;
}
