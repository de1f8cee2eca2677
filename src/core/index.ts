/**
 * The shared core: errors, backoff, clocks, abort helpers and the wire protocol's types. Imported by
 * both the client and the server; imports nothing else of pollkit's.
 *
 * @module
 */
export * from './abort.js';
export * from './backoff.js';
export * from './clock.js';
export * from './emitter.js';
export * from './errors.js';
export * from './protocol.js';
export * from './retry.js';
export * from './retry-after.js';
