/**
 * Identifiers the server hands out: job ids (UUIDv4, 122 random bits, as PROTOCOL.md asks) and log
 * epochs. Both come from Web Crypto, looked up on each call so nothing random is captured at import,
 * and every component that uses them also accepts an injected generator for deterministic tests.
 *
 * @module
 */

/**
 * A random UUIDv4 from `globalThis.crypto.randomUUID()`.
 *
 * @example
 * ```ts
 * import { randomId } from './ids.js';
 * console.log(randomId()); // e.g. "3f1c9a4e-…"
 * ```
 */
export function randomId(): string {
  return globalThis.crypto.randomUUID();
}

/**
 * A random base64url token of `bytes` random bytes (default 12: 16 characters).
 *
 * @example
 * ```ts
 * import { randomToken } from './ids.js';
 * console.log(randomToken().length); // 16
 * ```
 */
export function randomToken(bytes = 12): string {
  const buffer = globalThis.crypto.getRandomValues(new Uint8Array(bytes));
  let binary = '';
  for (const byte of buffer) binary += String.fromCharCode(byte);
  return globalThis.btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}
