// Helper for the fd-leak test. The test starts it through a shell that puts two pipes at
// fds 50 and 51 with dup2(), so they are inherited WITHOUT O_CLOEXEC (Node itself marks low
// inherited fds close-on-exec at startup, high ones it leaves alone).
// It spawns a child that lists its own fds, and prints a JSON report.
//   node fd-inherit.mjs <package entry> [fds-option-json]
import fs from 'node:fs'
import { pathToFileURL } from 'node:url'

const { spawn, readText } = await import(pathToFileURL(process.argv[2]).href)
const fds = JSON.parse(process.argv[3] ?? '[]')

const fdFlags = (fd) => {
  const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')
  return parseInt(/^flags:\s+([0-7]+)/m.exec(info)[1], 8)
}
const O_CLOEXEC = 0o2000000
const parent = {}
for (const fd of [50, 51]) {
  parent[fd] = { target: fs.readlinkSync(`/proc/self/fd/${fd}`), cloexec: (fdFlags(fd) & O_CLOEXEC) !== 0 }
}

const child = await spawn({
  argv: ['/bin/busybox', 'ls', '-l', '/proc/self/fd'],
  stdio: ['ignore', 'pipe', 'pipe'],
  fds,
})
const [stdout, stderr, exit] = await Promise.all([readText(child.stdout), readText(child.stderr), child.exited])
process.stdout.write(JSON.stringify({ parent, stdout, stderr, exit }))
