/**
 * The named topics of a server: made on first use, names validated, retention applied to every
 * topic, and one purgatory holding every topic's waiting reads, with a hint per watched topic that the
 * store's change notifications keep fresh.
 *
 * @module
 */
import { type Clock, systemClock } from '../../core/clock.js';
import { InvalidArgumentError, OverloadedError, PollkitError } from '../../core/errors.js';
import { DelayedOperationPurgatory } from '../purgatory/purgatory.js';
import { integerAtLeast } from '../validate.js';
import { MemoryTopicStore } from './stores/memory-topic-store.js';
import type { TopicChange, TopicRetention, TopicStore } from './stores/topic-store.js';
import { Topic, type TopicHost, topicKey } from './topic.js';
import { Hint } from './topic-fetch.js';

/** Topic names: what fits in a URL path segment without escaping. */
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,200}$/;

/**
 * Retention of every topic of a registry; records beyond either limit are dropped from the head.
 *
 * @example
 * ```ts
 * import type { TopicRetentionOptions } from 'pollkit/server';
 * const retention: TopicRetentionOptions = { maxRecords: 10_000, maxAgeMs: 24 * 3_600_000 };
 * ```
 */
export interface TopicRetentionOptions {
  /** Records kept per topic. Default: unlimited. */
  readonly maxRecords?: number;
  /** How long a record is kept, in milliseconds: it is dropped once older than this. Default: unlimited. */
  readonly maxAgeMs?: number;
}

/**
 * Options for {@link TopicRegistry}.
 *
 * @example
 * ```ts
 * import { TopicRegistry } from 'pollkit/server';
 * const topics = new TopicRegistry({ retention: { maxRecords: 1000 }, maxTopics: 100 });
 * ```
 */
export interface TopicRegistryOptions {
  /** Time and timers. Default `systemClock`. */
  readonly clock?: Clock;
  /** Where logs live. Default: a new {@link MemoryTopicStore}, closed with the registry. */
  readonly store?: TopicStore;
  /** Holds waiting reads. Default: a new purgatory on `clock`, shut down with the registry. */
  readonly purgatory?: DelayedOperationPurgatory;
  /** Retention applied to every topic. Default: keep everything. */
  readonly retention?: TopicRetentionOptions;
  /** `limit` of a read that does not give one. Default 100. */
  readonly defaultLimit?: number;
  /** The largest `limit` (and subscribe `bufferSize`) accepted. Default 1000. */
  readonly maxLimit?: number;
  /** Topics this registry creates before {@link TopicRegistry.topic} rejects with {@link OverloadedError}. Default 10,000. */
  readonly maxTopics?: number;
  /** How long one read inside {@link Topic.subscribe} is held before it is renewed, in milliseconds. Default 30,000. */
  readonly subscribeWaitMs?: number;
}

/**
 * The named topics of a server: creates them on first use, validates names, applies retention, and
 * answers held reads through one purgatory.
 *
 * @example
 * ```ts
 * import { TopicRegistry } from 'pollkit/server';
 * const topics = new TopicRegistry({ retention: { maxRecords: 10_000 } });
 * await topics.topic('orders').append({ id: 1 });
 * console.log(topics.get('orders')?.name, topics.get('nope')); // "orders" undefined
 * ```
 */
export class TopicRegistry {
  readonly #topics = new Map<string, Topic>();
  readonly #hints = new Map<string, Hint>();
  readonly #host: TopicHost;
  readonly #clock: Clock;
  readonly #store: TopicStore;
  readonly #ownsStore: boolean;
  readonly #purgatory: DelayedOperationPurgatory;
  readonly #ownsPurgatory: boolean;
  readonly #maxTopics: number;
  readonly #maxRecords: number | undefined;
  readonly #maxAgeMs: number | undefined;
  readonly #unsubscribe: () => void;
  #closed = false;
  #closing: Promise<void> | undefined;
  #waiting = 0;
  #drained: (() => void) | undefined;

  constructor(options: TopicRegistryOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    const maxLimit = integerAtLeast(options.maxLimit ?? 1000, 'maxLimit', 1);
    const defaultLimit = integerAtLeast(options.defaultLimit ?? Math.min(100, maxLimit), 'defaultLimit', 1);
    if (defaultLimit > maxLimit) {
      throw new InvalidArgumentError(
        `defaultLimit (${defaultLimit}) must not exceed maxLimit (${maxLimit})`,
        'defaultLimit',
      );
    }
    this.#maxTopics = integerAtLeast(options.maxTopics ?? 10_000, 'maxTopics', 1);
    const subscribeWaitMs = options.subscribeWaitMs ?? 30_000;
    if (typeof subscribeWaitMs !== 'number' || !Number.isFinite(subscribeWaitMs) || subscribeWaitMs <= 0) {
      throw new InvalidArgumentError(
        `subscribeWaitMs must be a finite number > 0, got ${String(subscribeWaitMs)}`,
        'subscribeWaitMs',
      );
    }
    const { maxRecords, maxAgeMs } = options.retention ?? {};
    if (maxRecords !== undefined) integerAtLeast(maxRecords, 'retention.maxRecords', 1);
    if (maxAgeMs !== undefined && !(typeof maxAgeMs === 'number' && maxAgeMs > 0)) {
      throw new InvalidArgumentError(
        `retention.maxAgeMs must be a number > 0, got ${String(maxAgeMs)}`,
        'retention.maxAgeMs',
      );
    }
    this.#maxRecords = maxRecords;
    this.#maxAgeMs = maxAgeMs !== undefined && Number.isFinite(maxAgeMs) ? maxAgeMs : undefined;
    this.#ownsStore = options.store === undefined;
    this.#store = options.store ?? new MemoryTopicStore();
    this.#ownsPurgatory = options.purgatory === undefined;
    this.#purgatory = options.purgatory ?? new DelayedOperationPurgatory({ clock: this.#clock, name: 'topics' });
    // The host is the one window Topic instances have into the registry's state.
    const isClosed = (): boolean => this.#closed;
    this.#host = {
      clock: this.#clock,
      store: this.#store,
      purgatory: this.#purgatory,
      defaultLimit,
      maxLimit,
      subscribeWaitMs,
      answersFromHints: this.#maxAgeMs === undefined,
      get closed() {
        return isClosed();
      },
      retention: () => this.#retention(),
      watch: (name) => this.#watch(name),
      unwatch: (name, hint) => this.#unwatch(name, hint),
      assertOpen: () => this.#assertOpen(),
    };
    this.#unsubscribe = this.#store.onChange((change) => this.#onStoreChange(change));
  }

  /**
   * The topic named `name`, created on first use.
   *
   * @throws InvalidArgumentError (`name`) for a name outside `/^[A-Za-z0-9._-]{1,200}$/`;
   *   {@link OverloadedError} when `maxTopics` topics exist.
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * const chat = new TopicRegistry().topic<string>('chat.room-1');
   * ```
   */
  topic<V = unknown>(name: string): Topic<V> {
    const existing = this.#topics.get(name);
    if (existing !== undefined) return existing as Topic<V>;
    if (!isTopicName(name)) {
      throw new InvalidArgumentError(
        `topic name must be 1 to 200 letters, digits, '.', '_' or '-', got ${JSON.stringify(name)}`,
        'name',
      );
    }
    this.#assertOpen();
    if (this.#topics.size >= this.#maxTopics) {
      throw new OverloadedError(`Too many topics (${this.#maxTopics})`);
    }
    const topic = new Topic<V>(this.#host, name);
    this.#topics.set(name, topic as Topic);
    return topic;
  }

  /**
   * The topic named `name` if this registry has made it, else `undefined` (never creates one).
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * console.log(new TopicRegistry().get('orders')); // undefined
   * ```
   */
  get<V = unknown>(name: string): Topic<V> | undefined {
    return this.#topics.get(name) as Topic<V> | undefined;
  }

  /**
   * The names of the topics this registry has made, in creation order.
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * const topics = new TopicRegistry();
   * topics.topic('a');
   * console.log(topics.names()); // ['a']
   * ```
   */
  names(): string[] {
    return [...this.#topics.keys()];
  }

  /**
   * Stops the registry: appends and resets reject with code `shutting-down`, every held read answers
   * with the records that exist, and subscribers end. Idempotent.
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * const topics = new TopicRegistry();
   * await topics.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    for (const hint of this.#hints.values()) hint.closed = true;
    for (const name of [...this.#hints.keys()]) this.#purgatory.checkAndComplete(topicKey(name));
    if (this.#waiting > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
    this.#unsubscribe();
    if (this.#ownsPurgatory) this.#purgatory.shutdown();
    if (this.#ownsStore) await this.#store.close();
  }

  #onStoreChange(change: TopicChange): void {
    const hint = this.#hints.get(change.topic);
    if (hint === undefined) return;
    hint.noteChange(change);
    this.#purgatory.checkAndComplete(topicKey(change.topic));
  }

  #watch(name: string): Hint {
    let hint = this.#hints.get(name);
    if (hint === undefined) {
      hint = new Hint(name, this.#host, this.#closed, [topicKey(name)]);
      this.#hints.set(name, hint);
    }
    hint.refs++;
    this.#waiting++;
    return hint;
  }

  #unwatch(name: string, hint: Hint): void {
    if (--hint.refs === 0 && this.#hints.get(name) === hint) this.#hints.delete(name);
    if (--this.#waiting === 0 && this.#drained !== undefined) {
      const resolve = this.#drained;
      this.#drained = undefined;
      resolve();
    }
  }

  #retention(): TopicRetention {
    const minTimestampMs = this.#maxAgeMs === undefined ? undefined : this.#clock.wallNow() - this.#maxAgeMs;
    return {
      ...(this.#maxRecords === undefined ? {} : { maxRecords: this.#maxRecords }),
      ...(minTimestampMs === undefined ? {} : { minTimestampMs }),
    };
  }

  #assertOpen(): void {
    if (this.#closed)
      throw new PollkitError('The topic registry is shutting down', 'shutting-down', { retryable: true });
  }
}

/**
 * True for a valid topic name: 1 to 200 characters of letters, digits, `.`, `_` and `-`.
 *
 * @example
 * ```ts
 * import { isTopicName } from 'pollkit/server';
 * console.log(isTopicName('orders.eu-1'), isTopicName('a/b')); // true false
 * ```
 */
export function isTopicName(name: unknown): name is string {
  return typeof name === 'string' && TOPIC_NAME.test(name);
}
