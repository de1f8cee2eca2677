/**
 * pollkit: polling primitives for clients and servers. The root entry holds the shared core (errors,
 * backoff, clocks, abort helpers, protocol types) and the client; server pieces live in
 * `pollkit/server` and framework adapters in their own subpaths.
 *
 * @example
 * ```ts
 * import { backoff, isPollkitError } from 'pollkit';
 * const policy = backoff({ strategy: 'full', initial: 1000 });
 * ```
 *
 * @module pollkit
 */
export * from './core/index.js';
export * from './client/index.js';
