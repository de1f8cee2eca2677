/**
 * The load generator of `bench/cdn.ts`, run as several forked children because each process may open
 * at most 20,000 files. Each client is one keep-alive socket reading one topic the way pollkit's
 * clients do (`src/client/topic-reads.ts`): ranges without a wait while behind, long polls with the
 * server's cursor at the head, with the query in the same order, so that a cache sees the URLs real
 * clients send. Each record carries the wall time of its append; the client notes how late it arrived.
 *
 * @module
 */
import { RawConnection } from '../test/helpers/raw-http.js';

/** A command from the orchestrator. */
export type LoadCommand =
  | {
      readonly id: number;
      readonly cmd: 'start';
      readonly port: number;
      readonly path: string;
      readonly clients: number;
      readonly waitSeconds: number;
    }
  | { readonly id: number; readonly cmd: 'report'; readonly reset: boolean }
  | { readonly id: number; readonly cmd: 'exit' };

const HOST = '127.0.0.1';
const absoluteNow = (): number => performance.timeOrigin + performance.now();

interface Answer {
  readonly epoch: string;
  readonly records: readonly { readonly offset: number; readonly value: { readonly t: number } }[];
  readonly nextOffset: number;
  readonly highWatermark: number;
  readonly cursor?: string;
}

let running = true;
let delivered = 0;
let outOfOrder = 0;
let failures = 0;
let requests = 0;
/** Offsets at the head, per client: how far each one got. */
const positions: number[] = [];
let latencies: number[] = [];

async function client(index: number, port: number, path: string, waitSeconds: number): Promise<void> {
  let connection = new RawConnection(HOST, port);
  let offset = 0;
  let epoch: string | undefined;
  let cursor: string | undefined;
  while (running) {
    const live = cursor !== undefined;
    const query = live
      ? `offset=${offset}&wait=${waitSeconds}&epoch=${epoch}&cursor=${cursor}`
      : `offset=${offset}${epoch === undefined ? '' : `&epoch=${epoch}`}`;
    const sent = performance.now();
    let answer: Answer;
    try {
      if (connection.closed) connection = new RawConnection(HOST, port);
      const response = await connection.get(HOST, `${path}?${query}`, 'accept: application/json\r\n');
      requests += 1;
      if (response.status !== 200) throw new Error(`status ${response.status}`);
      answer = JSON.parse(response.body) as Answer;
    } catch {
      if (!running) return;
      failures += 1;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      continue;
    }
    const now = absoluteNow();
    for (const record of answer.records) {
      if (record.offset !== offset) outOfOrder += 1;
      offset = record.offset + 1;
      delivered += 1;
      latencies.push(now - record.value.t);
    }
    offset = answer.nextOffset;
    epoch = answer.epoch;
    cursor = answer.cursor !== undefined && offset >= answer.highWatermark ? answer.cursor : undefined;
    positions[index] = offset;
    // An empty live answer that came back at once would be a loop: pace it as pollkit's clients do.
    if (live && answer.records.length === 0 && performance.now() - sent < 100) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  connection.destroy();
}

async function start(command: Extract<LoadCommand, { cmd: 'start' }>): Promise<Record<string, unknown>> {
  for (let i = 0; i < command.clients; i++) {
    void client(i, command.port, command.path, command.waitSeconds);
    // Pace the connects so the listen backlog never overflows (a dropped SYN costs a 1 s retransmit).
    if (i % 200 === 199) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {};
}

function report(reset: boolean): Record<string, unknown> {
  const result = { delivered, outOfOrder, failures, requests, latencies, positions: [...positions] };
  if (reset) {
    delivered = 0;
    requests = 0;
    latencies = [];
  }
  return result;
}

process.on('message', (message: LoadCommand) => {
  const reply = (result: Record<string, unknown>): void => void process.send?.({ id: message.id, ok: true, ...result });
  switch (message.cmd) {
    case 'start':
      start(message).then(reply, (error: unknown) =>
        process.send?.({ id: message.id, ok: false, error: String(error) }),
      );
      return;
    case 'report':
      reply(report(message.reset));
      return;
    case 'exit':
      running = false;
      reply({});
      setTimeout(() => process.exit(0), 50);
      return;
  }
});
