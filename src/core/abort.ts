/**
 * Abort helpers that never leak listeners: every listener added here is removed when the wait ends,
 * however it ends, so a long-lived signal shared by thousands of waits does not accumulate them.
 *
 * @module
 */
import { type Clock, systemClock } from './clock.js';
import { AbortedError } from './errors.js';

/**
 * The reason to reject with for an aborted signal: its own `reason`, or an {@link AbortedError} when
 * the signal carries none.
 *
 * @example
 * ```ts
 * import { abortReason } from 'pollkit';
 * const controller = new AbortController();
 * controller.abort();
 * console.log(abortReason(controller.signal));
 * ```
 */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new AbortedError();
}

// One real listener per signal, fanning out to every wait on it: Node warns (MaxListenersExceeded)
// past 10 listeners on one EventTarget, and one signal shared by many waits is how users cancel a page.
// The listener leaves with the last wait, so an idle long-lived signal holds nothing of ours.
interface Waiters {
  readonly set: Set<() => void>;
  readonly fire: () => void;
}
const waiters = new WeakMap<AbortSignal, Waiters>();

/**
 * Calls `listener` once when `signal` aborts; returns the function that removes it. However many
 * waits share one signal, pollkit adds a single listener to it, so Node never warns about a leak.
 *
 * @example
 * ```ts
 * import { onAbort } from 'pollkit';
 * const controller = new AbortController();
 * const remove = onAbort(controller.signal, () => console.log('aborted'));
 * remove();
 * ```
 */
export function onAbort(signal: AbortSignal, listener: () => void): () => void {
  let entry = waiters.get(signal);
  if (entry === undefined) {
    const set = new Set<() => void>();
    const fire = (): void => {
      waiters.delete(signal);
      for (const each of set) each();
    };
    entry = { set, fire };
    waiters.set(signal, entry);
    signal.addEventListener('abort', fire, { once: true });
  }
  const { set, fire } = entry;
  // A wrapper per registration, so the same function registered twice is called twice.
  const one = (): void => listener();
  set.add(one);
  return () => {
    if (set.delete(one) && set.size === 0 && waiters.get(signal) === entry) {
      waiters.delete(signal);
      signal.removeEventListener('abort', fire);
    }
  };
}

/**
 * Throws the signal's reason if it is aborted.
 *
 * @example
 * ```ts
 * import { throwIfAborted } from 'pollkit';
 * throwIfAborted(undefined); // no-op
 * ```
 */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw abortReason(signal);
}

/** Options for {@link sleep}. */
export interface SleepOptions {
  /** Ends the sleep early, rejecting with the signal's reason. */
  readonly signal?: AbortSignal | undefined;
  /** The clock whose timer to use. Default {@link systemClock}. */
  readonly clock?: Clock | undefined;
  /** Let a Node process exit while sleeping. Default `false`. */
  readonly unref?: boolean | undefined;
}

/**
 * Resolves after `ms` milliseconds; rejects with the signal's reason if aborted before or during.
 *
 * @example
 * ```ts
 * import { sleep } from 'pollkit';
 * const controller = new AbortController();
 * setTimeout(() => controller.abort(), 10);
 * await sleep(1000, { signal: controller.signal }).catch(() => console.log('woken early'));
 * ```
 */
export function sleep(ms: number, options: SleepOptions = {}): Promise<void> {
  const { signal, clock = systemClock } = options;
  if (signal?.aborted === true) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    let remove: (() => void) | undefined;
    const handle = clock.setTimeout(
      () => {
        remove?.();
        resolve();
      },
      ms,
      { unref: options.unref === true },
    );
    if (signal !== undefined) {
      remove = onAbort(signal, () => {
        clock.clearTimeout(handle);
        reject(abortReason(signal));
      });
    }
  });
}

/**
 * Settles like `promise`, or rejects with the signal's reason as soon as it aborts. The promise
 * itself is not cancelled (it has no way to be); its outcome is ignored after an abort.
 *
 * @example
 * ```ts
 * import { abortable } from 'pollkit';
 * const controller = new AbortController();
 * const value = await abortable(Promise.resolve(42), controller.signal);
 * ```
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const remove = onAbort(signal, () => reject(abortReason(signal)));
    promise.then(
      (value) => {
        remove();
        resolve(value);
      },
      (error: unknown) => {
        remove();
        reject(error);
      },
    );
  });
}

/** A derived signal and the function that detaches it from its sources. */
export interface LinkedSignal {
  /** Aborts when any source aborts (or {@link LinkedSignal.abort} is called), with that reason. */
  readonly signal: AbortSignal;
  /** Aborts the linked signal directly. */
  abort(reason?: unknown): void;
  /** Removes the listeners on the sources; call it when the work the signal guards is over. */
  dispose(): void;
}

/**
 * A signal that aborts when any of `sources` aborts, which the caller can also abort itself; unlike
 * `AbortSignal.any`, its listeners on long-lived sources are removed by {@link LinkedSignal.dispose}.
 *
 * @example
 * ```ts
 * import { linkSignals } from 'pollkit';
 * const user = new AbortController();
 * const link = linkSignals(user.signal);
 * try {
 *   await fetch('https://example.com', { signal: link.signal });
 * } finally {
 *   link.dispose();
 * }
 * ```
 */
export function linkSignals(...sources: readonly (AbortSignal | undefined)[]): LinkedSignal {
  const controller = new AbortController();
  const listening: (() => void)[] = [];
  const dispose = (): void => {
    for (const remove of listening.splice(0)) remove();
  };
  for (const source of sources) {
    if (source === undefined) continue;
    if (source.aborted) {
      controller.abort(abortReason(source));
      break;
    }
    listening.push(
      onAbort(source, () => {
        dispose();
        controller.abort(abortReason(source));
      }),
    );
  }
  if (controller.signal.aborted) dispose();
  return {
    signal: controller.signal,
    abort(reason?: unknown): void {
      dispose();
      controller.abort(reason ?? new AbortedError());
    },
    dispose,
  };
}
