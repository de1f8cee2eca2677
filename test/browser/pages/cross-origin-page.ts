// A page on one origin that follows a job and consumes a topic on another (the API's), with the
// transports the test names in the query string. It reports into window.__pollkit as it goes; the
// test restarts the API server under it and checks what arrived.
import { JobClient, backoff, followJob, subscribeTopic } from 'pollkit/client';
import type { JobTransportName, TopicTransportName } from 'pollkit/client';

/** What the page reports; the test reads it. */
export interface Report {
  values: number[];
  transports: string[];
  fallbacks: string[];
  job?: unknown;
  jobTransport?: string;
  progress: number[];
  error?: string;
  ready?: boolean;
}
const report: Report = { values: [], transports: [], fallbacks: [], progress: [] };
(window as unknown as { __pollkit: Report }).__pollkit = report;

const params = new URLSearchParams(location.search);
const api = params.get('api')!;
const topicTransport = JSON.parse(params.get('topic')!) as 'auto' | readonly TopicTransportName[];
const jobTransport = JSON.parse(params.get('job')!) as 'auto' | readonly JobTransportName[];
// Quick reconnects so the test takes seconds; a connection counts as stable after 1 s.
const fast = {
  spreadMs: 50,
  backoff: backoff({ strategy: 'full', initial: 100, max: 400 }),
  stableAfterMs: 1000,
  stepUpAfterMs: 0,
};

try {
  const topic = subscribeTopic<number>(`${api}/pollkit/topics/t`, { ...fast, transport: topicTransport });
  topic.on('message', ({ data, transport }) => {
    report.values.push(data.value);
    report.transports.push(transport);
  });
  topic.on('fallback', ({ from, to }) => report.fallbacks.push(`${from}>${to}`));
  topic.on('gone', ({ reason, error }) => (report.error = `topic gone: ${reason} ${String(error)}`));
  topic.start();

  // The submit is a cross-origin POST with a JSON body: it needs the preflight to pass.
  const client = new JobClient({ baseUrl: api });
  const { location: jobUrl } = await client.submit('count', { steps: 8 });
  report.ready = true;
  const follower = followJob<{ steps: number }>(jobUrl, { ...fast, transport: jobTransport });
  follower.on('progress', (progress) => report.progress.push(progress.percent ?? -1));
  const job = await follower.result();
  report.job = job.result;
  report.jobTransport = follower.transport ?? 'none';
} catch (error) {
  report.error = String(error);
}
