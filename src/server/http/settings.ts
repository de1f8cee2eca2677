/**
 * The handler's options, validated once at construction into plain settings that every route module
 * reads (internal, not exported from `pollkit/server`).
 *
 * @module
 */
import { type Clock, systemClock } from '../../core/clock.js';
import { InvalidArgumentError } from '../../core/errors.js';
import type { PollkitHandlerOptions } from './handler.js';
import {
  DEFAULT_BODY_LIMIT_BYTES,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_MAX_WAIT_SECONDS,
  DEFAULT_PREFIX,
} from '../../core/protocol.js';
import { integerAtLeast } from '../validate.js';
import { type TopicCacheSettings, resolveTopicCache } from './topic-cache.js';

/** The options of `PollkitHandler` that shape how requests are answered. */
export type SettingsOptions = Pick<
  PollkitHandlerOptions,
  | 'prefix'
  | 'baseUrl'
  | 'maxWaitSeconds'
  | 'waitJitter'
  | 'heartbeatMs'
  | 'sseRetryMs'
  | 'bodyLimitBytes'
  | 'maxJsonDepth'
  | 'maxHeldRequests'
  | 'maxHeldPerCaller'
  | 'heldRetryAfterSeconds'
  | 'maxRecordsPerFetch'
  | 'publicAppends'
  | 'autoCreateTopics'
  | 'clock'
  | 'closeGraceMs'
  | 'maxUnsentBytes'
  | 'slowReaderTimeoutMs'
  | 'topicCache'
>;

/** Validated handler settings, with every default applied. */
export interface HandlerSettings {
  readonly prefix: string;
  readonly baseUrl: string | undefined;
  readonly maxWaitMs: number;
  readonly waitJitter: number;
  readonly heartbeatMs: number;
  readonly sseRetryMs: number;
  readonly bodyLimitBytes: number;
  readonly maxJsonDepth: number;
  readonly maxHeldRequests: number;
  readonly maxHeldPerCaller: number;
  readonly heldRetryAfterSeconds: number;
  readonly maxRecordsPerFetch: number;
  readonly publicAppends: boolean;
  readonly autoCreateTopics: boolean;
  readonly clock: Clock;
  readonly closeGraceMs: number;
  readonly maxUnsentBytes: number;
  readonly slowReaderTimeoutMs: number;
  readonly topicCache: TopicCacheSettings;
}

/**
 * Validates `options` and applies the defaults; throws `InvalidArgumentError` naming the bad option.
 *
 * @example
 * ```ts
 * const settings = resolveSettings({ maxWaitSeconds: 20 });
 * console.log(settings.maxWaitMs); // 20000
 * ```
 */
export function resolveSettings(options: SettingsOptions): HandlerSettings {
  const waitJitter = options.waitJitter ?? 1 / 16;
  if (!(waitJitter >= 0 && waitJitter <= 1 / 16)) {
    throw new InvalidArgumentError(`waitJitter must be between 0 and 1/16, got ${waitJitter}`, 'waitJitter');
  }
  const maxWaitMs = nonNegative(options.maxWaitSeconds ?? DEFAULT_MAX_WAIT_SECONDS, 'maxWaitSeconds') * 1000;
  return {
    prefix: validatePrefix(options.prefix ?? DEFAULT_PREFIX),
    baseUrl: options.baseUrl === undefined ? undefined : validateBaseUrl(options.baseUrl),
    maxWaitMs,
    waitJitter,
    heartbeatMs: nonNegative(options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS, 'heartbeatMs'),
    sseRetryMs: integerAtLeast(options.sseRetryMs ?? 3000, 'sseRetryMs', 0),
    bodyLimitBytes: integerAtLeast(options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES, 'bodyLimitBytes', 0),
    maxJsonDepth: integerAtLeast(options.maxJsonDepth ?? 64, 'maxJsonDepth', 1),
    maxHeldRequests: integerAtLeast(options.maxHeldRequests ?? 10_000, 'maxHeldRequests', 0),
    maxHeldPerCaller: integerAtLeast(options.maxHeldPerCaller ?? 100, 'maxHeldPerCaller', 0),
    heldRetryAfterSeconds: integerAtLeast(options.heldRetryAfterSeconds ?? 1, 'heldRetryAfterSeconds', 0),
    maxRecordsPerFetch: integerAtLeast(options.maxRecordsPerFetch ?? 1000, 'maxRecordsPerFetch', 1),
    publicAppends: options.publicAppends ?? false,
    autoCreateTopics: options.autoCreateTopics ?? false,
    clock: options.clock ?? systemClock,
    closeGraceMs: nonNegative(options.closeGraceMs ?? 5000, 'closeGraceMs'),
    maxUnsentBytes: integerAtLeast(options.maxUnsentBytes ?? 262_144, 'maxUnsentBytes', 0),
    slowReaderTimeoutMs: integerAtLeast(options.slowReaderTimeoutMs ?? 30_000, 'slowReaderTimeoutMs', 0),
    topicCache: resolveTopicCache(options.topicCache, maxWaitMs),
  };
}

function validatePrefix(prefix: string): string {
  if (typeof prefix !== 'string' || (prefix !== '' && (!prefix.startsWith('/') || prefix.endsWith('/')))) {
    throw new InvalidArgumentError(
      `prefix must be empty or start and not end with "/", got "${String(prefix)}"`,
      'prefix',
    );
  }
  return prefix;
}

function validateBaseUrl(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch (cause) {
    throw new InvalidArgumentError(`baseUrl must be an absolute URL, got "${baseUrl}"`, 'baseUrl', { cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError(`baseUrl must be http or https, got "${baseUrl}"`, 'baseUrl');
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

function nonNegative(value: number, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidArgumentError(`${name} must be a finite number >= 0, got ${String(value)}`, name);
  }
  return value;
}
