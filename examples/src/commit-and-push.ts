/**
 * Commit a container into a new image, push it to a registry, pull it back into a fresh store
 * and run it: `docker run` + `docker commit` + `docker push` + `docker run --pull always`.
 *
 * As root, from the repository root, after a build:
 *
 *     node examples/dist/commit-and-push.js --local            # starts Debian's docker-registry on 127.0.0.1
 *     node examples/dist/commit-and-push.js 127.0.0.1:5000     # a registry you run (plain HTTP on loopback)
 *
 * A registry of your own, with Debian's `docker-registry` package:
 *
 *     printf 'version: 0.1\nstorage: {filesystem: {rootdirectory: /tmp/reg}}\nhttp: {addr: 127.0.0.1:5000}\n' > /tmp/reg.yml
 *     docker-registry serve /tmp/reg.yml
 */
import { spawn } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { RegistryClient } from '@ctr/registry-client'
import { getDefaultRuntime, run, Runtime } from '@ctr/runtime'
import { busyboxImage } from './busybox-image.js'

const arg = process.argv[2]
if (!arg) {
  console.error('usage: node examples/dist/commit-and-push.js --local | REGISTRY_HOST:PORT')
  process.exit(2)
}
const registry = arg === '--local' ? await startLocalRegistry() : { host: arg, stop: async () => {} }
const target = `${registry.host}/examples/greeting:v1`
const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'ctr-commit-and-push-'))
let fresh: Runtime | undefined
try {
  // 1. Run a container that changes its root file system, and keep it (remove: false).
  const made = await run({ image: await busyboxImage(), cmd: ['sh', '-c', 'echo "made in container $(hostname)" > /etc/greeting'], remove: false })
  const runtime = await getDefaultRuntime()
  const container = await runtime.get(made.id)
  try {
    // 2. Commit its changes (the snapshot named by the container id) as a new layer and image.
    const image = await runtime.store.commit(made.id, {
      ref: target,
      message: 'echo greeting > /etc/greeting',
      changes: { cmd: ['cat', '/etc/greeting'] },
    })
    console.log(`committed ${image.ref}: ${image.digest}, new layer ${image.layer.size} bytes`)
  } finally {
    await container.delete()
  }

  // 3. Push it: blobs the registry lacks go up, then the manifest under the tag.
  const client = new RegistryClient({ insecure: [registry.host] })
  const pushed = await client.push(runtime.store, target, target)
  console.log(`pushed ${target}: ${pushed.digest} (${pushed.uploaded} blobs uploaded, ${pushed.existing} already there)`)
  await client.close()

  // 4. A fresh runtime (empty store) pulls it back and runs it: the file is in the image now.
  fresh = await Runtime.open({ root: path.join(scratch, 'store'), stateRoot: path.join(scratch, 'run'), registry: { insecure: [registry.host] } })
  const r = await run({ runtime: fresh, image: target, pull: 'always' })
  console.log(`pulled and ran ${target} in a fresh store: ${r.stdout.trim()} (exit code ${r.exitCode})`)
} finally {
  // run() removes its container in the background: close() waits for that (and closes the
  // registry client) before the store goes.
  try {
    await fresh?.close()
    await fs.rm(scratch, { recursive: true, force: true })
  } finally {
    await registry.stop() // whatever failed above, the registry we started does not outlive us
  }
}

/** Debian's docker-registry on a free port of 127.0.0.1, storing into a temporary directory. */
async function startLocalRegistry(): Promise<{ host: string; stop: () => Promise<void> }> {
  const bin = '/usr/bin/docker-registry'
  await fs.access(bin).catch(() => {
    throw new Error(`${bin} is missing: apt-get install docker-registry`)
  })
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ctr-registry-'))
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
  const host = `127.0.0.1:${port}`
  const config = { version: 0.1, log: { level: 'error' }, storage: { filesystem: { rootdirectory: path.join(dir, 'data') } }, http: { addr: host } }
  await fs.writeFile(path.join(dir, 'config.yml'), JSON.stringify(config)) // JSON is YAML
  // A clean environment: the registry reads every REGISTRY_* variable as configuration.
  const child = spawn(bin, ['serve', path.join(dir, 'config.yml')], { env: {}, stdio: 'ignore' })
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await exited
    }
    await fs.rm(dir, { recursive: true, force: true })
  }
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://${host}/v2/`).then((res) => res.ok, () => false)
    if (ok) break
    if (i === 200 || child.exitCode !== null) {
      await stop()
      throw new Error(`docker-registry did not start on ${host}`)
    }
    await sleep(50)
  }
  console.log(`started docker-registry on ${host}`)
  return { host, stop }
}
