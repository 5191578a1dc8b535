/**
 * OciLayout as a sink, without a registry: blobs written through its double buffer whatever the
 * chunking, with and without fsync; content verified unless the stream verifies itself (marked
 * VERIFIED for that very digest and size); nothing left behind when a write fails.
 */
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { digestOf, MediaType, type Descriptor } from '@ctr/oci'
import { OciLayout, VERIFIED } from '../src/index.js'

let tmp: string

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ctr-layout-'))
})

afterAll(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true })
})

function descOf(bytes: Buffer): Descriptor {
  return { mediaType: MediaType.OciLayer, digest: digestOf(bytes), size: bytes.length }
}

/** The bytes in chunks of the given sizes, cycling. */
async function* chunked(bytes: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length]!
    yield bytes.subarray(at, at + n)
    at += n
  }
}

function marked(stream: AsyncIterable<Uint8Array>, desc: Descriptor): AsyncIterable<Uint8Array> {
  return Object.assign(stream, { [VERIFIED]: { digest: desc.digest, size: desc.size } })
}

async function files(l: OciLayout): Promise<string[]> {
  return fs.readdir(path.join(l.dir, 'blobs', 'sha256'))
}

describe('OciLayout.write', () => {
  it.each([
    ['fsync', true, [65536]],
    ['fsync, odd chunks', true, [1, 4093, 65536 + 7, 3 << 20]],
    ['no fsync', false, [16384, 1 << 20]],
  ] as const)('stores a blob larger than its write buffers (%s)', async (_name, fsync, sizes) => {
    const l = await OciLayout.open(await fs.mkdtemp(path.join(tmp, 'l-')), { fsync })
    const bytes = randomBytes((3 << 20) + 12345)
    const desc = descOf(bytes)
    await l.write(desc, chunked(bytes, [...sizes]))
    expect((await fs.readFile(l.blobPath(desc.digest))).equals(bytes)).toBe(true)
    expect(await files(l)).toEqual([desc.digest.slice(7)])
    expect(await l.has(desc)).toBe(true)
  })

  it('stores an empty blob', async () => {
    const l = await OciLayout.open(await fs.mkdtemp(path.join(tmp, 'l-')))
    const desc = descOf(Buffer.alloc(0))
    await l.write(desc, chunked(Buffer.alloc(0), [1]))
    expect((await fs.stat(l.blobPath(desc.digest))).size).toBe(0)
  })

  it.each([
    ['other bytes', (b: Buffer) => Buffer.concat([b.subarray(0, 100), Buffer.from('x'), b.subarray(101)]), /digest/i],
    ['fewer bytes', (b: Buffer) => b.subarray(0, b.length - 1), /size|bytes/i],
    ['more bytes', (b: Buffer) => Buffer.concat([b, Buffer.from('x')]), /size|bytes/i],
  ])('verifies a plain stream: %s are refused and nothing is left', async (_name, corrupt, message) => {
    const l = await OciLayout.open(await fs.mkdtemp(path.join(tmp, 'l-')))
    const bytes = randomBytes(2 << 20)
    const desc = descOf(bytes)
    await expect(l.write(desc, chunked(corrupt(bytes), [65536]))).rejects.toThrow(message)
    expect(await files(l)).toEqual([])
  })

  it('verifies a stream marked VERIFIED for another digest', async () => {
    const l = await OciLayout.open(await fs.mkdtemp(path.join(tmp, 'l-')))
    const desc = descOf(randomBytes(1000))
    const other = randomBytes(1000)
    await expect(l.write(desc, marked(chunked(other, [100]), descOf(other)))).rejects.toThrow(/digest/i)
    expect(await files(l)).toEqual([])
  })

  it('trusts a stream marked VERIFIED for this digest and size (it is the stream that checks)', async () => {
    const l = await OciLayout.open(await fs.mkdtemp(path.join(tmp, 'l-')))
    const bytes = randomBytes(1000)
    const desc = descOf(bytes)
    const lying = randomBytes(1000)
    await l.write(desc, marked(chunked(lying, [100]), desc))
    expect((await fs.readFile(l.blobPath(desc.digest))).equals(lying)).toBe(true)
  })

  it('leaves nothing when a verified stream errors at its end', async () => {
    const l = await OciLayout.open(await fs.mkdtemp(path.join(tmp, 'l-')))
    const bytes = randomBytes(3 << 20)
    const desc = descOf(bytes)
    async function* failing(): AsyncGenerator<Buffer> {
      yield* chunked(bytes, [65536])
      throw new Error('digest mismatch found by the stream')
    }
    await expect(l.write(desc, marked(failing(), desc))).rejects.toThrow('digest mismatch found by the stream')
    expect(await files(l)).toEqual([])
  })

  it('stops at abort and leaves nothing', async () => {
    const l = await OciLayout.open(await fs.mkdtemp(path.join(tmp, 'l-')))
    const bytes = randomBytes(4 << 20)
    const desc = descOf(bytes)
    const controller = new AbortController()
    async function* slow(): AsyncGenerator<Buffer> {
      let n = 0
      for await (const c of chunked(bytes, [65536])) {
        if (++n === 20) controller.abort(new Error('stop'))
        yield c
      }
    }
    await expect(l.write(desc, slow(), controller.signal)).rejects.toThrow('stop')
    expect(await files(l)).toEqual([])
  })
})
