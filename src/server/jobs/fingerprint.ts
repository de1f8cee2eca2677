/**
 * A digest of a request body for idempotency keys: "the same key and the same body" must compare
 * bodies by meaning, not by the byte order of their object keys, and a store should keep a short
 * digest rather than a second copy of every input.
 *
 * @module
 */
import { PollkitError } from '../../core/errors.js';

/**
 * JSON with object keys sorted at every depth, so equal values give equal strings. Follows
 * `JSON.stringify` for everything else (undefined members dropped, `toJSON` honoured).
 *
 * @throws PollkitError with code `invalid-input` for values JSON cannot represent (cycles, BigInt).
 *
 * @example
 * ```ts
 * import { canonicalJson } from './fingerprint.js';
 * console.log(canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] })); // {"a":[2,{"c":4,"d":3}],"b":1}
 * ```
 */
export function canonicalJson(value: unknown): string {
  try {
    return (
      JSON.stringify(value, (_key, member: unknown) => {
        if (typeof member !== 'object' || member === null || Array.isArray(member)) return member;
        const sorted: Record<string, unknown> = {};
        for (const key of Object.keys(member).sort()) sorted[key] = (member as Record<string, unknown>)[key];
        return sorted;
      }) ?? 'undefined'
    );
  } catch (error) {
    throw new PollkitError('The job input cannot be represented as JSON', 'invalid-input', { cause: error });
  }
}

/**
 * The base64url SHA-256 of {@link canonicalJson} of `value`, via Web Crypto.
 *
 * @example
 * ```ts
 * import { fingerprint } from './fingerprint.js';
 * console.log((await fingerprint({ a: 1, b: 2 })) === (await fingerprint({ b: 2, a: 1 }))); // true
 * ```
 */
export async function fingerprint(value: unknown): Promise<string> {
  const bytes = new TextEncoder().encode(canonicalJson(value));
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes));
  let binary = '';
  for (const byte of digest) binary += String.fromCharCode(byte);
  return globalThis.btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}
