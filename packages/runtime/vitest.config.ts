import { defineConfig } from 'vitest/config'

// Tests run as root against the real kernel (namespaces, mounts, seccomp): one file at a
// time so that the hygiene checks of a file see only what that file did.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['./test/setup/global.ts'],
    setupFiles: ['./test/setup/hygiene.ts'],
  },
})
