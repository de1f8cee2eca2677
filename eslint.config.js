// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Keeps the dependency direction of STYLE.md: adapters → server → core; client → core; stores (redis,
 * bullmq) → the server's store interfaces → core. The purgatory is an engine that knows nothing of jobs, topics
 * or HTTP.
 */
const restrict = (patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });

export default tseslint.config(
  { ignores: ['dist/**', 'docs/api/**', 'node_modules/**', 'coverage/**', '.ci/node24/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
    },
  },
  {
    files: ['src/core/**'],
    rules: restrict([
      { group: ['../*', '!../core', '!../core/*'], message: 'src/core imports nothing else of pollkit.' },
      { group: ['node:*'], message: 'src/core runs in browsers too: no Node built-ins.' },
    ]),
  },
  {
    files: ['src/client/**'],
    rules: restrict([
      { group: ['**/server/**', '**/server', '**/adapters/**'], message: 'The client never imports the server.' },
      { group: ['node:*'], message: 'The client runs in browsers too: no Node built-ins.' },
    ]),
  },
  {
    files: ['src/server/**'],
    rules: restrict([
      {
        group: ['**/client/**', '**/client', '**/adapters/**', '**/redis/**', '**/redis', '**/bullmq/**', '**/bullmq'],
        message: 'The server never imports the client, adapters or stores built on it.',
      },
    ]),
  },
  {
    files: ['src/server/purgatory/**'],
    rules: restrict([
      {
        group: [
          '**/jobs/**',
          '**/topics/**',
          '**/http/**',
          '**/client/**',
          '**/adapters/**',
          '**/redis/**',
          '**/bullmq/**',
        ],
        message: 'The purgatory is the engine: it knows nothing of jobs, topics or HTTP.',
      },
    ]),
  },
  {
    files: ['src/redis/**'],
    rules: restrict([
      {
        group: ['**/client/**', '**/client', '**/adapters/**', '**/http/**', '**/bullmq/**'],
        message: 'Stores build on the server core only: no client, no HTTP.',
      },
    ]),
  },
  {
    // The BullMQ store is a Redis store too: it shares the Redis stores' command guard and script runner.
    files: ['src/bullmq/**'],
    rules: restrict([
      {
        group: ['**/client/**', '**/client', '**/adapters/**', '**/http/**', '**/topics/**'],
        message: 'The BullMQ store builds on the server core only: no client, no HTTP, no topics.',
      },
    ]),
  },
  {
    files: ['src/adapters/**'],
    rules: restrict([{ group: ['**/client/**', '**/client'], message: 'Adapters translate for the server only.' }]),
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: { globals: { console: 'readonly', process: 'readonly', URL: 'readonly' } },
  },
);
