/**
 * A binary min-heap keyed by a number. The in-memory stores keep expiry-ordered entries in it so a
 * retention sweep touches only what has expired, never the whole store.
 *
 * @module
 */

/**
 * A min-heap of `(key, value)` pairs; ties come out in no particular order.
 *
 * @example
 * ```ts
 * import { MinHeap } from './min-heap.js';
 * const heap = new MinHeap<string>();
 * heap.push(30, 'c');
 * heap.push(10, 'a');
 * console.log(heap.peekKey(), heap.pop()); // 10 'a'
 * ```
 */
export class MinHeap<Value> {
  readonly #keys: number[] = [];
  readonly #values: Value[] = [];

  /** How many entries the heap holds. */
  get size(): number {
    return this.#keys.length;
  }

  /** Adds an entry in O(log n). */
  push(key: number, value: Value): void {
    this.#keys.push(key);
    this.#values.push(value);
    let index = this.#keys.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (this.#keys[parent]! <= key) break;
      this.#swap(index, parent);
      index = parent;
    }
  }

  /** The smallest key, or `undefined` when empty. */
  peekKey(): number | undefined {
    return this.#keys[0];
  }

  /** The value with the smallest key, or `undefined` when empty. */
  peek(): Value | undefined {
    return this.#values[0];
  }

  /** Removes and returns the value with the smallest key, in O(log n). */
  pop(): Value | undefined {
    const size = this.#keys.length;
    if (size === 0) return undefined;
    const top = this.#values[0];
    this.#swap(0, size - 1);
    this.#keys.pop();
    this.#values.pop();
    let index = 0;
    const last = size - 1;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let smallest = index;
      if (left < last && this.#keys[left]! < this.#keys[smallest]!) smallest = left;
      if (right < last && this.#keys[right]! < this.#keys[smallest]!) smallest = right;
      if (smallest === index) break;
      this.#swap(index, smallest);
      index = smallest;
    }
    return top;
  }

  #swap(a: number, b: number): void {
    const key = this.#keys[a]!;
    this.#keys[a] = this.#keys[b]!;
    this.#keys[b] = key;
    const value = this.#values[a]!;
    this.#values[a] = this.#values[b]!;
    this.#values[b] = value;
  }
}
