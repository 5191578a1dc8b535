/**
 * A registry behind TLS from a test CA with htpasswd Basic auth: the CA option, credentials
 * from options and from a Docker config.json, and the errors when either is missing.
 */
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pushFixtures, startRegistry, TEST_USER, type PushedFixtures, type Registry } from '@ctr/registry-harness'
import { OciLayout, RegistryClient, RegistryError } from '../src/index.js'

let registry: Registry
let pushed: PushedFixtures
let tmp: string

beforeAll(async () => {
  registry = await startRegistry({ tls: true, auth: { type: 'basic' } })
  pushed = await pushFixtures(registry, undefined, ['busybox'])
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ctr-tls-'))
})

afterAll(async () => {
  await registry?.stop()
  await pushed?.fixtures.close()
  if (tmp) await fs.rm(tmp, { recursive: true, force: true })
})

const ref = () => pushed.images.busybox.reference

describe('TLS with a custom CA and Basic auth', () => {
  it('pulls with the CA and credentials from options', async () => {
    const client = new RegistryClient({ ca: registry.caPem!, auth: { [registry.host]: TEST_USER }, dockerConfig: false })
    try {
      const img = await client.pull(ref(), { into: await OciLayout.open(path.join(tmp, 'a')) })
      expect(img.digest).toBe(pushed.images.busybox.digest)
    } finally {
      await client.close()
    }
  })

  it('pulls with credentials from a Docker config.json', async () => {
    const config = path.join(tmp, 'config.json')
    await fs.writeFile(config, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${TEST_USER.username}:${TEST_USER.password}`).toString('base64') } } }))
    const client = new RegistryClient({ ca: registry.caPem!, dockerConfig: config })
    try {
      const img = await client.resolve(ref())
      expect(img.digest).toBe(pushed.images.busybox.digest)
    } finally {
      await client.close()
    }
  })

  it('without credentials: ERR_REGISTRY_UNAUTHORIZED', async () => {
    const client = new RegistryClient({ ca: registry.caPem!, dockerConfig: false })
    try {
      const err = await client.resolve(ref()).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(RegistryError)
      expect((err as RegistryError).code).toBe('ERR_REGISTRY_UNAUTHORIZED')
      expect((err as RegistryError).status).toBe(401)
    } finally {
      await client.close()
    }
  })

  it('with a wrong password: ERR_REGISTRY_UNAUTHORIZED', async () => {
    const client = new RegistryClient({ ca: registry.caPem!, auth: { [registry.host]: { username: TEST_USER.username, password: 'wrong' } }, dockerConfig: false })
    try {
      expect(((await client.resolve(ref()).catch((e: unknown) => e)) as RegistryError).code).toBe('ERR_REGISTRY_UNAUTHORIZED')
    } finally {
      await client.close()
    }
  })

  it('without the CA the certificate is refused (no retry loop), naming the cause', async () => {
    const client = new RegistryClient({ auth: { [registry.host]: TEST_USER }, dockerConfig: false, retry: { attempts: 2, baseDelayMs: 1 } })
    try {
      const err = await client.resolve(ref()).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(RegistryError)
      expect((err as RegistryError).code).toBe('ERR_REGISTRY_UNAVAILABLE')
      expect((err as Error).message).toMatch(/certificate|self.signed|issuer/i)
    } finally {
      await client.close()
    }
  })
})
