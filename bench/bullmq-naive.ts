/**
 * The floor for bench/bullmq.ts: the least an HTTP front on BullMQ can do per job — `POST /jobs` is
 * `queue.add` answered 202 with the id, `GET /jobs/:id` waits for the job through one QueueEvents
 * (`job.waitUntilFinished`) and answers its result. No versions, owners, idempotency, progress or
 * cancel. Forked by the benchmark with REDIS_URL and QUEUE set; says `{ port }` over IPC when ready.
 *
 * @module
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Job, Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';

const url = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const name = process.env['QUEUE'] ?? 'bench';
const connection = (): Redis => new Redis(url, { maxRetriesPerRequest: null });
const queue = new Queue(name, { connection: connection() });
const events = new QueueEvents(name, { connection: connection() });

const server = createServer((request, response) => {
  const reply = (status: number, body: unknown): void => {
    response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  if (request.method === 'POST') {
    let text = '';
    request.on('data', (chunk: Buffer) => (text += chunk.toString()));
    request.on('end', () => {
      const { type, input } = JSON.parse(text) as { type: string; input: unknown };
      queue.add(type, input).then(
        (job) => reply(202, { id: job.id }),
        (error: Error) => reply(500, error.message),
      );
    });
    return;
  }
  const id = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname.split('/').at(-1) ?? '');
  Job.fromId(queue, id)
    .then((job) => job!.waitUntilFinished(events, 20_000))
    .then(
      (result) => reply(200, { id, status: 'succeeded', result }),
      (error: Error) => reply(500, error.message),
    );
});

await events.waitUntilReady();
server.listen(0, '127.0.0.1', () =>
  process.send?.({ seq: 0, ok: true, value: { port: (server.address() as AddressInfo).port } }),
);
process.on('message', (request: { seq: number }) => {
  server.close();
  void events
    .close()
    .then(() => queue.close())
    .then(() => process.send?.({ seq: request.seq, ok: true, value: true }));
});
