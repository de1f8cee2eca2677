/**
 * A synchronous read of a {@link MemoryJobStore}'s job, for the registry's long polls (internal: not
 * exported from the package). On the default store a wait then starts at once, where `get` would only
 * wrap the same synchronous read in a promise. The store hands its reader over when its class is
 * defined, since only the class can see its private map.
 *
 * @internal
 * @module
 */
import type { StoredJob } from './job-store.js';
import type { MemoryJobStore } from './memory-job-store.js';

type Peek = (store: MemoryJobStore, id: string) => StoredJob | undefined;

let peek: Peek = () => undefined;

/** Called once, by `MemoryJobStore`'s static initializer. @internal */
export function providePeek(reader: Peek): void {
  peek = reader;
}

/** The job `store` holds under `id`, read synchronously. @internal */
export function peekMemoryJob(store: MemoryJobStore, id: string): StoredJob | undefined {
  return peek(store, id);
}
