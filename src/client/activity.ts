/**
 * Page visibility and network state as a gate that pollers wait on before each request. A hidden tab
 * or an offline laptop that keeps polling spends the user's battery and the server's capacity on
 * answers nobody reads; when the page is shown or the network returns, the poller asks at once instead
 * of finishing a stale wait. Opt-in, and inert where there is no `document` or `navigator` (Node).
 *
 * @module
 */
import { abortReason, onAbort } from '../core/abort.js';

/** The part of `EventTarget` the gate uses. */
export interface EventTargetLike {
  /** Calls `listener` whenever an event named `type` (`visibilitychange`, `online`, `offline`) fires. */
  addEventListener(type: string, listener: () => void): void;
  /** Stops calling a listener added with the same `type` and function. */
  removeEventListener(type: string, listener: () => void): void;
}

/** The part of `document` the gate uses (inject one in tests). */
export interface VisibilityLike extends EventTargetLike {
  /** `'hidden'` pauses polling; any other value (or none) lets it run. */
  readonly visibilityState?: string;
  /** The older flag, for documents without `visibilityState`: `true` pauses polling. */
  readonly hidden?: boolean;
}

/** Where the gate learns the network state: `navigator.onLine` and the `online`/`offline` events of `window`. */
export interface NetworkLike {
  /** Read before each request; polling pauses while `onLine` is `false`. */
  readonly navigator: {
    /** `false` while the browser believes it has no network. */
    readonly onLine: boolean;
  };
  /** Where `online` and `offline` events fire (`window` in a browser). */
  readonly events: EventTargetLike;
}

/**
 * The activity options every poller accepts. Pausing only holds back the *next* request: one already
 * in flight when the page hides or the network drops is never aborted and re-sent, so a request is
 * never replayed because of a pause (which matters for anything not idempotent).
 */
export interface ActivityOptions {
  /**
   * Pause while the page is hidden and poll at once when it is shown again. `true` uses
   * `globalThis.document` (inert without one); pass a document-like object to inject. Default `false`.
   */
  readonly pauseWhenHidden?: boolean | VisibilityLike;
  /**
   * Pause while the browser reports being offline and poll at once when it is back online. `true` uses
   * `globalThis.navigator` and `globalThis` for the events (inert without them). Default `false`.
   */
  readonly pauseWhenOffline?: boolean | NetworkLike;
}

/** Why a poller is paused. */
export type PauseReason = 'hidden' | 'offline';

function isEventTarget(value: unknown): value is EventTargetLike {
  return typeof (value as EventTargetLike | undefined)?.removeEventListener === 'function';
}

/**
 * Tracks visibility and connectivity; {@link ActivityGate.whenActive} resolves once both allow polling.
 *
 * @example
 * ```ts
 * import { ActivityGate } from 'pollkit/client';
 *
 * const gate = new ActivityGate({ pauseWhenHidden: true, pauseWhenOffline: true });
 * await gate.whenActive(); // immediate in Node; waits for a visible, online page in browsers
 * gate.dispose();
 * ```
 */
export class ActivityGate {
  readonly #document: VisibilityLike | undefined;
  readonly #network: NetworkLike | undefined;
  readonly #waiters = new Set<() => void>();
  readonly #onChange = (): void => {
    if (this.active) for (const wake of [...this.#waiters]) wake();
  };
  #listening = false;

  constructor(options: ActivityOptions = {}) {
    const { pauseWhenHidden: hidden, pauseWhenOffline: offline } = options;
    const { document, navigator } = globalThis as { document?: unknown; navigator?: { onLine?: unknown } };
    this.#document = hidden === true ? (isEventTarget(document) ? document : undefined) : hidden || undefined;
    this.#network =
      offline === true
        ? typeof navigator?.onLine === 'boolean' && isEventTarget(globalThis)
          ? { navigator: navigator as { onLine: boolean }, events: globalThis }
          : undefined
        : offline || undefined;
  }

  /** Why polling should pause now, or `undefined` when it may go on. */
  get pauseReason(): PauseReason | undefined {
    const document = this.#document;
    if (document !== undefined && (document.visibilityState === 'hidden' || document.hidden === true)) return 'hidden';
    if (this.#network?.navigator.onLine === false) return 'offline';
    return undefined;
  }

  /** True when nothing asks polling to pause. */
  get active(): boolean {
    return this.pauseReason === undefined;
  }

  /**
   * Resolves at once when active, otherwise as soon as the page is visible and online again; rejects
   * with the signal's reason if it aborts first.
   */
  whenActive(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (this.active) return Promise.resolve();
    this.#listen(true);
    return new Promise<void>((resolve, reject) => {
      const waiters = this.#waiters;
      const wake = (error?: unknown): void => {
        waiters.delete(wake);
        removeAbort?.();
        if (waiters.size === 0) this.#listen(false);
        if (error === undefined) resolve();
        else reject(error);
      };
      waiters.add(wake);
      const removeAbort = signal && onAbort(signal, () => wake(abortReason(signal)));
    });
  }

  /** Removes every listener the gate added; pending waits stay pending until their signal aborts. */
  dispose(): void {
    this.#listen(false);
  }

  // Listeners exist only while someone waits, so an idle poller leaves the page's targets untouched.
  #listen(on: boolean): void {
    if (this.#listening === on) return;
    this.#listening = on;
    const method = on ? 'addEventListener' : 'removeEventListener';
    this.#document?.[method]('visibilitychange', this.#onChange);
    for (const type of ['online', 'offline']) this.#network?.events[method](type, this.#onChange);
  }
}
