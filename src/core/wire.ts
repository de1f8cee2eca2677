/**
 * The protocol's header names and media types one by one, for code that needs only a few of them: a
 * browser bundle that reads `Retry-After` need not carry the whole {@link HEADERS} table, which
 * protocol.ts builds from these (so there is still one source of truth). Internal: not re-exported
 * from the core's index.
 *
 * @module
 * @internal
 */

/** @internal */
export const LOCATION = 'location';
/** @internal */
export const OPERATION_LOCATION = 'operation-location';
/** @internal */
export const RETRY_AFTER = 'retry-after';
/** @internal */
export const ETAG = 'etag';
/** @internal */
export const IF_NONE_MATCH = 'if-none-match';
/** @internal */
export const PREFER = 'prefer';
/** @internal */
export const PREFERENCE_APPLIED = 'preference-applied';
/** @internal */
export const IDEMPOTENCY_KEY = 'idempotency-key';
/** @internal */
export const LAST_EVENT_ID = 'last-event-id';
/** @internal */
export const CONTENT_TYPE = 'content-type';
/** @internal */
export const POLL_INTERVAL = 'x-poll-interval';
/** @internal */
export const JSON_TYPE = 'application/json';
/** @internal */
export const PROBLEM_TYPE = 'application/problem+json';
/** @internal */
export const EVENT_STREAM = 'text/event-stream';
