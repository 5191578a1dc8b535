/**
 * Misbehaving registries: a proxy in front of a real registry that corrupts, truncates,
 * rate-limits, fails, drops connections, redirects or trickles. Each must end in the right
 * typed error (or a recovered success), with nothing half-written in the sink.
 */
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pushFixtures, startFaultServer, startRegistry, type FaultServer, type PushedFixtures, type Registry } from '@ctr/registry-harness'
import { OciLayout, RegistryClient, RegistryError } from '../src/index.js'

let registry: Registry
let pushed: PushedFixtures
let proxy: FaultServer
let tmp: string
let client: RegistryClient

beforeAll(async () => {
  registry = await startRegistry({ auth: { type: 'token', users: { alice: 'wonderland' } } })
  pushed = await pushFixtures(registry)
  proxy = await startFaultServer({ upstream: registry })
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ctr-faults-'))
  client = new RegistryClient({
    insecure: [proxy.host, proxy.redirectTarget.host],
    auth: { [proxy.host]: { username: 'alice', password: 'wonderland' } },
    dockerConfig: false,
    retry: { attempts: 4, baseDelayMs: 10, maxDelayMs: 2000 },
  })
})

afterAll(async () => {
  await client?.close()
  await proxy?.stop()
  await registry?.stop()
  await pushed?.fixtures.close()
  if (tmp) await fs.rm(tmp, { recursive: true, force: true })
})

const ref = () => `${proxy.host}/${pushed.images.busybox.repository}:${pushed.images.busybox.tag}`

async function freshLayout(): Promise<OciLayout> {
  return OciLayout.open(await fs.mkdtemp(path.join(tmp, 'l-')))
}

async function blobFiles(l: OciLayout): Promise<string[]> {
  return fs.readdir(path.join(l.dir, 'blobs', 'sha256'))
}

/** The corrupted layer did not enter the sink, and no temporary is left; verified blobs may stay. */
async function expectNothingHalfWritten(l: OciLayout): Promise<void> {
  const files = await blobFiles(l)
  expect(files.some((f) => f.startsWith('.tmp-'))).toBe(false)
  expect(files).not.toContain(pushed.images.busybox.layers![0]!.digest.slice('sha256:'.length))
  expect(await l.resolve(ref().replace(proxy.host, proxy.host))).toBeUndefined()
}

/** Only the image's layer gets the fault (the config blob is too small to cut). */
const onLayer = (r: { reference?: string; route: string }) => r.route === 'blob' && r.reference === pushed.images.busybox.layers![0]!.digest

async function pullWith(fault: Parameters<FaultServer['setFaults']>[0], concurrency = 3) {
  proxy.setFaults(fault)
  proxy.reset()
  const l = await freshLayout()
  const result = await client.pull(ref(), { into: l, concurrency }).then(
    (img) => ({ img, err: undefined }),
    (err: unknown) => ({ img: undefined, err }),
  )
  return { ...result, layout: l }
}

describe('content that does not match its descriptor', () => {
  it('a wrong digest is ERR_REGISTRY_DIGEST_MISMATCH and leaves no blob or temporary', async () => {
    const { err, layout } = await pullWith({ kind: 'wrong-digest', match: onLayer })
    expect(err).toBeInstanceOf(RegistryError)
    expect((err as RegistryError).code).toBe('ERR_REGISTRY_DIGEST_MISMATCH')
    await expectNothingHalfWritten(layout)
  })

  it.each([1, -1])('a body %i byte(s) off is ERR_REGISTRY_SIZE_MISMATCH', async (delta) => {
    const { err, layout } = await pullWith({ kind: 'wrong-size', delta, match: onLayer })
    expect(err).toBeInstanceOf(RegistryError)
    expect((err as RegistryError).code).toBe('ERR_REGISTRY_SIZE_MISMATCH')
    await expectNothingHalfWritten(layout)
  })
})

describe('transient failures', () => {
  it('429 with Retry-After is waited out and retried', async () => {
    const { img, err } = await pullWith({ kind: 'rate-limit', retryAfter: 1, times: 1 })
    expect(err).toBeUndefined()
    expect(img?.digest).toBe(pushed.images.busybox.digest)
    const limited = proxy.requests.filter((r) => r.status === 429)
    expect(limited.length).toBe(1)
    const retry = proxy.requests.find((r) => r.time > limited[0]!.time && r.path === limited[0]!.path)!
    expect(retry.time - limited[0]!.time).toBeGreaterThanOrEqual(900) // Retry-After: 1 was honoured
  })

  it('500 then success is retried', async () => {
    const { img, err } = await pullWith({ kind: 'server-error', times: 2 })
    expect(err).toBeUndefined()
    expect(img?.digest).toBe(pushed.images.busybox.digest)
    expect(proxy.applied('server-error')).toBe(2)
  })

  it('persistent 503 gives ERR_REGISTRY_UNAVAILABLE after the configured attempts', async () => {
    const { err, layout } = await pullWith({ kind: 'server-error', status: 503, times: 100, match: onLayer }, 1)
    expect((err as RegistryError).code).toBe('ERR_REGISTRY_UNAVAILABLE')
    expect((err as RegistryError).status).toBe(503)
    expect(proxy.applied('server-error')).toBe(4)
    expect((await blobFiles(layout)).some((f) => f.startsWith('.tmp-'))).toBe(false)
  })
})

describe('dropped connections', () => {
  it('a blob cut mid-way is resumed with Range from where it stopped', async () => {
    const { img, err, layout } = await pullWith({ kind: 'drop', afterBytes: 64 * 1024, range: 'honour', match: onLayer })
    expect(err).toBeUndefined()
    expect(img?.digest).toBe(pushed.images.busybox.digest)
    const ranged = proxy.requests.filter((r) => r.route === 'blob' && r.headers.range)
    expect(ranged.length).toBe(1)
    expect(ranged[0]!.headers.range).toMatch(/^bytes=\d+-$/)
    expect(Number(/bytes=(\d+)-/.exec(String(ranged[0]!.headers.range))![1])).toBeGreaterThan(0)
    expect((await blobFiles(layout)).some((f) => f.startsWith('.tmp-'))).toBe(false)
  })

  it.each(['ignore', 'wrong-start'] as const)('a resume answered with %s is refused as ERR_REGISTRY_PROTOCOL', async (range) => {
    const { err, layout } = await pullWith({ kind: 'drop', afterBytes: 64 * 1024, range, match: onLayer })
    expect(err).toBeInstanceOf(RegistryError)
    expect((err as RegistryError).code).toBe('ERR_REGISTRY_PROTOCOL')
    expect(await blobFiles(layout)).not.toContain(pushed.images.busybox.layers![0]!.digest.slice(7))
    expect((await blobFiles(layout)).some((f) => f.startsWith('.tmp-'))).toBe(false)
  })
})

describe('redirects and abort', () => {
  it('a blob redirected to another host gets no Authorization there', async () => {
    const { img, err } = await pullWith({ kind: 'redirect' })
    expect(err).toBeUndefined()
    expect(img?.digest).toBe(pushed.images.busybox.digest)
    const landed = proxy.redirectTarget.requests
    expect(landed.length).toBeGreaterThan(0)
    expect(landed.every((r) => r.headers.authorization === undefined)).toBe(true)
    // while the registry itself did get credentials
    expect(proxy.requests.some((r) => typeof r.headers.authorization === 'string' && r.headers.authorization.startsWith('Bearer '))).toBe(true)
  })

  it('aborting a slow pull ends it with ERR_REGISTRY_ABORTED and nothing half-written', async () => {
    proxy.setFaults({ kind: 'slow', chunkSize: 1024, intervalMs: 50, match: onLayer })
    proxy.reset()
    const l = await freshLayout()
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 300)
    const err = await client.pull(ref(), { into: l, signal: controller.signal }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RegistryError)
    expect((err as RegistryError).code).toBe('ERR_REGISTRY_ABORTED')
    expect((await blobFiles(l)).some((f) => f.startsWith('.tmp-'))).toBe(false)
    expect(await blobFiles(l)).not.toContain(pushed.images.busybox.layers![0]!.digest.slice(7))
    proxy.setFaults(undefined)
  })
})

describe('tokens', () => {
  it('are reused across requests of the same scope, and fetched again for a new scope', async () => {
    proxy.setFaults(undefined)
    const c = new RegistryClient({ insecure: [proxy.host], auth: { [proxy.host]: { username: 'alice', password: 'wonderland' } }, dockerConfig: false })
    try {
      await c.pull(ref(), { into: await freshLayout() })
      await c.pull(ref(), { into: await freshLayout() })
      expect(c.tokenRequests).toBe(1)
      await c.tags(`${proxy.host}/test/tags`)
      expect(c.tokenRequests).toBe(2)
    } finally {
      await c.close()
    }
  })

  it('a token the registry rejects (401 invalid_token) is replaced and the request retried', async () => {
    const c = new RegistryClient({ insecure: [proxy.host], auth: { [proxy.host]: { username: 'alice', password: 'wonderland' } }, dockerConfig: false })
    try {
      await c.resolve(ref())
      proxy.setFaults({ kind: 'unauthorized', match: 'manifest', times: 1 })
      const got = await c.resolve(ref())
      expect(got.digest).toBe(pushed.images.busybox.digest)
      expect(c.tokenRequests).toBe(2)
    } finally {
      proxy.setFaults(undefined)
      await c.close()
    }
  })
})
