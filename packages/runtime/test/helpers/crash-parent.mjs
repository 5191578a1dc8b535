// A parent that creates and starts a container, says so, and waits to be killed with
// SIGKILL by the test (crash test of container.test.ts). Runs the built package.
//   node crash-parent.mjs STORE STATE CGROUP_PARENT IMAGE [run-then-exit]
// With run-then-exit it run()s `true`, prints the id and calls process.exit() at once, which
// cuts the removal run() left to finish in the background.
import { Runtime, run } from '../../dist/index.js'

const [root, stateRoot, cgroupParent, image, mode] = process.argv.slice(2)
const rt = await Runtime.open({ root, stateRoot, cgroupParent, fsync: false })
if (mode === 'run-then-exit') {
  const r = await run({ runtime: rt, image, cmd: ['true'] })
  process.stdout.write(`ran ${r.id}\n`)
  process.exit(0)
}
const c = await rt.create({ image, cmd: ['sleep', '600'] })
await c.start()
await c.settled()
process.stdout.write(`started ${c.id}\n`)
setInterval(() => {}, 1000)
