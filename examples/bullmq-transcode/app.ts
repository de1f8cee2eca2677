/**
 * The transcode page: submits a job, then follows it — by short polling or by its event stream — with
 * a progress bar, until it is done or canceled.
 *
 * @module
 */
import { JobClient, type JobSnapshot, SseTransport, Subscriber, pollJob } from 'pollkit/client';
import type { TranscodeResult } from './server.js';

const element = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const startButton = element<HTMLButtonElement>('start');
const cancelButton = element<HTMLButtonElement>('cancel');
const bar = element<HTMLProgressElement>('bar');
const client = new JobClient({ baseUrl: window.location.origin });

function show(job: JobSnapshot<TranscodeResult>): void {
  const percent = job.status === 'succeeded' ? 100 : (job.progress?.percent ?? 0);
  bar.value = percent;
  element('status').textContent = job.status;
  element('percent').textContent = `${percent} %`;
  element('message').textContent = job.progress?.message ?? '';
  if (job.status === 'succeeded' && job.result) {
    element('result').textContent = `${job.result.outputs.join(', ')} (by ${job.result.worker})`;
  } else if (job.error) {
    element('result').textContent = `${job.error.code}: ${job.error.detail ?? job.error.title}`;
  }
  if (job.done) {
    cancelButton.disabled = true;
    startButton.disabled = false;
  }
}

async function followByPolling(location: string): Promise<void> {
  const poller = pollJob<TranscodeResult>(location, { rejectOnFailure: false, pauseWhenHidden: true });
  poller.on('update', (job) => show(job));
  show(await poller.result());
}

async function followByEvents(location: string): Promise<void> {
  const subscriber = new Subscriber<JobSnapshot<TranscodeResult>>({
    transports: new SseTransport({ url: `${location}/events`, decode: (data) => JSON.parse(data) }),
  });
  await new Promise<void>((resolve) => {
    subscriber.on('message', ({ data }) => {
      show(data);
      if (data.done) {
        subscriber.close();
        resolve();
      }
    });
    subscriber.on('gone', () => resolve());
    subscriber.start();
  });
}

startButton.addEventListener('click', () => {
  const mode = document.querySelector<HTMLInputElement>('input[name="mode"]:checked')?.value ?? 'poll';
  const renditions = element<HTMLInputElement>('renditions')
    .value.split(',')
    .map((r) => r.trim());
  startButton.disabled = true;
  bar.value = 0;
  element('result').textContent = '';
  element('status').textContent = 'submitting';
  void (async () => {
    const { job, location } = await client.submit<TranscodeResult>('transcode', {
      source: element<HTMLInputElement>('source').value,
      renditions,
    });
    show(job);
    cancelButton.disabled = false;
    cancelButton.onclick = () => {
      cancelButton.disabled = true;
      void client.cancel(job.id);
    };
    await (mode === 'sse' ? followByEvents(location) : followByPolling(location));
  })().catch((error: unknown) => {
    element('result').textContent = `error: ${String(error)}`;
    startButton.disabled = false;
  });
});
