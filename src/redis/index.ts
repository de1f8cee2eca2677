/**
 * `pollkit/redis`: job and topic stores in Redis, for running several server processes behind a load
 * balancer. State lives in Redis (jobs as hashes, topics as streams); held requests stay in each
 * process's own purgatory, woken through one pub/sub subscription per process, so Redis sees
 * O(processes) connections and no command at all while a request is held.
 *
 * `ioredis` is an optional peer dependency: pass your own client, and the stores open exactly one more
 * connection (`redis.duplicate()`) for the subscription, shared when you share a {@link RedisChangeFeed}.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { JobRegistry, PollkitHandler, TopicRegistry } from 'pollkit/server';
 * import { RedisChangeFeed, RedisJobStore, RedisTopicStore } from 'pollkit/redis';
 *
 * const redis = new Redis(process.env.REDIS_URL!);
 * const feed = new RedisChangeFeed({ redis });
 * const handler = new PollkitHandler({
 *   jobs: new JobRegistry({ store: new RedisJobStore({ redis, feed }) }),
 *   topics: new TopicRegistry({ store: new RedisTopicStore({ redis, feed }) }),
 * });
 * ```
 *
 * @module pollkit/redis
 */
export { StoreUnavailableError } from './connection.js';
export { type FeedNotice, type FeedSubscriber, RedisChangeFeed, type RedisChangeFeedOptions } from './change-feed.js';
export { RedisJobStore, type RedisJobStoreOptions } from './job-store.js';
export { RedisTopicStore, type RedisTopicStoreOptions } from './topic-store.js';
