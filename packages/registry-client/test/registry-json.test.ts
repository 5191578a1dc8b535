/**
 * JSON from a registry or its token server is checked against a schema: a document of the
 * wrong shape is ERR_REGISTRY_PROTOCOL naming the field, not a crash further on.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RegistryClient, RegistryError } from '../src/index.js'

let server: http.Server
let host = ''

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname === '/token') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 42, expires_in: 300 }))
    } else if (url.pathname === '/v2/bad/tags/list') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'bad', tags: ['a', 7] }))
    } else if (url.pathname === '/v2/authed/tags/list') {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="test"` }).end()
    } else if (url.pathname === '/v2/empty/tags/list') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'empty', tags: null }))
    } else res.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
})

describe('registry JSON', () => {
  it('a tag list with a non-string tag is ERR_REGISTRY_PROTOCOL naming the entry', async () => {
    const client = new RegistryClient({ insecure: [host], dockerConfig: false })
    const err = (await client.tags(`${host}/bad`).catch((e: unknown) => e)) as RegistryError
    expect(err).toBeInstanceOf(RegistryError)
    expect(err.code).toBe('ERR_REGISTRY_PROTOCOL')
    expect(err.message).toContain('tags.tags[1]: expected a string, got 7')
    expect(await client.tags(`${host}/empty`)).toEqual([])
    await client.close()
  })

  it('a token answer whose token is not a string is ERR_REGISTRY_PROTOCOL naming the field', async () => {
    const client = new RegistryClient({ insecure: [host], dockerConfig: false, retry: { attempts: 1 } })
    const err = (await client.tags(`${host}/authed`).catch((e: unknown) => e)) as RegistryError
    expect(err).toBeInstanceOf(RegistryError)
    expect(err.code).toBe('ERR_REGISTRY_PROTOCOL')
    expect(err.message).toContain('token.token: expected a string, got 42')
    await client.close()
  })
})
