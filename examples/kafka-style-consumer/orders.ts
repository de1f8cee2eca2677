/**
 * What the broker and its consumers agree on: the topic's name and the shape of its records. Kept apart
 * from both, so the consumer does not load the server to learn it.
 *
 * @module
 */

/** The topic orders are appended to. */
export const TOPIC = 'orders';

/** One order record. */
export interface Order {
  readonly id: number;
  readonly item: string;
  readonly quantity: number;
}
