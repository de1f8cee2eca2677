/**
 * The listener set behind every store's `onChange`. A store calls its listeners after a change is
 * committed, so one listener that throws must neither undo the change nor starve the others: its
 * error is rethrown on a microtask, where it surfaces as an uncaught error the way `EventTarget`'s do.
 *
 * @internal
 * @module
 */

/** A set of change listeners with the error isolation stores need. @internal */
export class ChangeListeners<Change> {
  readonly #listeners = new Set<(change: Change) => void>();

  /** Adds a listener; returns the function that removes it. */
  add(listener: (change: Change) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Calls every listener with `change`, isolating each from the others' failures. */
  emit(change: Change): void {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  /** Removes every listener. */
  clear(): void {
    this.#listeners.clear();
  }
}
