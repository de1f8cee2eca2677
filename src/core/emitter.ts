/**
 * A typed event emitter small enough for a browser bundle: listeners per event name, called in the
 * order they were added, with the arguments the event map names. Pollers and subscribers extend it.
 *
 * @module
 */

/**
 * Listener argument lists by event name, e.g. `{ update: [value: number] }`: the constraint on an
 * {@link Emitter}'s event map, which interfaces meet without an index signature.
 */
export type EventMap<Events = Record<string, readonly unknown[]>> = { [E in keyof Events]: readonly unknown[] };

/** A listener for event `E` of map `Events`. */
export type Listener<Events extends EventMap<Events>, E extends keyof Events> = (...args: Events[E]) => void;

type AnyListener = (...args: readonly unknown[]) => void;

/**
 * The base of pollkit's pollers and subscribers: `on`, `once`, `off` and `emit`, typed by an event
 * map. A listener that throws propagates out of `emit`, as with Node's emitter.
 *
 * @example
 * ```ts
 * import { Emitter } from 'pollkit/client';
 * const emitter = new Emitter<{ tick: [count: number] }>();
 * emitter.on('tick', (count) => console.log(count));
 * emitter.emit('tick', 1);
 * ```
 */
export class Emitter<Events extends EventMap<Events>> {
  // One array per event; copied on write so an emit in progress is never disturbed by on/off.
  #listeners = new Map<keyof Events, AnyListener[]>();

  /** Adds a listener for `event`. Returns `this` for chaining. */
  on<E extends keyof Events>(event: E, listener: Listener<Events, E>): this {
    this.#listeners.set(event, [...(this.#listeners.get(event) ?? []), listener as AnyListener]);
    return this;
  }

  /** Adds a listener that is removed before its first call. Returns `this` for chaining. */
  once<E extends keyof Events>(event: E, listener: Listener<Events, E>): this {
    const wrapper = ((...args: Events[E]) => {
      this.off(event, wrapper);
      listener(...args);
    }) as Listener<Events, E> & { listener?: unknown };
    wrapper.listener = listener;
    return this.on(event, wrapper);
  }

  /** Removes one registration of `listener` for `event` (added by `on` or `once`). */
  off<E extends keyof Events>(event: E, listener: Listener<Events, E>): this {
    const list = this.#listeners.get(event);
    const at = list?.findIndex((l) => l === listener || (l as { listener?: unknown }).listener === listener) ?? -1;
    if (at >= 0) {
      const rest = list!.filter((_, i) => i !== at);
      if (rest.length === 0) this.#listeners.delete(event);
      else this.#listeners.set(event, rest);
    }
    return this;
  }

  /** Removes every listener of `event`, or of every event when none is named. */
  removeAllListeners(event?: keyof Events): this {
    if (event === undefined) this.#listeners.clear();
    else this.#listeners.delete(event);
    return this;
  }

  /** How many listeners `event` has. */
  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  /** Calls every listener of `event` with `args`; returns whether there was any. */
  emit<E extends keyof Events>(event: E, ...args: Events[E]): boolean {
    const list = this.#listeners.get(event);
    if (list === undefined) return false;
    for (const listener of list) listener(...args);
    return true;
  }
}
