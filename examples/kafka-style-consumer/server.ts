/**
 * The broker side of the Kafka-style consumer example: an `orders` topic served over HTTP, with a
 * producer that appends an order every `produceEveryMs`. Consumers fetch by offset and keep their own
 * position (see `consumer.ts`); the server keeps no per-consumer state at all.
 *
 * Run it: `node --import tsx examples/kafka-style-consumer/server.ts`, then in another terminal
 * `node --import tsx examples/kafka-style-consumer/consumer.ts http://127.0.0.1:3000/ /tmp/orders.offset`.
 *
 * @module
 */
import { PollkitHandler, TopicRegistry, systemClock, type TimerHandle } from 'pollkit/server';
import { createNodeListener } from 'pollkit/node';
import { type ListenOptions, type Running, isMain, listen } from '../shared/serve.js';
import { type Order, TOPIC } from './orders.js';

export { type Order, TOPIC } from './orders.js';

/** Options for {@link start}. */
export interface OrdersServerOptions extends ListenOptions {
  /** Appends an order this often, in milliseconds; `0` appends none on its own. Default `0`. */
  readonly produceEveryMs?: number;
  /** How many orders the log keeps; older ones are trimmed and answered with 410. Default `100000`. */
  readonly retainRecords?: number;
}

/** A running orders server. */
export interface OrdersServer extends Running {
  /** Appends orders now; resolves with the offset of the last one. */
  produce(count?: number): Promise<number>;
}

const ITEMS = ['apples', 'pears', 'plums', 'figs'] as const;

/**
 * Starts the orders server.
 *
 * @example
 * ```ts
 * const server = await start({ port: 0 });
 * await server.produce(100);
 * ```
 */
export async function start(options: OrdersServerOptions = {}): Promise<OrdersServer> {
  const topics = new TopicRegistry({ retention: { maxRecords: options.retainRecords ?? 100_000 } });
  const orders = topics.topic<Order>(TOPIC);
  const handler = new PollkitHandler({ topics });
  const listening = await listen(createNodeListener(handler), options);
  let next = 0;
  const produce = async (count = 1): Promise<number> => {
    let offset = -1;
    for (let i = 0; i < count; i++) {
      const id = next++;
      offset = await orders.append(
        { id, item: ITEMS[id % ITEMS.length]!, quantity: 1 + (id % 7) },
        { key: `c${id % 10}` },
      );
    }
    return offset;
  };
  let timer: TimerHandle | undefined;
  const every = options.produceEveryMs ?? 0;
  const tick = (): void => {
    void produce(1);
    timer = systemClock.setTimeout(tick, every, { unref: true });
  };
  if (every > 0) timer = systemClock.setTimeout(tick, every, { unref: true });
  return {
    url: listening.url,
    produce,
    close: async () => {
      if (timer !== undefined) systemClock.clearTimeout(timer);
      await handler.close();
      await topics.close();
      await listening.close();
    },
  };
}

if (isMain(import.meta.url)) {
  const { url, close } = await start({ port: Number(process.env['PORT'] ?? 3000), produceEveryMs: 500 });
  console.log(`orders broker at ${url} (an order every 500 ms)`);
  process.once('SIGINT', () => void close().then(() => process.exit(0)));
}
