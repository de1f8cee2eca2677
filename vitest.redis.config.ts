import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string): string => fileURLToPath(new URL(`./src/${path}`, import.meta.url));

// The Redis suite (`npm run test:redis`): it starts its own redis-server processes on free ports and
// child server processes (pollkit servers, BullMQ workers), so it runs apart from the default suite and one file at a time.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^pollkit$/, replacement: src('index.ts') },
      { find: /^pollkit\/(client|server|redis|bullmq)$/, replacement: src('$1/index.ts') },
      { find: /^pollkit\/(node|fetch|express|fastify|koa|hono|ws)$/, replacement: src('adapters/$1.ts') },
    ],
  },
  test: {
    include: ['test/redis/**/*.test.ts', 'test/bullmq/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
