/**
 * Bridge networking end to end, inside a netns that plays the host (never the machine's own).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Network, Runtime, run } from '../src/index.js'
import { makeRuntimeEnv, type RuntimeEnv } from './helpers/runtime-env.js'
import { makeNetHost, type NetHost } from './helpers/net-host.js'

let env: RuntimeEnv
let host: NetHost
let rt: Runtime
let clean: Awaited<ReturnType<NetHost['snapshot']>>

beforeAll(async () => {
  env = await makeRuntimeEnv()
  host = await makeNetHost()
  clean = await host.snapshot()
  // A second runtime over the same store and state, whose "host" is the test netns.
  rt = await Runtime.open({ root: `${env.dir}/store`, stateRoot: `${env.dir}/run`, cgroupParent: env.cgroupParent, fsync: false, hostNetns: host.pid })
})

afterAll(async () => {
  for (const n of await Network.list({ runtime: rt }).catch(() => [])) await n.remove().catch(() => {})
  await host?.dispose()
  await env?.dispose()
})

describe('bridge networks', () => {
  it("the issue's snippet: a container reaches another by name", async () => {
    const image = env.image
    const net = await Network.create({ name: 'probe', runtime: rt })
    expect(net.subnet).toMatch(/^10\.89\.\d+\.0\/24$/)
    const web = await rt.create({ image, name: 'web', network: 'probe', cmd: ['busybox', 'httpd', '-f', '-p', '8080', '-h', '/etc'] })
    await web.start()
    try {
      const r = await run({ runtime: rt, image, network: 'probe', cmd: ['busybox', 'wget', '-qO-', 'http://web:8080/hostname'] })
      expect(r.stderr).toBe('')
      expect(r.exitCode).toBe(0)
      expect(r.stdout).toBe('web\n')
    } finally {
      await web.delete({ force: true })
      await net.remove()
    }
    expect(await host.snapshot()).toEqual(clean)
  })
})
