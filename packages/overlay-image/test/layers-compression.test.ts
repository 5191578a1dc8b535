/**
 * Compression: media types, magic bytes, gzip and zstd both ways (zstd through the `zstd`
 * program on Node 20), errors as StoreErrors, and no zstd process or fd outliving its stream.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MediaType } from '@ctr/oci'
import { StoreError } from '../src/errors.js'
import { compress, compressionOf, decompress, sniffCompression } from '../src/layers/compression.js'
import { childrenNamed, fdCount } from './helpers/layers-fs.js'

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of s) parts.push(c as Buffer)
  return Buffer.concat(parts)
}

async function failure(s: Readable): Promise<StoreError> {
  try {
    await collect(s)
  } catch (err) {
    if (err instanceof StoreError) return err
    throw err
  }
  throw new Error('expected the stream to fail')
}

/** Chunks of `data`, 1000 bytes at a time, so sniffing has to wait for more than one. */
function trickle(data: Buffer, size = 1000): Readable {
  const parts: Buffer[] = []
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size))
  return Readable.from(parts, { objectMode: false })
}

// Half compressible, half random: both codecs have real work to do.
const DATA = Buffer.concat([Buffer.from('layer data '.repeat(50_000)), randomBytes(300_000)])
const zstdOf = (b: Buffer, args: string[] = []): Buffer => execFileSync('zstd', ['-q', '-c', ...args], { input: b, maxBuffer: 1 << 28 })

let fds = 0
beforeAll(() => {
  fds = fdCount()
})
afterAll(() => {
  expect(childrenNamed('zstd')).toEqual([])
  expect(fdCount()).toBe(fds)
})

describe('compressionOf', () => {
  it('knows every OCI and Docker layer media type', () => {
    expect(compressionOf(MediaType.OciLayer)).toBe('none')
    expect(compressionOf(MediaType.OciLayerGzip)).toBe('gzip')
    expect(compressionOf(MediaType.OciLayerZstd)).toBe('zstd')
    expect(compressionOf(MediaType.OciLayerNondistributable)).toBe('none')
    expect(compressionOf(MediaType.OciLayerNondistributableGzip)).toBe('gzip')
    expect(compressionOf(MediaType.OciLayerNondistributableZstd)).toBe('zstd')
    expect(compressionOf(MediaType.DockerLayer)).toBe('none')
    expect(compressionOf(MediaType.DockerLayerGzip)).toBe('gzip')
    expect(compressionOf(MediaType.DockerLayerZstd)).toBe('zstd')
    expect(compressionOf(MediaType.DockerForeignLayer)).toBe('none')
    expect(compressionOf(MediaType.DockerForeignLayerGzip)).toBe('gzip')
    expect(compressionOf('Application/VND.OCI.image.layer.v1.tar+gzip; x=y')).toBe('gzip')
  })
  it('refuses anything else, naming it', () => {
    for (const mt of ['application/vnd.oci.image.config.v1+json', 'application/vnd.oci.image.layer.v1.tar+bzip2', 'text/plain']) {
      let err: unknown
      try {
        compressionOf(mt)
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(StoreError)
      expect(err).toMatchObject({ code: 'ERR_STORE_UNSUPPORTED' })
      expect((err as Error).message).toContain(mt)
    }
  })
})

describe('sniffCompression', () => {
  it('reads magic bytes', () => {
    expect(sniffCompression(gzipSync('x'))).toBe('gzip')
    expect(sniffCompression(zstdOf(Buffer.from('x')))).toBe('zstd')
    expect(sniffCompression(Buffer.from([0x5e, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]))).toBe('zstd') // skippable frame
    expect(sniffCompression(Buffer.from('etc/passwd\0\0\0'))).toBe('none')
    expect(sniffCompression(Buffer.alloc(0))).toBe('none')
    expect(sniffCompression(Buffer.from([0x1f]))).toBe('none')
  })
})

describe('decompress', () => {
  it('gzip, zstd and plain data, in small chunks', async () => {
    expect((await collect(decompress(trickle(gzipSync(DATA)), 'gzip'))).equals(DATA)).toBe(true)
    expect((await collect(decompress(trickle(zstdOf(DATA)), 'zstd'))).equals(DATA)).toBe(true)
    expect((await collect(decompress(trickle(DATA), 'none'))).equals(DATA)).toBe(true)
  })
  it('trusts the magic bytes over the media type', async () => {
    expect((await collect(decompress(trickle(gzipSync(DATA)), 'none'))).equals(DATA)).toBe(true)
    expect((await collect(decompress(trickle(zstdOf(DATA)), 'gzip'))).equals(DATA)).toBe(true)
    expect((await collect(decompress(trickle(DATA), 'zstd'))).equals(DATA)).toBe(true)
  })
  it('empty input is empty output', async () => {
    expect((await collect(decompress(Readable.from([], { objectMode: false }), 'gzip'))).length).toBe(0)
  })
  it('zstd with several frames and a skippable frame', async () => {
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0]), Buffer.from('skip')])
    const input = Buffer.concat([skippable, zstdOf(DATA.subarray(0, 1000)), zstdOf(DATA.subarray(1000))])
    expect((await collect(decompress(trickle(input)))).equals(DATA)).toBe(true)
  })
  it('corrupt gzip is ERR_STORE_BAD_TAR naming gzip', async () => {
    const gz = gzipSync(DATA)
    gz[gz.length >> 1]! ^= 0xff
    const err = await failure(decompress(trickle(gz), 'gzip'))
    expect(err.code).toBe('ERR_STORE_BAD_TAR')
    expect(err.message).toMatch(/^gzip: /)
    const truncated = await failure(decompress(trickle(gzipSync(DATA).subarray(0, 5000)), 'gzip'))
    expect(truncated.code).toBe('ERR_STORE_BAD_TAR')
  })
  it('corrupt zstd is ERR_STORE_BAD_TAR with what zstd said', async () => {
    const z = zstdOf(DATA)
    const err = await failure(decompress(trickle(Buffer.concat([z.subarray(0, 100), Buffer.alloc(5000, 0x41)])), 'zstd'))
    expect(err.code).toBe('ERR_STORE_BAD_TAR')
    expect(err.message).toMatch(/zstd/)
    expect(childrenNamed('zstd')).toEqual([])
  })
  it('refuses bzip2 and xz', async () => {
    expect((await failure(decompress(trickle(Buffer.from('BZh91AY&SY\0\0\0\0')), 'gzip'))).code).toBe('ERR_STORE_UNSUPPORTED')
    expect((await failure(decompress(trickle(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 0, 0])), 'gzip'))).code).toBe('ERR_STORE_UNSUPPORTED')
  })
  it('an error of the input comes out of the stream', async () => {
    for (const data of [gzipSync(DATA), zstdOf(DATA), DATA]) {
      const input = new Readable({ read() {} })
      input.push(data.subarray(0, 4000))
      const out = decompress(input)
      setTimeout(() => input.destroy(new Error('disk on fire')), 20)
      await expect(collect(out)).rejects.toThrow('disk on fire')
    }
    expect(childrenNamed('zstd')).toEqual([])
  })
  it('without a zstd codec and without the zstd program: ERR_STORE_UNSUPPORTED', async () => {
    const z = zstdOf(DATA)
    const path = process.env.PATH
    process.env.PATH = '/nonexistent'
    try {
      const err = await failure(decompress(trickle(z), 'zstd'))
      expect(err.code).toBe('ERR_STORE_UNSUPPORTED')
      expect(err.message).toContain('apt-get install zstd')
    } finally {
      process.env.PATH = path
    }
  })
  it('destroying the stream half-way kills and reaps the zstd process', async () => {
    const big = zstdOf(Buffer.concat(Array.from({ length: 40 }, () => DATA)))
    const input = trickle(big, 64 * 1024)
    const out = decompress(input, 'zstd')
    let got = 0
    for await (const c of out) {
      got += (c as Buffer).length
      if (got > 1 << 20) break
    }
    // Breaking out destroys the stream (with an AbortError, as Node does); wait for its close.
    if (!out.closed) await new Promise((resolve) => out.once('close', resolve))
    expect(got).toBeGreaterThan(1 << 20)
    expect(childrenNamed('zstd')).toEqual([])
    expect(input.destroyed).toBe(true)
  })
})

describe('compress', () => {
  it('gzip that gzip reads, at the level asked', async () => {
    const fast = await collect(compress(trickle(DATA), 'gzip', { level: 1 }))
    const best = await collect(compress(trickle(DATA), 'gzip', { level: 9 }))
    expect(execFileSync('gzip', ['-dc'], { input: fast, maxBuffer: 1 << 28 }).equals(DATA)).toBe(true)
    expect(execFileSync('gzip', ['-dc'], { input: best, maxBuffer: 1 << 28 }).equals(DATA)).toBe(true)
    expect(best.length).toBeLessThan(fast.length)
  })
  it('zstd that zstd reads, at the level asked', async () => {
    const text = Buffer.from(Array.from({ length: 20_000 }, (_, i) => `line ${i} ${(i * 7919) % 1000}\n`).join(''))
    const z1 = await collect(compress(trickle(text), 'zstd', { level: 1 }))
    const z19 = await collect(compress(trickle(text), 'zstd', { level: 19 }))
    expect(execFileSync('zstd', ['-dc'], { input: z1, maxBuffer: 1 << 28 }).equals(text)).toBe(true)
    expect(execFileSync('zstd', ['-dc'], { input: z19, maxBuffer: 1 << 28 }).equals(text)).toBe(true)
    expect(z19.length).toBeLessThan(z1.length)
    expect(childrenNamed('zstd')).toEqual([])
  })
  it('round trips through decompress', async () => {
    for (const kind of ['gzip', 'zstd', 'none'] as const) {
      expect((await collect(decompress(compress(trickle(DATA), kind), kind))).equals(DATA)).toBe(true)
    }
  })
  it('refuses levels out of range at once', () => {
    for (const [kind, level] of [
      ['gzip', 10],
      ['gzip', -1],
      ['zstd', 0],
      ['zstd', 20],
      ['zstd', 2.5],
    ] as const) {
      expect(() => compress(trickle(DATA), kind, { level })).toThrow(expect.objectContaining({ code: 'ERR_STORE_INVALID', field: 'level' }))
    }
  })
  it('a zstd that fails is ERR_STORE_IO with its message, and is reaped', async () => {
    const path = process.env.PATH
    process.env.PATH = '/nonexistent'
    try {
      expect((await failure(compress(trickle(DATA), 'zstd'))).code).toBe('ERR_STORE_UNSUPPORTED')
    } finally {
      process.env.PATH = path
    }
    const input = new Readable({ read() {} })
    input.push(DATA.subarray(0, 1000))
    const out = compress(input, 'zstd')
    setTimeout(() => input.destroy(new Error('source gone')), 20)
    await expect(collect(out)).rejects.toThrow('source gone')
    expect(childrenNamed('zstd')).toEqual([])
  })
})
