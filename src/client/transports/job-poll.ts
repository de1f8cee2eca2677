/**
 * A job followed by polling, as a {@link Transport}, so the {@link Subscriber} can fall back to it
 * from SSE: `long-poll` holds each request until the job's version changes (`longPollJob`), `poll`
 * asks on a jittered interval with `If-None-Match` (`pollJob`). Each snapshot is a message whose id is
 * the job's version, so a version seen over another transport is not delivered twice.
 *
 * @module
 */
import type { JobSnapshot } from '../../core/protocol.js';
import type { EndInfo } from '../poller-support.js';
import type { HeadersOption, FetchFunction } from '../http.js';
import { longPollJob, pollJob } from '../protocol-pollers.js';
import { pollFailureToClose } from './long-poll.js';
import type { ConnectRequest, Transport, TransportConnection, TransportSink } from './transport.js';

/** Options for {@link JobPollTransport}. */
export interface JobPollTransportOptions {
  /** The job's URL (`https://host/prefix/jobs/<id>`). Required. */
  readonly url: string | URL;
  /** `long-poll` (held requests) or `poll` (an interval). Required. */
  readonly mode: 'long-poll' | 'poll';
  /** The `fetch` to call. Default `globalThis.fetch` at call time. */
  readonly fetch?: FetchFunction;
  /** Headers added to every request. Default none. */
  readonly headers?: HeadersOption;
  /** The server-side wait of a long poll, in milliseconds. Default `25000`. */
  readonly waitMs?: number;
}

/**
 * A job's snapshots by long or short polling.
 *
 * @example
 * ```ts
 * import { JobPollTransport, Subscriber, type JobSnapshot } from 'pollkit/client';
 * const transport = new JobPollTransport({ url: 'https://api.example.com/pollkit/jobs/7f3a', mode: 'long-poll' });
 * new Subscriber<JobSnapshot>({ transports: transport }).start();
 * ```
 */
export class JobPollTransport<Result = unknown, Data = unknown> implements Transport<JobSnapshot<Result, Data>> {
  readonly name: 'long-poll' | 'poll';
  readonly canSend = false;
  readonly #options: JobPollTransportOptions;

  constructor(options: JobPollTransportOptions) {
    this.name = options.mode;
    this.#options = options;
  }

  connect(request: ConnectRequest, sink: TransportSink<JobSnapshot<Result, Data>>): TransportConnection {
    const { url, fetch, headers, waitMs } = this.#options;
    // The subscriber owns retries and backoff: the poller ends at its first failure.
    const common = {
      ...(fetch === undefined ? {} : { fetch }),
      ...(headers === undefined ? {} : { headers }),
      maxRetries: 0,
      budget: false as const,
      rejectOnFailure: false,
      signal: request.signal,
      clock: request.clock,
    };
    const deliver = (job: JobSnapshot<Result, Data>): void =>
      sink.message({ data: job, id: String(job.version), event: undefined });
    let open = false;
    const onResponse = (): void => {
      sink.activity();
      if (!open) {
        open = true;
        sink.opened();
      }
    };
    const onEnd = (info: EndInfo): void => {
      if (info.reason === 'failed') sink.closed(pollFailureToClose(info.error));
      else if (info.reason === 'done') sink.closed({ reason: 'done', stop: true });
    };
    const ended = (info: EndInfo): void => {
      quiet();
      onEnd(info);
    };
    const poller =
      this.name === 'long-poll'
        ? longPollJob<Result, Data>(url, { ...common, ...(waitMs === undefined ? {} : { waitMs }) })
            .on('data', (jobs) => jobs.forEach(deliver))
            .on('response', onResponse)
            .on('end', ended)
        : pollJob<Result, Data>(url, common).on('update', deliver).on('response', onResponse).on('end', ended);
    function quiet(): void {
      poller.removeAllListeners();
    }
    poller.start();
    return {
      heartbeats: false,
      close: () => {
        quiet();
        poller.stop();
      },
    };
  }
}
