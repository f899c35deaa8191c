import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Integration tests each start PostgreSQL clusters; on 2 cores running them one file at a time is faster and steadier.
    fileParallelism: false,
    pool: 'forks',
  },
});
