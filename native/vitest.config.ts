import { defineConfig } from 'vitest/config'

// Real kernel, as root: one file at a time.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 30_000,
  },
})
