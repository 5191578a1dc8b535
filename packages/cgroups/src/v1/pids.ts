/**
 * cgroup v1 pids: pids.max and pids.current — the same files, with the same syntax, as on
 * v2, so the v2 functions serve both.
 */
export { applyPids, readPidsLimit, pidsStats } from '../v2/pids.js'
