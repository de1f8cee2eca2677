/**
 * The child side of `child-server.ts`: builds the server of `SCENARIO`, listens on a free port,
 * reports it, and answers `stats` with the process's memory figures and the scenario's own numbers.
 *
 * @module
 */
import type { Server } from 'node:http';
import { scenarios } from './scenarios.js';

const name = process.env['SCENARIO'] ?? '';
const build = scenarios[name];
if (build === undefined) throw new Error(`no scenario ${name}`);
const { server, stats, close, commands } = await build();

process.on('message', (message: { seq: number; cmd: string; gc?: boolean; args?: unknown[] }) => {
  if (message.cmd === 'stats') {
    if (message.gc === true) (globalThis as { gc?: () => void }).gc?.();
    const memory = process.memoryUsage();
    process.send?.({
      seq: message.seq,
      value: { heapUsed: memory.heapUsed, rss: memory.rss, ...(stats?.() ?? {}) },
    });
    return;
  }
  const command = commands?.[message.cmd];
  if (command === undefined) return;
  void command(...(message.args ?? [])).then((value) => process.send?.({ seq: message.seq, value }));
});
process.once('SIGTERM', () => {
  void (async () => {
    await close?.();
    (server as Server).closeAllConnections();
    server.close(() => process.exit(0));
  })();
});

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.send?.({ seq: 0, value: { port: typeof address === 'object' && address !== null ? address.port : 0 } });
});
