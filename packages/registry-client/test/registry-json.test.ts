/**
 * JSON from a registry or its token server is checked against a schema: a document of the
 * wrong shape is ERR_REGISTRY_PROTOCOL naming the field, not a crash further on. And a large
 * body read slowly (the connection paused and resumed many times while its one read buffer is
 * reused) arrives intact.
 */
import { createHash, randomBytes } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RegistryClient, RegistryError } from '../src/index.js'

let server: http.Server
let host = ''
const blob = randomBytes(8 << 20)
const blobDigest = `sha256:${createHash('sha256').update(blob).digest('hex')}` as const

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname === '/token') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 42, expires_in: 300 }))
    } else if (url.pathname === '/v2/bad/tags/list') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'bad', tags: ['a', 7] }))
    } else if (url.pathname === '/v2/authed/tags/list') {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="test"` }).end()
    } else if (url.pathname === `/v2/big/blobs/${blobDigest}`) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(blob.length) })
      // In odd-sized pieces, so reads and body chunks never line up with the buffers.
      let at = 0
      const next = () => {
        while (at < blob.length) {
          const end = Math.min(blob.length, at + 100_003)
          const more = res.write(blob.subarray(at, end))
          at = end
          if (!more) return void res.once('drain', next)
        }
        res.end()
      }
      next()
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

  it('a large body read slowly, with the connection paused and resumed, arrives intact', async () => {
    const client = new RegistryClient({ insecure: [host], dockerConfig: false })
    const chunks: Buffer[] = []
    let n = 0
    // The stream verifies size and digest itself and errors at its end if either is wrong.
    for await (const c of client.blob(`${host}/big`, { mediaType: 'application/octet-stream', digest: blobDigest, size: blob.length })) {
      chunks.push(Buffer.from(c))
      if (++n % 4 === 0) await new Promise((resolve) => setTimeout(resolve, 2))
    }
    expect(Buffer.concat(chunks).equals(blob)).toBe(true)
    await client.close()
  })
})
