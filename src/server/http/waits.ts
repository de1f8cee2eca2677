/**
 * How long a request may be held: the wait it asks for (`?wait=` or `Prefer: wait=`), capped by the
 * server and spread with jitter.
 *
 * @module
 */
import { HEADERS } from '../../core/protocol.js';
import type { Call } from './caller.js';
import { parsePreferWait, parseSeconds, singleParam } from './params.js';
import type { HandlerSettings } from './settings.js';
import { getHeader } from './types.js';

/** The wait a request asks for, in milliseconds: `?wait=` wins over `Prefer: wait=`; `undefined` for none. */
export function requestedWait(call: Call<unknown>): number | undefined {
  const text = singleParam(call.query, 'wait');
  const fromQuery = text === undefined ? undefined : parseSeconds(text, 'wait');
  const fromHeader = parsePreferWait(getHeader(call.request.headers, HEADERS.prefer));
  return fromQuery ?? fromHeader;
}

/** Caps a requested wait and adds up to `waitJitter` of it, so synchronized clients drift apart. */
export function applyWait(settings: HandlerSettings, requestedMs: number): number {
  const base = Math.min(requestedMs, settings.maxWaitMs);
  if (base <= 0) return 0;
  return Math.min(settings.maxWaitMs, Math.round(base + settings.clock.random() * base * settings.waitJitter));
}
