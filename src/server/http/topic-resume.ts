/**
 * A topic stream's resume point after a reconnect, and the in-band `reset` a reader gets when its log
 * was reset (a new epoch) or trimmed past it while it was away. A browser's EventSource cannot read a
 * 410 (it only sees an error and stops for good), so a reconnect whose `Last-Event-ID` carries an
 * epoch is answered 200 with `event: reset` first, then the records from the log's new start: the
 * page learns of the gap, and nothing is skipped silently.
 *
 * @module
 */
import { InvalidArgumentError } from '../../core/errors.js';
import { type TopicEventPosition, parseTopicEventId } from '../../core/protocol.js';
import type { TopicPosition } from '../topics/stores/topic-store.js';
import type { SseEvent } from './sse.js';

/** Reads `Last-Event-ID` (`<offset>@<epoch>` or a bare offset); a 400 names it when it is neither. */
export function parseLastEventId(text: string): TopicEventPosition {
  const position = parseTopicEventId(text);
  if (position === undefined) {
    throw new InvalidArgumentError('Last-Event-ID must be <offset>@<epoch> or an offset', 'Last-Event-ID');
  }
  return position;
}

/**
 * The `reset` event owed to a reader resuming from `resumed`, or `undefined` when its place still
 * exists. Only ids with an epoch get one: a bare offset (an older client, an explicit `?offset`) keeps
 * the strict answer, 410.
 */
export function resetSince(resumed: TopicEventPosition | undefined, now: TopicPosition): SseEvent | undefined {
  if (resumed?.epoch === undefined) return undefined;
  const next = resumed.offset + 1;
  if (resumed.epoch === now.epoch && next >= now.earliestOffset) return undefined;
  return {
    event: 'reset',
    data: JSON.stringify({
      code: 'offset-gone',
      epoch: now.epoch,
      earliestOffset: now.earliestOffset,
      previousEpoch: resumed.epoch,
      requestedOffset: next,
    }),
  };
}
