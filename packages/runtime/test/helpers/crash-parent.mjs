// A parent that creates and starts a container, says so, and waits to be killed with
// SIGKILL by the test (crash test of container.test.ts). Runs the built package.
//   node crash-parent.mjs STORE STATE CGROUP_PARENT IMAGE
import { Runtime } from '../../dist/index.js'

const [root, stateRoot, cgroupParent, image] = process.argv.slice(2)
const rt = await Runtime.open({ root, stateRoot, cgroupParent, fsync: false })
const c = await rt.create({ image, cmd: ['sleep', '600'] })
await c.start()
process.stdout.write(`started ${c.id}\n`)
setInterval(() => {}, 1000)
