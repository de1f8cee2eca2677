/**
 * A free TCP port on 127.0.0.1 for a server a test starts as a child process (redis-server, nginx):
 * taken by nobody at the moment of asking.
 *
 * @module
 */
import { createServer } from 'node:net';

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}
