/**
 * What the Redis job and topic stores do alike around the change feed: attach to it (their own, or one
 * shared per process), fan changes out to local listeners, retry a re-check that the command
 * connection was not yet back for, detach on close, and remember a bounded set of recently used keys
 * that those re-checks walk. Written once so the two stores cannot drift apart on how they recover
 * from a lost subscription.
 *
 * @module
 */
import type { Clock, TimerHandle } from '../core/clock.js';
import { InvalidArgumentError } from '../core/errors.js';
import { positiveInteger, type StoreConnection } from './connection.js';
import { type FeedNotice, RedisChangeFeed } from './change-feed.js';
import { ChangeListeners } from '../server/change-listeners.js';

// How soon a re-check that found the command connection still down tries again.
const RESYNC_RETRY_MS = 250;

/** What a store does with the feed: a feed subscriber's two callbacks, with the re-check async. */
export interface StoreFeedHandlers {
  /** Handles a notice from any process. */
  notice(notice: FeedNotice): void;
  /** Re-checks everything the store remembers after the subscription was (re)established. */
  resync(): Promise<void>;
}

/** The store options {@link StoreSubscription} reads. */
export interface StoreSubscriptionOptions {
  /** The caller's feed, validated here; `undefined` for a feed of the store's own. */
  readonly feed?: RedisChangeFeed | undefined;
  /** How many recently used keys to remember. Default `10_000`. */
  readonly trackLimit?: number | undefined;
}

/**
 * A store's attachment to the change feed, its local listeners, and the bounded memory of recently used
 * keys (`Known` is what the store keeps of each) that re-checks walk. Internal to the Redis stores.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { storeConnection } from './connection.js';
 * import { StoreSubscription } from './resync.js';
 * const subscription = new StoreSubscription<string, number>(storeConnection('MyStore', { redis: new Redis() }), {}, {
 *   notice: ({ header }) => console.log(header),
 *   resync: async () => undefined,
 * });
 * subscription.onChange((change) => console.log(change));
 * await subscription.close();
 * ```
 */
export class StoreSubscription<Change, Known> {
  /** The change feed the store listens on (its own unless one was passed). */
  readonly feed: RedisChangeFeed;
  /** The recently used keys and what the store last saw of each, least recently used first. */
  readonly known = new Map<string, Known>();
  readonly #trackLimit: number;
  readonly #ownsFeed: boolean;
  readonly #unsubscribe: () => void;
  readonly #clock: Clock;
  readonly #resync: () => Promise<void>;
  readonly #listeners = new ChangeListeners<Change>();
  #closed = false;
  #retryTimer: TimerHandle | undefined;

  /**
   * Attaches to the caller's feed (validated here) or to a feed of the store's own. Validates first, so
   * a bad option never leaves a feed connection behind.
   */
  constructor(connection: StoreConnection, options: StoreSubscriptionOptions, handlers: StoreFeedHandlers) {
    const { redis, keyPrefix, clock } = connection;
    const { feed } = options;
    this.#trackLimit = positiveInteger(options.trackLimit, 10_000, 'trackLimit');
    if (feed !== undefined && !(feed instanceof RedisChangeFeed)) {
      throw new InvalidArgumentError('feed must be a RedisChangeFeed', 'feed');
    }
    this.#ownsFeed = feed === undefined;
    this.feed = feed ?? new RedisChangeFeed({ redis, keyPrefix, clock });
    if (this.feed.channel !== `${keyPrefix}changes`) {
      throw new InvalidArgumentError('feed must use the same keyPrefix as the store', 'feed');
    }
    this.#clock = clock;
    this.#resync = () => handlers.resync();
    this.#unsubscribe = this.feed.subscribe({
      notice: (notice) => handlers.notice(notice),
      resync: () => void this.#resync(),
    });
  }

  /** True once {@link StoreSubscription.close} has run; a re-check in progress stops at the next step. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Adds a local listener; returns a function that removes it. */
  onChange(listener: (change: Change) => void): () => void {
    return this.#listeners.add(listener);
  }

  /** Tells every local listener about a change. */
  emit(change: Change): void {
    this.#listeners.emit(change);
  }

  /** Schedules the re-check again, once, for when a command failed during it. */
  // The subscriber can be back before the command connection is; try again until the re-check runs.
  retryResync(): void {
    if (this.#closed || this.#retryTimer !== undefined) return;
    this.#retryTimer = this.#clock.setTimeout(
      () => {
        this.#retryTimer = undefined;
        if (this.feed.subscribed) void this.#resync();
      },
      RESYNC_RETRY_MS,
      { unref: true },
    );
  }

  /** Detaches from the feed, forgets listeners and keys, and closes the feed if the store made it. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    this.#clock.clearTimeout(this.#retryTimer);
    this.#listeners.clear();
    this.known.clear();
    if (this.#ownsFeed) await this.feed.close();
  }

  /**
   * Records `value` as the most recently used entry for `key`, unless `keepExisting` prefers the entry
   * already there (which then counts as used); past `trackLimit` entries the least recently used goes.
   */
  remember(key: string, value: Known, keepExisting: (existing: Known) => boolean): void {
    const known = this.known;
    const existing = known.get(key);
    if (existing !== undefined) {
      // Delete and set again: a Map iterates in insertion order, so the first key is the least recent.
      known.delete(key);
      if (keepExisting(existing)) {
        known.set(key, existing);
        return;
      }
    }
    known.set(key, value);
    if (known.size > this.#trackLimit) known.delete(known.keys().next().value!);
  }
}
