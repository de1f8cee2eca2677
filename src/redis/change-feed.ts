/**
 * The one Redis subscription of a process. Every store write PUBLISHes a small notice inside the same
 * Lua script that commits it; each process holds a single subscriber connection that fans those
 * notices in and hands them to the local stores, which wake the local purgatory. Held requests never
 * reach Redis: it sees one connection per process, not one per waiter.
 *
 * Pub/sub over a notification stream (one XREAD BLOCK loop per process) because it adds no write per
 * change and no trimming, and a notice lost during an outage costs nothing permanent: after every
 * (re)subscribe the stores re-read the versions of what this process is interested in and announce
 * anything that moved, so waiters wake again.
 *
 * @module
 */
import type { Redis } from 'ioredis';
import { Backoff, type BackoffOptions, backoff } from '../core/backoff.js';
import { type Clock, systemClock } from '../core/clock.js';
import { keyPrefix, redisClient } from './connection.js';

/** Options for {@link RedisChangeFeed}. */
export interface RedisChangeFeedOptions {
  /** The client to copy: the feed subscribes on `redis.duplicate()`, its one extra connection. Required. */
  readonly redis: Redis;
  /** Prefix of every key and of the channel; must match the stores'. Default `"pollkit:"`. */
  readonly keyPrefix?: string;
  /** Source of randomness for reconnect jitter. Default `systemClock`. */
  readonly clock?: Clock;
  /**
   * Delays between reconnect attempts of the subscriber connection.
   * Default `{ strategy: 'full', initial: 100, factor: 2, max: 5000 }` (AWS full jitter).
   */
  readonly reconnect?: BackoffOptions;
  /** Told about connection errors, which the feed otherwise survives silently. Default: ignore them. */
  readonly onError?: (error: Error) => void;
}

/**
 * A parsed notice: a small JSON header and, for jobs, the new state when it was small enough to inline.
 *
 * @example
 * ```ts
 * import type { FeedNotice } from 'pollkit/redis';
 * const isJob = (notice: FeedNotice) => notice.header['k'] === 'j';
 * ```
 */
export interface FeedNotice {
  /** What changed: `k` is `"j"` (job) or `"t"` (topic), `o` the writing store's origin token, and the rest per kind. */
  readonly header: Readonly<Record<string, unknown>>;
  /** For jobs, the new state as JSON when it was small enough to inline; otherwise empty. */
  readonly body: string;
}

/**
 * What a store registers with {@link RedisChangeFeed.subscribe}.
 *
 * @example
 * ```ts
 * import type { FeedSubscriber } from 'pollkit/redis';
 * const logger: FeedSubscriber = { notice: ({ header }) => console.log(header), resync: () => console.log('re-check') };
 * ```
 */
export interface FeedSubscriber {
  /** Called for every notice on the channel, from any process. */
  notice(notice: FeedNotice): void;
  /** Called after each successful (re)subscribe: notices published meanwhile may be lost, re-check. */
  resync(): void;
}

/**
 * One subscriber connection per process, shared by the job and topic stores.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { RedisChangeFeed, RedisJobStore, RedisTopicStore } from 'pollkit/redis';
 * const redis = new Redis(process.env.REDIS_URL!);
 * const feed = new RedisChangeFeed({ redis });
 * const jobs = new RedisJobStore({ redis, feed });
 * const topics = new RedisTopicStore({ redis, feed });
 * ```
 */
export class RedisChangeFeed {
  /** The channel every store write publishes on. */
  readonly channel: string;
  readonly #subscriber: Redis;
  readonly #subscribers = new Set<FeedSubscriber>();
  readonly #backoff: Backoff;
  readonly #clock: Clock;
  readonly #onError: (error: Error) => void;
  #subscribed = false;
  #closed = false;
  #resubscribes = 0;

  constructor(options: RedisChangeFeedOptions) {
    const redis = redisClient(options.redis);
    const clock = options.clock ?? systemClock;
    this.#clock = clock;
    this.channel = `${keyPrefix(options.keyPrefix)}changes`;
    this.#backoff = new Backoff(backoff(options.reconnect ?? { strategy: 'full', initial: 100, max: 5000 }), () =>
      clock.random(),
    );
    this.#onError = options.onError ?? (() => undefined);
    // The feed subscribes itself after every reconnect, so it knows when the subscription is live again.
    this.#subscriber = redis.duplicate({
      autoResubscribe: false,
      lazyConnect: false,
      maxRetriesPerRequest: null,
      enableOfflineQueue: true,
      retryStrategy: () => (this.#closed ? null : Math.max(1, Math.round(this.#backoff.next()))),
    });
    this.#subscriber.on('error', (error: Error) => this.#onError(error));
    this.#subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.#dispatch(message);
    });
    this.#subscriber.on('ready', () => void this.#subscribe());
    this.#subscriber.on('close', () => {
      this.#subscribed = false;
    });
  }

  /** True while the subscription is live, so notices from other processes arrive. */
  get subscribed(): boolean {
    return this.#subscribed;
  }

  /** How many times the subscription has been (re)established; 1 after the first connect. */
  get subscriptions(): number {
    return this.#resubscribes;
  }

  /**
   * Registers a store; returns a function that removes it.
   *
   * @example
   * ```ts
   * const stop = feed.subscribe({ notice: ({ header }) => console.log(header), resync: () => undefined });
   * stop();
   * ```
   */
  subscribe(subscriber: FeedSubscriber): () => void {
    this.#subscribers.add(subscriber);
    return () => this.#subscribers.delete(subscriber);
  }

  /**
   * Resolves once the subscription is live (at once if it already is), or after `timeoutMs`.
   *
   * @example
   * ```ts
   * await feed.ready(5000);
   * ```
   */
  async ready(timeoutMs = 5000): Promise<boolean> {
    if (this.#subscribed) return true;
    return await new Promise<boolean>((resolve) => {
      const done = (value: boolean): void => {
        this.#clock.clearTimeout(timer);
        this.#subscribers.delete(probe);
        resolve(value);
      };
      // A one-off subscriber: its resync fires exactly when the subscription goes live.
      const probe: FeedSubscriber = { notice: () => undefined, resync: () => done(true) };
      const timer = this.#clock.setTimeout(() => done(false), timeoutMs, { unref: true });
      this.#subscribers.add(probe);
    });
  }

  /**
   * Drops the subscriber connection. Idempotent.
   *
   * @example
   * ```ts
   * await feed.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#subscribed = false;
    this.#subscribers.clear();
    this.#subscriber.disconnect();
  }

  async #subscribe(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#subscriber.subscribe(this.channel);
    } catch (error) {
      // The connection dropped again before SUBSCRIBE returned; the next 'ready' retries.
      this.#onError(error as Error);
      return;
    }
    this.#backoff.reset();
    this.#subscribed = true;
    this.#resubscribes++;
    for (const subscriber of [...this.#subscribers]) {
      try {
        subscriber.resync();
      } catch (error) {
        this.#onError(error as Error);
      }
    }
  }

  #dispatch(message: string): void {
    const newline = message.indexOf('\n');
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(newline === -1 ? message : message.slice(0, newline)) as Record<string, unknown>;
    } catch (error) {
      this.#onError(error as Error);
      return;
    }
    const notice: FeedNotice = { header, body: newline === -1 ? '' : message.slice(newline + 1) };
    for (const subscriber of this.#subscribers) {
      try {
        subscriber.notice(notice);
      } catch (error) {
        this.#onError(error as Error);
      }
    }
  }
}
