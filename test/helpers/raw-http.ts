/**
 * HTTP/1.1 over one raw keep-alive socket, for load: thousands of clients in one process, each one
 * socket and a few closures, where `fetch` (undici) would cost the load side more CPU than the server
 * it measures. {@link socketFetch} wraps a connection as the `fetch` option pollkit's clients take,
 * so the clients under load are still pollkit's own.
 *
 * @module
 */
import net from 'node:net';

/** One parsed response. */
export interface RawResponse {
  readonly status: number;
  /** Header lines, names lowercased. */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
  /** Bytes of the whole response (status line, headers, body framing). */
  readonly bytes: number;
}

/**
 * A keep-alive connection that sends one request at a time and parses responses framed by
 * `Content-Length` or chunked encoding (what pollkit and nginx send).
 */
export class RawConnection {
  readonly socket: net.Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #waiting: ((response: RawResponse | Error) => void) | undefined;
  /** Bytes of every request sent so far. */
  requestBytes = 0;
  closed = false;

  constructor(host: string, port: number) {
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.on('data', (chunk: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
      this.#parse();
    });
    const fail = (error?: Error): void => {
      this.closed = true;
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting?.(error ?? new Error('connection closed'));
    };
    this.socket.on('error', fail);
    this.socket.on('close', () => fail());
  }

  /** Sends `GET path` with `headers` (already `name: value` lines, each ending in CRLF). */
  get(host: string, path: string, headers = ''): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error('connection closed'));
        return;
      }
      this.#waiting = (result) => (result instanceof Error ? reject(result) : resolve(result));
      const text = `GET ${path} HTTP/1.1\r\nhost: ${host}\r\n${headers}\r\n`;
      this.requestBytes += text.length;
      this.socket.write(text);
    });
  }

  #parse(): void {
    const headerEnd = this.#buffer.indexOf('\r\n\r\n');
    if (headerEnd < 0) return;
    const lines = this.#buffer.toString('latin1', 0, headerEnd).split('\r\n');
    const status = Number(lines[0]!.slice(9, 12));
    const headers = lines.slice(1).map((line): [string, string] => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
    });
    const header = (name: string): string | undefined => headers.find(([key]) => key === name)?.[1];
    let bodyStart = headerEnd + 4;
    let body = '';
    let end = bodyStart;
    const length = header('content-length');
    if (status === 304 || status === 204) {
      // no body
    } else if (length !== undefined) {
      end = bodyStart + Number(length);
      if (this.#buffer.length < end) return;
      body = this.#buffer.toString('utf8', bodyStart, end);
    } else if (header('transfer-encoding') === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = this.#buffer.indexOf('\r\n', bodyStart);
        if (lineEnd < 0) return;
        const size = Number.parseInt(this.#buffer.toString('latin1', bodyStart, lineEnd), 16);
        if (this.#buffer.length < lineEnd + 2 + size + 2) return;
        if (size === 0) {
          end = lineEnd + 4;
          break;
        }
        parts.push(this.#buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
        bodyStart = lineEnd + 2 + size + 2;
      }
      body = Buffer.concat(parts).toString('utf8');
    } else {
      return; // close-delimited bodies are not used by the servers under test
    }
    this.#buffer = this.#buffer.subarray(end);
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.({ status, headers, body, bytes: end });
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }
}

/**
 * A `fetch` for GET requests over one keep-alive connection of its own, opened on first use and again
 * after an abort or a hang-up: one client, one socket, as a browser tab would have.
 */
export function socketFetch(): (input: string, init?: RequestInit) => Promise<Response> {
  let connection: RawConnection | undefined;
  return async (input, init = {}) => {
    const url = new URL(input);
    const signal = init.signal ?? undefined;
    signal?.throwIfAborted();
    if (connection === undefined || connection.closed) connection = new RawConnection(url.hostname, Number(url.port));
    const current = connection;
    let headers = '';
    for (const [name, value] of Object.entries((init.headers ?? {}) as Record<string, string>)) {
      headers += `${name}: ${value}\r\n`;
    }
    const onAbort = (): void => current.destroy();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const response = await current.get(url.host, `${url.pathname}${url.search}`, headers);
      return new Response(response.body === '' ? null : response.body, {
        status: response.status,
        headers: response.headers as [string, string][],
      });
    } catch (error) {
      if (signal?.aborted === true) throw signal.reason;
      throw new TypeError('fetch failed', { cause: error });
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  };
}

/** How many listeners `emitter` has for each event, for before/after comparisons. */
export function listenerCounts(emitter: NodeJS.EventEmitter): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of emitter.eventNames()) counts[String(name)] = emitter.listenerCount(name);
  return counts;
}
