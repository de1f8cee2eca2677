import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string): string => fileURLToPath(new URL(`./src/${path}`, import.meta.url));

// The shared-cache suite (`npm run test:cdn`): it starts Debian's nginx on free ports in front of
// origins it starts itself, with thousands of clients, so it runs apart from the default suite and one
// file at a time.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^pollkit$/, replacement: src('index.ts') },
      { find: /^pollkit\/(client|server|redis)$/, replacement: src('$1/index.ts') },
      { find: /^pollkit\/(node|fetch|express|fastify|koa|hono|ws)$/, replacement: src('adapters/$1.ts') },
    ],
  },
  test: {
    include: ['test/cdn/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
