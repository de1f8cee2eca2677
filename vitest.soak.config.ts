import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string): string => fileURLToPath(new URL(`./src/${path}`, import.meta.url));

// The soak suite (`npm run test:soak`): long runs against child-process servers (a steady submit
// rate, an abuse run), run once by CI rather than on every Node version, one file at a time.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^pollkit$/, replacement: src('index.ts') },
      { find: /^pollkit\/(client|server|redis)$/, replacement: src('$1/index.ts') },
      { find: /^pollkit\/(node|fetch|express|fastify|koa|hono|ws)$/, replacement: src('adapters/$1.ts') },
    ],
  },
  test: {
    include: ['test/soak/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
