/**
 * How the Redis stores talk to the caller's client without ever hanging: a command is refused at once
 * while the client is known to be reconnecting, and otherwise raced against a deadline, because
 * ioredis queues commands while offline and a held request must answer at its timeout, not when Redis
 * comes back. Connection failures become one typed, retryable error the HTTP layer maps to 503.
 *
 * @module
 */
import type { Redis } from 'ioredis';
import { type Clock, type TimerHandle, systemClock } from '../core/clock.js';
import { InvalidArgumentError, OverloadedError, type PollkitErrorOptions, PollkitError } from '../core/errors.js';

/**
 * The shared store could not be reached (Redis down, restarting, loading its data set, or too slow to
 * answer). Its `code` is `"overloaded"`, so servers answer 503 with `Retry-After`; it is retryable.
 * A write that timed out may still have been applied: retry it idempotently (jobs through their
 * version, submissions through an idempotency key).
 *
 * @example
 * ```ts
 * import { StoreUnavailableError } from 'pollkit/redis';
 * try {
 *   await registry.submit('render', {});
 * } catch (error) {
 *   if (StoreUnavailableError.is(error)) console.log('retry in', error.retryAfterMs, 'ms');
 * }
 * ```
 */
export class StoreUnavailableError extends OverloadedError {
  constructor(
    message = 'The Redis store is unavailable',
    options: PollkitErrorOptions & { retryAfterMs?: number } = {},
  ) {
    super(message, { retryAfterMs: 1000, ...options, retryable: true });
  }
  /** Cross-realm guard. @example `StoreUnavailableError.is(error)` */
  static override is(value: unknown): value is StoreUnavailableError {
    return PollkitError.is(value) && value.code === 'overloaded' && value.name === 'StoreUnavailableError';
  }
}

// Answers Redis gives while it cannot serve yet; anything else the server says is a real error.
const TRANSIENT_REPLY = /^(LOADING|READONLY|MASTERDOWN|BUSY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS)\b/;

/**
 * Maps a client or server failure to {@link StoreUnavailableError} unless it is a genuine reply error.
 *
 * @example
 * ```ts
 * const error = toStoreError(new Error('connect ECONNREFUSED')); // a StoreUnavailableError
 * ```
 */
export function toStoreError(error: unknown): unknown {
  if (PollkitError.is(error)) return error;
  if (error instanceof Error && error.name === 'ReplyError' && !TRANSIENT_REPLY.test(error.message)) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return new StoreUnavailableError(`The Redis store is unavailable: ${detail}`, { cause: error });
}

/** Options shared by the Redis stores' command guard. */
export interface CommandGuardOptions {
  readonly redis: Redis;
  readonly clock: Clock;
  readonly commandTimeoutMs: number;
}

/**
 * Runs store commands with fail-fast and a deadline. Internal to the Redis stores.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { systemClock } from 'pollkit';
 * import { CommandGuard } from './connection.js';
 * const guard = new CommandGuard({ redis: new Redis(), clock: systemClock, commandTimeoutMs: 2000 });
 * await guard.run((redis) => redis.ping());
 * ```
 */
export class CommandGuard {
  readonly #redis: Redis;
  readonly #clock: Clock;
  readonly #timeoutMs: number;

  constructor(options: CommandGuardOptions) {
    this.#redis = options.redis;
    this.#clock = options.clock;
    this.#timeoutMs = options.commandTimeoutMs;
  }

  /** False while the client is between connections, when every command would only queue. */
  get available(): boolean {
    const status = this.#redis.status;
    return status !== 'reconnecting' && status !== 'close' && status !== 'end';
  }

  /** Runs `operation` on the client; rejects with {@link StoreUnavailableError} when Redis cannot answer in time. */
  async run<T>(operation: (redis: Redis) => Promise<T>): Promise<T> {
    if (!this.available) throw new StoreUnavailableError(`The Redis store is unavailable (${this.#redis.status})`);
    let timer: TimerHandle | undefined;
    let pending: Promise<T>;
    try {
      pending = operation(this.#redis);
    } catch (error) {
      throw toStoreError(error);
    }
    const deadline = new Promise<never>((_, reject) => {
      timer = this.#clock.setTimeout(
        () => reject(new StoreUnavailableError(`Redis did not answer within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
        { unref: true },
      );
    });
    try {
      return await Promise.race([pending, deadline]);
    } catch (error) {
      throw toStoreError(error);
    } finally {
      this.#clock.clearTimeout(timer);
      // The command may still settle after the deadline; its late rejection must not go unhandled.
      pending.catch(() => undefined);
    }
  }
}

/**
 * Validates a duration option in milliseconds.
 *
 * @example
 * ```ts
 * const timeoutMs = positiveMs(options.commandTimeoutMs, 2000, 'commandTimeoutMs');
 * ```
 */
export function positiveMs(value: number | undefined, fallback: number, name: string): number {
  const resolved = value ?? fallback;
  if (typeof resolved !== 'number' || !Number.isFinite(resolved) || resolved <= 0) {
    throw new InvalidArgumentError(`${name} must be a finite number of milliseconds > 0, got ${String(value)}`, name);
  }
  return resolved;
}

/**
 * Validates a count option.
 *
 * @example
 * ```ts
 * const limit = positiveInteger(options.trackLimit, 10_000, 'trackLimit');
 * ```
 */
export function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  const resolved = value ?? fallback;
  if (!Number.isInteger(resolved) || resolved < 1) {
    throw new InvalidArgumentError(`${name} must be an integer >= 1, got ${String(value)}`, name);
  }
  return resolved;
}

/**
 * Validates a key prefix: non-empty, so the stores' keys cannot collide with unrelated ones by accident.
 *
 * @example
 * ```ts
 * const prefix = keyPrefix(options.keyPrefix); // "pollkit:" by default
 * ```
 */
export function keyPrefix(value: string | undefined): string {
  const resolved = value ?? 'pollkit:';
  if (typeof resolved !== 'string' || resolved.length === 0) {
    throw new InvalidArgumentError('keyPrefix must be a non-empty string', 'keyPrefix');
  }
  return resolved;
}

/**
 * Validates the `redis` option: anything with the ioredis command methods the stores call.
 *
 * @example
 * ```ts
 * const redis = redisClient(options.redis); // throws InvalidArgumentError for anything else
 * ```
 */
export function redisClient(value: unknown, name = 'redis'): Redis {
  const client = value as Partial<Redis> | undefined;
  if (
    typeof client !== 'object' ||
    client === null ||
    typeof client.evalsha !== 'function' ||
    typeof client.duplicate !== 'function'
  ) {
    throw new InvalidArgumentError(`${name} must be an ioredis client (new Redis(...))`, name);
  }
  return value as Redis;
}

/** The options every Redis store takes for its command connection. */
export interface StoreConnectionOptions {
  /** The ioredis client for commands; the store never closes it. Required. */
  readonly redis: Redis;
  /** Prefix of every key. Default `"pollkit:"`. */
  readonly keyPrefix?: string;
  /** Time for command deadlines. Default `systemClock`. */
  readonly clock?: Clock;
  /** How long a command may take before it fails with {@link StoreUnavailableError}. Default `2000`. */
  readonly commandTimeoutMs?: number;
}

/** What a Redis store builds first from its options: the validated client, clock, key prefix and command guard. */
export interface StoreConnection {
  /** The caller's client. */
  readonly redis: Redis;
  /** The store's clock. */
  readonly clock: Clock;
  /** The validated key prefix. */
  readonly keyPrefix: string;
  /** Runs the store's commands with fail-fast and a deadline. */
  readonly guard: CommandGuard;
}

/**
 * Validates the connection options a Redis store shares with the others and builds its command guard.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * const { guard, keyPrefix } = storeConnection('RedisJobStore', { redis: new Redis() });
 * ```
 */
export function storeConnection(owner: string, options: StoreConnectionOptions): StoreConnection {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgumentError(`${owner} needs options with a redis client`, 'options');
  }
  const redis = redisClient(options.redis);
  const clock = options.clock ?? systemClock;
  const prefix = keyPrefix(options.keyPrefix);
  const commandTimeoutMs = positiveMs(options.commandTimeoutMs, 2000, 'commandTimeoutMs');
  return { redis, clock, keyPrefix: prefix, guard: new CommandGuard({ redis, clock, commandTimeoutMs }) };
}
