/**
 * The event-stream parser of the WHATWG HTML standard (9.2.6), as small as a browser bundle wants it:
 * CR, LF and CRLF line ends (a CR at the end of one chunk and an LF at the start of the next are one
 * line end), a leading BOM, multi-line `data`, comments, `retry` with digits only, and an `id` with a
 * NUL ignored. A partial event at the end of the stream is never reported.
 *
 * @module
 */

/** One dispatched event. `id` is the `id` field of this event's block, if it had one. */
export interface SseEvent {
  readonly data: string;
  readonly event: string | undefined;
  readonly id: string | undefined;
}

/** What the parser reports. */
export interface SseParserCallbacks {
  readonly event: (event: SseEvent) => void;
  readonly retry: (ms: number) => void;
  readonly comment: () => void;
}

/**
 * Returns the function to feed decoded text to, chunk by chunk.
 *
 * @internal
 */
export function sseParser(on: SseParserCallbacks): (chunk: string) => void {
  let pending = '';
  let first = true;
  let skipLf = false;
  let data: string[] = [];
  let event: string | undefined;
  let id: string | undefined;

  const line = (text: string): void => {
    if (text === '') {
      if (data.length > 0) on.event({ data: data.join('\n'), event, id });
      data = [];
      event = id = undefined;
      return;
    }
    if (text.startsWith(':')) return on.comment();
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id') {
      if (!value.includes('\0')) id = value;
    } else if (field === 'retry' && /^\d+$/.test(value)) on.retry(Number(value));
  };

  return (chunk) => {
    if (first && chunk !== '') {
      first = false;
      if (chunk.startsWith('\uFEFF')) chunk = chunk.slice(1);
    }
    if (skipLf && chunk.startsWith('\n')) chunk = chunk.slice(1);
    skipLf = false;
    let text = pending + chunk;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c !== '\r' && c !== '\n') continue;
      line(text.slice(start, i));
      if (c === '\r') {
        if (i + 1 === text.length) skipLf = true;
        else if (text[i + 1] === '\n') i++;
      }
      start = i + 1;
    }
    pending = text.slice(start);
    text = '';
  };
}
