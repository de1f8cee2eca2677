/**
 * The server side: the timing wheel, the purgatory that holds long polls, jobs and topics. Runs on
 * Node and on any runtime with web-standard APIs. Re-exports the core.
 *
 * @example
 * ```ts
 * import { ManualClock } from 'pollkit/server';
 * const clock = new ManualClock();
 * ```
 *
 * @module pollkit/server
 */
export * from '../core/index.js';
export * from './purgatory/timing-wheel.js';
export * from './purgatory/purgatory.js';
export * from './jobs/stores/job-store.js';
export * from './jobs/stores/memory-job-store.js';
export * from './topics/stores/topic-store.js';
export * from './topics/stores/memory-topic-store.js';
export type { JobContext, JobHandler, JobTypeOptions } from './jobs/job-runner.js';
export * from './jobs/job-registry.js';
export { type BackgroundErrorContext, type BackgroundOperation, logBackgroundError } from './jobs/background-errors.js';
export { Topic, type TopicAppendOptions, type TopicReadOptions, type TopicSubscribeOptions } from './topics/topic.js';
export * from './topics/topic-registry.js';
export * from './http/types.js';
export * from './http/problems.js';
export * from './http/sse.js';
export type { AuthorizeHook, PollkitCaller } from './http/caller.js';
export type { HandlerJobAccess, HandlerJobs } from './http/job-routes.js';
export type { HandlerTopic, HandlerTopics } from './http/topic-routes.js';
export type { TopicCacheOptions } from './http/topic-cache.js';
export * from './http/cors.js';
export * from './http/handler.js';
export type { LoadSample, LoadSheddingOptions } from './http/pressure.js';
