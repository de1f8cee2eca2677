import { JobCanceledError, JobClient, JobFailedError, consumeTopic, longPollJob, pollJob } from 'pollkit/client';

const report: Record<string, unknown> = {};
(window as unknown as { __pollkit: Record<string, unknown> }).__pollkit = report;
const client = new JobClient({ baseUrl: location.origin });

try {
  const counted = await client.submit('count', { steps: 4 });
  const percents: number[] = [];
  const poller = pollJob<{ steps: number }>(counted.location, { interval: 20 });
  poller.on('update', (job) => percents.push(job.progress?.percent ?? 0));
  report['succeeded'] = (await poller.result()).result;
  report['percents'] = percents;

  const failing = await client.submit('explode', {});
  report['failed'] = await longPollJob(failing.location, { waitMs: 2000 })
    .result()
    .then(
      () => 'resolved',
      (error: unknown) => (JobFailedError.is(error) ? error.problem.detail : String(error)),
    );

  const endless = await client.submit('forever', {});
  const watching = longPollJob(endless.location, { waitMs: 5000 }).result();
  await new Promise((resolve) => setTimeout(resolve, 50));
  await client.cancel(endless.job.id);
  report['canceled'] = await watching.then(
    () => 'resolved',
    (error: unknown) => JobCanceledError.is(error),
  );

  const records: number[] = [];
  const consumer = consumeTopic<number>(`${location.origin}/pollkit/topics/feed`, {
    offset: 0,
    waitMs: 1000,
    onGone: (gone) => ({ offset: gone.earliestOffset, epoch: gone.epoch }),
  });
  consumer.on('gone', (gone) => {
    report['goneEarliest'] = gone.earliestOffset;
  });
  for await (const record of consumer) {
    records.push(record.value);
    if (records.length === 10) break;
  }
  report['records'] = records;
} catch (error) {
  report['error'] = String(error);
}
report['done'] = true;
