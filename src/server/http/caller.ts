/**
 * Who is asking: the `authorize` hook's answer, and the parsed request that every route receives.
 *
 * @module
 */
import type { Exchange } from './exchange.js';
import type { PollkitRequest } from './types.js';

/**
 * What the `authorize` hook says about a caller.
 *
 * @example
 * ```ts
 * import type { PollkitCaller } from 'pollkit/server';
 * const caller: PollkitCaller = { id: 'user-42', owner: 'user-42', canReadTopic: (t) => t.startsWith('public.') };
 * ```
 */
export interface PollkitCaller {
  /** Key for the per-caller held-request limit. Default: `owner`, else the peer address. */
  readonly id?: string;
  /** Jobs submitted by this caller belong to this owner; other owners' jobs are invisible (404). */
  readonly owner?: string;
  /** Whether the caller may read a topic; hidden topics are 404. Default: every topic. */
  readonly canReadTopic?: (topic: string) => boolean;
  /** Whether the caller may append to a topic it can read. Default: the `publicAppends` option. */
  readonly canAppendTopic?: (topic: string) => boolean;
}

/**
 * Identifies the caller of a request. Return `undefined` for an anonymous caller who sees everything;
 * throw a `PollkitError` with code `unauthorized` (401) to refuse the request.
 */
export type AuthorizeHook<Context> = (
  request: PollkitRequest<Context>,
) => PollkitCaller | undefined | Promise<PollkitCaller | undefined>;

/** One routed request: the request, its query, and who sent it (internal). */
export interface Call<Context> {
  /** Where the answer goes; a held poll answers through it. */
  readonly exchange: Exchange<Context>;
  readonly request: PollkitRequest<Context>;
  readonly query: URLSearchParams;
  readonly caller: PollkitCaller | undefined;
}

/** The job-access options for a caller: its owner when it has one. */
export function ownerOf(caller: PollkitCaller | undefined): { owner?: string } {
  return caller?.owner === undefined ? {} : { owner: caller.owner };
}
