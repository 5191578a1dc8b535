/**
 * Mirrors: reads go to a registry's mirrors first, in order, and fall back to the next (and
 * finally the registry itself) when a mirror lacks the content or fails.
 */
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pushFixtures, startFaultServer, startRegistry, type FaultServer, type PushedFixtures, type Registry } from '@ctr/registry-harness'
import { OciLayout, RegistryClient } from '../src/index.js'

let origin: Registry
let mirror: Registry
let originProxy: FaultServer
let mirrorProxy: FaultServer
let emptyMirror: Registry
let emptyProxy: FaultServer
let pushedOrigin: PushedFixtures
let pushedMirror: PushedFixtures
let tmp: string

beforeAll(async () => {
  origin = await startRegistry()
  mirror = await startRegistry()
  emptyMirror = await startRegistry()
  pushedOrigin = await pushFixtures(origin, undefined, ['busybox'])
  pushedMirror = await pushFixtures(mirror, undefined, ['busybox'])
  originProxy = await startFaultServer({ upstream: origin })
  mirrorProxy = await startFaultServer({ upstream: mirror })
  emptyProxy = await startFaultServer({ upstream: emptyMirror })
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ctr-mirrors-'))
})

afterAll(async () => {
  for (const s of [originProxy, mirrorProxy, emptyProxy]) await s?.stop()
  for (const r of [origin, mirror, emptyMirror]) await r?.stop()
  await pushedOrigin?.fixtures.close()
  await pushedMirror?.fixtures.close()
  if (tmp) await fs.rm(tmp, { recursive: true, force: true })
})

function clientWith(mirrors: string[]): RegistryClient {
  return new RegistryClient({
    insecure: [originProxy.host, ...mirrors],
    mirrors: { [originProxy.host]: mirrors },
    dockerConfig: false,
    retry: { attempts: 2, baseDelayMs: 1 },
  })
}

const ref = () => `${originProxy.host}/${pushedOrigin.images.busybox.repository}:${pushedOrigin.images.busybox.tag}`

describe('mirrors', () => {
  it('a mirror that has the image serves the whole pull; the registry sees nothing', async () => {
    for (const s of [originProxy, mirrorProxy]) s.reset()
    const c = clientWith([mirrorProxy.host])
    try {
      const img = await c.pull(ref(), { into: await OciLayout.open(path.join(tmp, 'a')) })
      expect(img.digest).toBe(pushedOrigin.images.busybox.digest)
      expect(mirrorProxy.requests.filter((r) => r.route === 'blob').length).toBeGreaterThan(0)
      expect(originProxy.requests.filter((r) => r.route === 'manifest' || r.route === 'blob')).toEqual([])
    } finally {
      await c.close()
    }
  })

  it('a mirror without it (404) and a broken one (500) are skipped, in order, for the registry', async () => {
    for (const s of [originProxy, mirrorProxy, emptyProxy]) s.reset()
    mirrorProxy.setFaults({ kind: 'server-error', match: 'any', times: 1000 })
    const c = clientWith([emptyProxy.host, mirrorProxy.host])
    try {
      const img = await c.pull(ref(), { into: await OciLayout.open(path.join(tmp, 'b')) })
      expect(img.digest).toBe(pushedOrigin.images.busybox.digest)
      expect(emptyProxy.requests.some((r) => r.route === 'manifest' && r.status === 404)).toBe(true)
      expect(mirrorProxy.requests.some((r) => r.status === 500)).toBe(true)
      expect(originProxy.requests.some((r) => r.route === 'manifest' && r.status === 200)).toBe(true)
      // the mirror was asked before the registry
      const firstEmpty = emptyProxy.requests.find((r) => r.route === 'manifest')!.time
      const firstOrigin = originProxy.requests.find((r) => r.route === 'manifest')!.time
      expect(firstEmpty).toBeLessThanOrEqual(firstOrigin)
    } finally {
      mirrorProxy.setFaults(undefined)
      await c.close()
    }
  })
})
