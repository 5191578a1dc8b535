import { defineConfig } from 'vitest/config'

// Real registries (Debian's docker-registry), real skopeo, local servers on 127.0.0.1.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // One file, sequential: the registries and fault servers are shared inside each describe.
    fileParallelism: false,
  },
})
