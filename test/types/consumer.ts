// What a frontend team writes against pollkit/client, compiled by scripts/check-types.mjs under every
// module setup against the packed tarball. Never run: it only has to type-check.
import { WebSocket } from 'ws';
import {
  type JobSnapshot,
  JobClient,
  LongPoller,
  ShortPoller,
  Subscriber,
  SseTransport,
  WebSocketTransport,
  pollJob,
} from 'pollkit/client';

interface Stage {
  readonly stage: 'fetch' | 'encode';
}
interface Output {
  readonly bytes: number;
}

export async function consumer(): Promise<void> {
  const client = new JobClient({ baseUrl: 'http://localhost:3000' });
  const { location } = await client.submit('video.transcode', { url: 'https://example.com/in.mp4' });

  // Result and progress data typed through the generics, not `unknown`.
  const poller = pollJob<Output, Stage>(location);
  poller.on('progress', (progress) => {
    const stage: 'fetch' | 'encode' | undefined = progress.data?.stage;
    const percent: number | undefined = progress.percent;
    void stage;
    void percent;
  });
  poller.on('update', (job: JobSnapshot<Output, Stage>) => void job.progress?.data?.stage);
  const job = await poller.result();
  const bytes: number | undefined = job.result?.bytes;
  void bytes;

  const short = new ShortPoller<number>({ poll: () => 1 });
  short.on('update', (value: number) => void value).on('end', (info) => void info.reason);
  const long = new LongPoller<string, number>({ poll: async () => ({ records: ['a'], cursor: 1 }) });
  long.on('data', (records: readonly string[]) => void records);

  // The ws package's class, accepted as it is.
  const socket = new WebSocketTransport<string>({ url: 'ws://localhost:3000/ws', WebSocket });
  const sse = new SseTransport<string>({ url: 'http://localhost:3000/events' });
  const subscriber = new Subscriber<string>({ transports: [socket, sse] });
  subscriber.on('message', (message) => void message.data.toUpperCase());
  subscriber.start();
  subscriber.close();
}
