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
import { RunWallClock } from '../run-wall-clock.js';

/** Topic names: what fits in a URL path segment without escaping. */
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,200}$/;

/**
 * Retention of every topic of a registry; records beyond either limit are dropped from the head.
 * Each limit has its own default, so that no topic grows without bound unless asked to; pass
 * `Infinity` to lift one.
 *
 * @example
 * ```ts
 * import type { TopicRetentionOptions } from 'pollkit/server';
 * const retention: TopicRetentionOptions = { maxRecords: 100_000, maxAgeMs: 7 * 24 * 3_600_000 };
 * ```
 */
export interface TopicRetentionOptions {
  /** Records kept per topic (an integer ≥ 1, or `Infinity`). Default 10,000. */
  readonly maxRecords?: number;
  /** How long a record is kept, in milliseconds: it is dropped once older than this. Default 86,400,000 (24 h). */
  readonly maxAgeMs?: number;
}

/**
 * Options of {@link TopicRegistry.topic}.
 *
 * @example
 * ```ts
 * import type { TopicOptions } from 'pollkit/server';
 * const options: TopicOptions = { owner: 'tenant-7' };
 * ```
 */
export interface TopicOptions {
  /**
   * Who creates the topic, if this call creates it: the topic counts against that owner's
   * `maxTopicsPerOwner`, and (through the HTTP handler) only that owner may delete it unless the
   * `authorize` hook says otherwise. Ignored for a topic that exists. Default: nobody (a trusted caller).
   */
  readonly owner?: string;
}

/**
 * Options of {@link TopicRegistry.delete}.
 *
 * @example
 * ```ts
 * import type { TopicDeleteOptions } from 'pollkit/server';
 * const options: TopicDeleteOptions = { owner: 'tenant-7' };
 * ```
 */
export interface TopicDeleteOptions {
  /**
   * Delete only if this owner created the topic in this registry, else reject with code `forbidden`.
   * Default: delete whoever created it (a trusted caller).
   */
  readonly owner?: string;
}

/** Default retention: a day of records, at most 10,000 per topic. */
const DEFAULT_MAX_RECORDS = 10_000;
const DEFAULT_MAX_AGE_MS = 86_400_000;

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
  /** Retention applied to every topic. Default `{ maxRecords: 10_000, maxAgeMs: 86_400_000 }` (24 h). */
  readonly retention?: TopicRetentionOptions;
  /** `limit` of a read that does not give one. Default 100. */
  readonly defaultLimit?: number;
  /** The largest `limit` (and subscribe `bufferSize`) accepted. Default 1000. */
  readonly maxLimit?: number;
  /** Topics this registry creates before {@link TopicRegistry.topic} rejects with {@link OverloadedError}. Default 10,000. */
  readonly maxTopics?: number;
  /**
   * Topics one owner ({@link TopicOptions.owner}) may have created in this registry at once; past it
   * {@link TopicRegistry.topic} rejects with code `too-many-topics` (HTTP 403) until the owner deletes
   * one. Keeps one tenant from using up `maxTopics` for everyone. Default 1000.
   */
  readonly maxTopicsPerOwner?: number;
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
  readonly #maxTopicsPerOwner: number;
  /** Who created each owned topic, and how many live topics each owner created. */
  readonly #creators = new Map<string, string>();
  readonly #created = new Map<string, number>();
  readonly #maxRecords: number | undefined;
  readonly #maxAgeMs: number | undefined;
  readonly #unsubscribe: () => void;
  #closed = false;
  #closing: Promise<void> | undefined;
  #waiting = 0;
  #drained: (() => void) | undefined;
  /** Asked by every woken reader whether its answer's oldest record is still kept: once per run. */
  readonly #runClock: RunWallClock;

  constructor(options: TopicRegistryOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#runClock = new RunWallClock(this.#clock);
    const maxLimit = integerAtLeast(options.maxLimit ?? 1000, 'maxLimit', 1);
    const defaultLimit = integerAtLeast(options.defaultLimit ?? Math.min(100, maxLimit), 'defaultLimit', 1);
    if (defaultLimit > maxLimit) {
      throw new InvalidArgumentError(
        `defaultLimit (${defaultLimit}) must not exceed maxLimit (${maxLimit})`,
        'defaultLimit',
      );
    }
    this.#maxTopics = integerAtLeast(options.maxTopics ?? 10_000, 'maxTopics', 1);
    this.#maxTopicsPerOwner = integerAtLeast(options.maxTopicsPerOwner ?? 1000, 'maxTopicsPerOwner', 1);
    const subscribeWaitMs = options.subscribeWaitMs ?? 30_000;
    if (typeof subscribeWaitMs !== 'number' || !Number.isFinite(subscribeWaitMs) || subscribeWaitMs <= 0) {
      throw new InvalidArgumentError(
        `subscribeWaitMs must be a finite number > 0, got ${String(subscribeWaitMs)}`,
        'subscribeWaitMs',
      );
    }
    const { maxRecords = DEFAULT_MAX_RECORDS, maxAgeMs = DEFAULT_MAX_AGE_MS } = options.retention ?? {};
    if (maxRecords !== Number.POSITIVE_INFINITY) integerAtLeast(maxRecords, 'retention.maxRecords', 1);
    if (!(typeof maxAgeMs === 'number' && maxAgeMs > 0)) {
      throw new InvalidArgumentError(
        `retention.maxAgeMs must be a number > 0, got ${String(maxAgeMs)}`,
        'retention.maxAgeMs',
      );
    }
    this.#maxRecords = Number.isFinite(maxRecords) ? maxRecords : undefined;
    this.#maxAgeMs = Number.isFinite(maxAgeMs) ? maxAgeMs : undefined;
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
      oldestKeptMs: () => this.#oldestKeptMs(),
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
   * The topic named `name`, created on first use (by `options.owner`, when given).
   *
   * @throws InvalidArgumentError (`name`) for a name outside `/^[A-Za-z0-9._-]{1,200}$/`;
   *   {@link OverloadedError} when `maxTopics` topics exist; PollkitError `too-many-topics` when the
   *   owner already created `maxTopicsPerOwner` of them.
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * const topics = new TopicRegistry();
   * const chat = topics.topic<string>('chat.room-1');
   * const own = topics.topic('tenant-7.events', { owner: 'tenant-7' });
   * ```
   */
  topic<V = unknown>(name: string, options: TopicOptions = {}): Topic<V> {
    const existing = this.#topics.get(name);
    if (existing !== undefined) return existing as Topic<V>;
    if (!isTopicName(name)) {
      throw new InvalidArgumentError(
        `topic name must be 1 to 200 letters, digits, '.', '_' or '-', got ${JSON.stringify(name)}`,
        'name',
      );
    }
    this.#assertOpen();
    const { owner } = options;
    if (owner !== undefined && typeof owner !== 'string') {
      throw new InvalidArgumentError('owner must be a string', 'owner');
    }
    const created = owner === undefined ? 0 : (this.#created.get(owner) ?? 0);
    if (created >= this.#maxTopicsPerOwner) {
      throw new PollkitError(
        `This caller already created ${created} topics; delete one to create another`,
        'too-many-topics',
      );
    }
    if (this.#topics.size >= this.#maxTopics) {
      throw new OverloadedError(`Too many topics (${this.#maxTopics})`);
    }
    const topic = new Topic<V>(this.#host, name);
    this.#topics.set(name, topic as Topic);
    if (owner !== undefined) {
      this.#creators.set(name, owner);
      this.#created.set(owner, created + 1);
    }
    return topic;
  }

  /**
   * Deletes a topic: its log goes from the store (announced to every process sharing it), held reads
   * and subscribers of it end with code `topic-not-found`, the `Topic` object stops working, and the
   * name is free to be created again, empty, in a new epoch. Resolves to whether there was a topic.
   *
   * @throws PollkitError `forbidden` when `options.owner` did not create the topic.
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * const topics = new TopicRegistry();
   * await topics.topic('scratch').append('x');
   * console.log(await topics.delete('scratch'), topics.get('scratch')); // true undefined
   * ```
   */
  async delete(name: string, options: TopicDeleteOptions = {}): Promise<boolean> {
    this.#assertOpen();
    if (!isTopicName(name)) return false;
    const known = this.#topics.has(name);
    if (options.owner !== undefined && this.#creators.get(name) !== options.owner) {
      if (!known) return false;
      throw new PollkitError(`Only the caller that created topic ${name} may delete it`, 'forbidden');
    }
    this.#forget(name);
    const removed = await this.#store.delete(name);
    return removed || known;
  }

  /**
   * The owner that created `name` in this registry (see {@link TopicOptions.owner}), if any.
   *
   * @example
   * ```ts
   * import { TopicRegistry } from 'pollkit/server';
   * const topics = new TopicRegistry();
   * topics.topic('t', { owner: 'alice' });
   * console.log(topics.creatorOf('t')); // "alice"
   * ```
   */
  creatorOf(name: string): string | undefined {
    return this.#creators.get(name);
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

  /** Drops a deleted topic here: frees its name and its owner's count, and ends its waits. */
  #forget(name: string): void {
    const topic = this.#topics.get(name);
    if (topic === undefined) return;
    this.#topics.delete(name);
    const owner = this.#creators.get(name);
    if (owner !== undefined) {
      this.#creators.delete(name);
      const count = (this.#created.get(owner) ?? 1) - 1;
      if (count <= 0) this.#created.delete(owner);
      else this.#created.set(owner, count);
    }
    topic.markDeleted();
    // Its held reads end through their hint, which is retired: a topic made again under the name
    // starts from a hint of its own.
    const hint = this.#hints.get(name);
    if (hint !== undefined) {
      hint.deleted = true;
      this.#hints.delete(name);
    }
    this.#purgatory.checkAndComplete(topicKey(name));
  }

  #onStoreChange(change: TopicChange): void {
    if (change.deleted === true) {
      this.#forget(change.topic);
      return;
    }
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

  #oldestKeptMs(): number | undefined {
    return this.#maxAgeMs === undefined ? undefined : this.#runClock.wallNow() - this.#maxAgeMs;
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
