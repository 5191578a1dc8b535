import { defineConfig } from 'vitest/config'

// Pure logic: no kernel, no network, no files. Everything runs in parallel.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
  },
})
