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
export * from './timing-wheel.js';
export * from './purgatory.js';
export * from './stores/job-store.js';
export * from './stores/memory-job-store.js';
export * from './stores/topic-store.js';
export * from './stores/memory-topic-store.js';
export * from './job-registry.js';
export * from './topic.js';
export * from './http-types.js';
export * from './problems.js';
export * from './sse.js';
export * from './handler.js';
