// Helper for the parent-death and unref tests.
//   node spawn-and-wait.mjs <package entry> <options-json> <mode>
// Spawns a child with the given options, prints {"pid": <host pid>} and a newline, then
//   mode "stay":  keeps running (the test SIGKILLs this process);
//   mode "unref": calls child.unref() and lets the event loop run dry (this process
//                 should exit on its own although the child still runs).
import { pathToFileURL } from 'node:url'

const { spawn } = await import(pathToFileURL(process.argv[2]).href)
const options = JSON.parse(process.argv[3])
const mode = process.argv[4] ?? 'stay'

const child = await spawn(options)
process.stdout.write(JSON.stringify({ pid: child.pid }) + '\n')
if (mode === 'stay') {
  setInterval(() => {}, 1 << 30)
} else {
  child.unref()
}
