import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

// Tests run against the TypeScript sources, so a change is tested without a build.
// (Subprocess tests of the CLI use the built dist/, which `pnpm test` builds first.)
const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      '@loom/tensor-core': src('tensor-core'),
      '@loom/optimizer': src('optimizer'),
      '@loom/data': src('data'),
      '@loom/parameter-server': src('parameter-server'),
      '@loom/worker': src('worker'),
    },
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    // Two cores: one test file per core, never more.
    maxWorkers: 2,
    pool: 'forks',
  },
});
