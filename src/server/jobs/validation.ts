/**
 * Checks shared by the job registry and the in-process runner: type names, progress reports and
 * durations, each refusal an `InvalidArgumentError` naming the option.
 *
 * @module
 */
import { InvalidArgumentError } from '../../core/errors.js';
import type { JobProgress } from '../../core/protocol.js';

const TYPE_NAME = /^[A-Za-z0-9._:/-]{1,200}$/;

/** Throws unless `type` is 1 to 200 characters of letters, digits and `. _ : / -`. */
export function validateTypeName(type: string): void {
  if (typeof type !== 'string' || !TYPE_NAME.test(type)) {
    throw new InvalidArgumentError(
      `type must be 1 to 200 characters of letters, digits and . _ : / -, got ${JSON.stringify(type)}`,
      'type',
    );
  }
}

/** Throws unless `progress` is an object with an optional percent in 0–100 and an optional string message. */
export function validateProgress(progress: JobProgress): void {
  if (typeof progress !== 'object' || progress === null) {
    throw new InvalidArgumentError('progress must be an object', 'progress');
  }
  const { percent, message } = progress;
  if (percent !== undefined && !(typeof percent === 'number' && percent >= 0 && percent <= 100)) {
    throw new InvalidArgumentError(
      `progress.percent must be a number from 0 to 100, got ${String(percent)}`,
      'progress',
    );
  }
  if (message !== undefined && typeof message !== 'string') {
    throw new InvalidArgumentError('progress.message must be a string', 'progress');
  }
}

/** A time limit: milliseconds > 0 or `Infinity` (zero would fire before the handler even starts). */
export function positiveDuration(value: number, name: string): number {
  if (typeof value !== 'number' || !(value > 0)) {
    throw new InvalidArgumentError(
      `${name} must be a number of milliseconds > 0 (or Infinity), got ${String(value)}`,
      name,
    );
  }
  return value;
}

/** A duration >= 0, finite unless `allowInfinity`. */
export function duration(value: number, name: string, allowInfinity: boolean, unit = 'milliseconds'): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || (!allowInfinity && !Number.isFinite(value))) {
    throw new InvalidArgumentError(
      `${name} must be a number of ${unit} >= 0${allowInfinity ? ' (or Infinity)' : ''}, got ${String(value)}`,
      name,
    );
  }
  return value;
}
