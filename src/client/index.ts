/**
 * The client side: pollers and subscribers that run in browsers and Node alike. Re-exports the core.
 *
 * @example
 * ```ts
 * import { sleep } from 'pollkit/client';
 * await sleep(10);
 * ```
 *
 * @module pollkit/client
 */
export * from '../core/index.js';
export * from './activity.js';
export * from './http.js';
export * from './long-poller.js';
export type {
  DelayReason,
  EndInfo,
  EndReason,
  PauseInfo,
  PollContext,
  PollerState,
  ResumeInfo,
  RetryInfo,
  ScheduleInfo,
  WaitForOptions,
} from './poller-support.js';
export * from './protocol-pollers.js';
export * from './retry-budget.js';
export * from './short-poller.js';
export * from './subscriber.js';
export * from './transports/transport.js';
export * from './transports/sse.js';
export * from './transports/websocket.js';
export * from './transports/long-poll.js';
export * from './follow-job.js';
export * from './subscribe-topic.js';
export * from './transports/job-poll.js';
