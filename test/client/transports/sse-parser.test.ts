import fc from 'fast-check';
import { createParser } from 'eventsource-parser';
import { describe, expect, it } from 'vitest';
import { type SseEvent, sseParser } from '../../../src/client/transports/sse-parser.js';

function ours(chunks: readonly string[]): { events: SseEvent[]; retries: number[]; comments: number } {
  const events: SseEvent[] = [];
  const retries: number[] = [];
  let comments = 0;
  const feed = sseParser({ event: (e) => events.push(e), retry: (ms) => retries.push(ms), comment: () => comments++ });
  for (const chunk of chunks) feed(chunk);
  return { events, retries, comments };
}

// eventsource-parser (a devDependency) is the independent reference: both must agree on any stream,
// however it is cut into chunks.
function reference(text: string): { events: SseEvent[]; retries: number[]; comments: number } {
  const events: SseEvent[] = [];
  const retries: number[] = [];
  let comments = 0;
  const parser = createParser({
    onEvent: (e) => events.push({ data: e.data, event: e.event, id: e.id }),
    onRetry: (ms) => retries.push(ms),
    onComment: () => comments++,
  });
  parser.feed(text);
  return { events, retries, comments };
}

describe('sseParser', () => {
  it('handles CR, LF and CRLF, a CRLF split across chunks, multi-line data, ids, retry and comments', () => {
    const got = ours([
      '\uFEFFid: 1\r',
      '\ndata: a\rdata: b\n',
      'event: x\n\n: ping\nretry: 250\nretry: x\n',
      'data:c\r\n\r\n',
    ]);
    expect(got.events).toEqual([
      { data: 'a\nb', event: 'x', id: '1' },
      { data: 'c', event: undefined, id: undefined },
    ]);
    expect(got.retries).toEqual([250]);
    expect(got.comments).toBe(1);
  });

  it('drops an event cut off by the end of the stream, and ignores an id holding NUL', () => {
    expect(ours(['id: a\0b\ndata: 1\n\n', 'data: partial']).events).toEqual([
      { data: '1', event: undefined, id: undefined },
    ]);
  });

  it('agrees with eventsource-parser on any stream cut anywhere', () => {
    const line = fc.oneof(
      fc.constantFrom('', ':c', 'data', 'data:', 'event: e', 'id: 7', 'retry: 30', 'retry: 3x', 'bogus: 1'),
      fc.string({ maxLength: 6 }).map((v) => `data: ${v.replace(/[\r\n]/g, '')}`),
    );
    const end = fc.constantFrom('\n', '\r', '\r\n');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(line, end), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (lines, cuts) => {
          // eventsource-parser holds a final CR until it sees whether an LF follows; ending every stream
          // with LF takes that one difference of timing (not of meaning) out of the comparison.
          const text = `${lines.map(([l, e]) => l + e).join('')}\n`;
          const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          const chunks: string[] = [];
          let at = 0;
          for (const p of points) {
            chunks.push(text.slice(at, p));
            at = p;
          }
          chunks.push(text.slice(at));
          expect(ours(chunks)).toEqual(reference(text));
        },
      ),
    );
  });
});
