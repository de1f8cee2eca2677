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
