/**
 * Upload progress: the page uploads a file, the server answers 202 with a job, and the page shows a
 * live progress bar fed either by short polling (which honours the server's `Retry-After`) or by the
 * job's server-sent event stream. Cancel works in both modes.
 *
 * The upload itself is one plain `POST /upload` outside pollkit's prefix; what takes time is the work
 * after it (here: hashing the file slowly, so a person can watch), and that work is a pollkit job.
 *
 * Run it: `node --import tsx examples/upload-progress/server.ts`, then open the printed URL.
 *
 * @module
 */
import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  InvalidArgumentError,
  JobRegistry,
  PollkitHandler,
  isPollkitError,
  sleep,
  type JobSnapshot,
} from 'pollkit/server';
import { createNodeListener } from 'pollkit/node';
import { type ListenOptions, type Running, isMain, listen, pageRoute, readBody } from '../shared/serve.js';

/** Options for {@link start}. */
export interface UploadProgressOptions extends ListenOptions {
  /** Bytes hashed per step: smaller files take fewer steps. Default `65536`. */
  readonly chunkBytes?: number;
  /** The pause between two steps, in milliseconds, so the bar moves at a watchable pace. Default `100`. */
  readonly stepDelayMs?: number;
  /** The largest upload accepted, in bytes. Default `16 MiB`. */
  readonly maxUploadBytes?: number;
}

/** The job's input: the upload it works on. */
export interface UploadInput {
  readonly uploadId: string;
  readonly name: string;
  readonly size: number;
}

/** The job's result. */
export interface UploadResult {
  readonly name: string;
  readonly size: number;
  readonly sha256: string;
}

/** A running upload-progress server. */
export interface UploadProgressServer extends Running {
  /** The job registry, for tests and the demo. */
  readonly jobs: JobRegistry;
}

/**
 * Starts the upload-progress server.
 *
 * @example
 * ```ts
 * const { url, close } = await start({ port: 0 });
 * console.log(`open ${url}`);
 * ```
 */
export async function start(options: UploadProgressOptions = {}): Promise<UploadProgressServer> {
  const chunkBytes = options.chunkBytes ?? 64 * 1024;
  const stepDelayMs = options.stepDelayMs ?? 100;
  const maxUploadBytes = options.maxUploadBytes ?? 16 * 1024 * 1024;
  if (!(Number.isSafeInteger(chunkBytes) && chunkBytes > 0)) {
    throw new InvalidArgumentError('chunkBytes must be a positive integer', 'chunkBytes');
  }
  // The bytes stay beside the registry rather than in the job's input, which is stored and fingerprinted.
  const uploads = new Map<string, Buffer>();

  const jobs = new JobRegistry().define<UploadInput, UploadResult>(
    'process-upload',
    async ({ input, signal, reportProgress }) => {
      const bytes = uploads.get(input.uploadId);
      if (bytes === undefined) throw new Error(`upload ${input.uploadId} is gone`);
      try {
        const hash = createHash('sha256');
        const total = bytes.length;
        let done = 0;
        do {
          const end = Math.min(total, done + chunkBytes);
          hash.update(bytes.subarray(done, end));
          done = end;
          const percent = total === 0 ? 100 : Math.floor((done / total) * 100);
          reportProgress({ percent, message: `hashed ${done} of ${total} bytes` });
          // The abortable pause is where a cancel lands: sleep rejects with the signal's reason.
          await sleep(stepDelayMs, { signal });
        } while (done < total);
        return { name: input.name, size: bytes.length, sha256: hash.digest('hex') };
      } finally {
        uploads.delete(input.uploadId);
      }
    },
  );
  const handler = new PollkitHandler({ jobs });
  const page = pageRoute(new URL('.', import.meta.url));

  const upload = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
    let bytes: Buffer;
    try {
      bytes = await readBody(req, maxUploadBytes);
    } catch {
      res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' }).end('upload too large');
      return;
    }
    const uploadId = randomUUID();
    uploads.set(uploadId, bytes);
    const name = url.searchParams.get('name') ?? 'upload.bin';
    let job: JobSnapshot;
    try {
      job = await jobs.submit('process-upload', { uploadId, name, size: bytes.length });
    } catch (error) {
      uploads.delete(uploadId);
      if (!isPollkitError(error, 'overloaded')) throw error;
      // A full queue is a reason to come back later, not a server error.
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '5' }).end('busy: try again shortly');
      return;
    }
    // The same answer pollkit's own POST {p}/jobs gives: 202, where to poll, and how soon.
    const location = new URL(`${handler.prefix}/jobs/${encodeURIComponent(job.id)}`, url).toString();
    res
      .writeHead(202, {
        'content-type': 'application/json',
        location,
        'operation-location': location,
        'retry-after': String(jobs.retryAfterSeconds(job)),
        etag: `"${job.version}"`,
        'cache-control': 'no-store',
      })
      .end(JSON.stringify(job));
  };

  const pollkit = createNodeListener(handler, {
    onUnmatched: (req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const answer = req.method === 'POST' && path === '/upload' ? upload(req, res) : servePage(req, res);
      answer.catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(error));
      });
    },
  });
  const servePage = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!(await page(req, res))) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  };

  const server = await listen(pollkit, options);
  return {
    url: server.url,
    jobs,
    close: async () => {
      await handler.close();
      await jobs.close();
      await server.close();
    },
  };
}

if (isMain(import.meta.url)) {
  const { url, close } = await start({ port: Number(process.env['PORT'] ?? 3000) });
  console.log(`upload-progress: open ${url}`);
  process.once('SIGINT', () => void close().then(() => process.exit(0)));
}
