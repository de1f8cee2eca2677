/**
 * The upload-progress page: uploads the chosen file, then follows the job the server answered with,
 * by short polling or by its event stream, until it is done or canceled.
 *
 * @module
 */
import { JobClient, type JobSnapshot, SseTransport, Subscriber, pollJob } from 'pollkit/client';
import type { UploadResult } from './server.js';

const element = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const fileInput = element<HTMLInputElement>('file');
const uploadButton = element<HTMLButtonElement>('upload');
const cancelButton = element<HTMLButtonElement>('cancel');
const bar = element<HTMLProgressElement>('bar');
const log = element<HTMLDivElement>('log');

const jobs = new JobClient({ baseUrl: window.location.origin });

function note(text: string): void {
  log.textContent = `${text}\n${log.textContent ?? ''}`;
}

function show(job: JobSnapshot<UploadResult>): void {
  const percent = job.status === 'succeeded' ? 100 : (job.progress?.percent ?? 0);
  bar.value = percent;
  element('status').textContent = job.status;
  element('percent').textContent = `${percent} %`;
  if (job.status === 'succeeded' && job.result) {
    element('result').textContent = `${job.result.name}: ${job.result.size} bytes, sha-256 ${job.result.sha256}`;
  } else if (job.error) {
    element('result').textContent = `${job.error.code}: ${job.error.detail ?? job.error.title}`;
  }
  if (job.done) {
    cancelButton.disabled = true;
    uploadButton.disabled = false;
  }
}

/** Follows a job by short polling: conditional GETs (304 when unchanged), paced by `Retry-After`. */
async function followByPolling(location: string): Promise<void> {
  let requests = 0;
  let unchanged = 0;
  const poller = pollJob<UploadResult>(location, { rejectOnFailure: false, pauseWhenHidden: true });
  poller.on('request', () => requests++);
  poller.on('response', ({ changed }) => {
    if (!changed) unchanged++;
  });
  poller.on('update', (job) => show(job));
  const job = await poller.result();
  show(job);
  note(`short polling: ${requests} requests, ${unchanged} answered 304 Not Modified`);
}

/** Follows a job by its SSE stream, which ends after the terminal event. */
async function followByEvents(location: string): Promise<void> {
  let events = 0;
  const subscriber = new Subscriber<JobSnapshot<UploadResult>>({
    transports: new SseTransport({ url: `${location}/events`, decode: (data) => JSON.parse(data) }),
  });
  await new Promise<void>((resolve) => {
    subscriber.on('message', ({ data }) => {
      events++;
      show(data);
      if (data.done) {
        subscriber.close();
        resolve();
      }
    });
    subscriber.on('gone', () => resolve());
    subscriber.start();
  });
  note(`server-sent events: 1 stream, ${events} events`);
}

uploadButton.addEventListener('click', () => {
  const file = fileInput.files?.[0];
  if (file === undefined) {
    note('choose a file first');
    return;
  }
  const mode = document.querySelector<HTMLInputElement>('input[name="mode"]:checked')?.value ?? 'poll';
  uploadButton.disabled = true;
  bar.value = 0;
  element('result').textContent = '';
  // The previous job's final status must not stand in for this one's.
  element('status').textContent = 'uploading';
  element('percent').textContent = '0 %';
  void (async () => {
    const response = await fetch(`/upload?name=${encodeURIComponent(file.name)}`, { method: 'POST', body: file });
    if (response.status !== 202) throw new Error(`upload answered ${response.status}`);
    const job = (await response.json()) as JobSnapshot<UploadResult>;
    const location = response.headers.get('operation-location') ?? jobs.jobUrl(job.id);
    note(`202 Accepted: job ${job.id}, Retry-After ${response.headers.get('retry-after') ?? '-'} s`);
    show(job);
    cancelButton.disabled = false;
    cancelButton.onclick = () => {
      cancelButton.disabled = true;
      // The follower sees the canceled state arrive like any other change.
      void jobs.cancel(job.id).then((canceled) => note(`cancel answered: ${canceled.status}`));
    };
    await (mode === 'sse' ? followByEvents(location) : followByPolling(location));
  })().catch((error: unknown) => {
    note(`error: ${String(error)}`);
    uploadButton.disabled = false;
  });
});
