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
 * const caller: PollkitCaller = {
 *   id: 'user-42',
 *   owner: 'user-42',
 *   canReadTopic: (t) => t.startsWith('public.') || t === 'inbox.user-42',
 *   isPublicTopic: (t) => t.startsWith('public.'),
 * };
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
  /**
   * Whether the caller may delete a topic it can read (`DELETE {p}/topics/{t}`). Default: only the
   * caller that created the topic in this process (by its `owner`, else its `id`), so a tenant can
   * free what it made; say so explicitly for topics made elsewhere (other processes, the application).
   */
  readonly canDeleteTopic?: (topic: string) => boolean;
  /**
   * Whether anyone at all, with or without credentials, may read a topic. Fetches of such a topic are
   * answered so that shared caches (nginx, a CDN) may keep them and hand them to every client that
   * sends the same URL (docs/cdn.md), so the answer must not depend on who is asking. Default: no
   * topic is public, and every answer is `no-store`.
   */
  readonly isPublicTopic?: (topic: string) => boolean;
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

/**
 * Who a topic created by this call belongs to, for the per-owner topic cap and deletion: the caller's
 * `owner`, else its `id`, else the peer address (the held-request limits' key, owner first).
 */
export function creatorOf(call: Call<unknown>): string | undefined {
  return call.caller?.owner ?? call.caller?.id ?? call.request.remoteAddress;
}

/** The job-access options for a caller: its owner when it has one. */
export function ownerOf(caller: PollkitCaller | undefined): { owner?: string } {
  return caller?.owner === undefined ? {} : { owner: caller.owner };
}
