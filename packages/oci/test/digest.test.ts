import { createHash } from 'node:crypto'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import {
  BlobVerifier,
  DigestMismatchError,
  DigestVerifier,
  OciError,
  SizeMismatchError,
  digestOf,
  digestStream,
  isDigest,
  parseDigest,
  splitDigest,
  verifyBlob,
} from '../src/index.js'

const EMPTY_SHA256 = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
const EMPTY_SHA512 =
  'sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e'

function thrown(fn: () => unknown): OciError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(OciError)
    return err as OciError
  }
  throw new Error('expected a throw')
}

describe('parseDigest', () => {
  it('accepts sha256 and sha512', () => {
    expect(parseDigest(EMPTY_SHA256)).toBe(EMPTY_SHA256)
    expect(parseDigest(EMPTY_SHA512)).toBe(EMPTY_SHA512)
    expect(isDigest(EMPTY_SHA256)).toBe(true)
    expect(isDigest(EMPTY_SHA512)).toBe(true)
  })

  const invalid: [string, RegExp][] = [
    ['', /digest is empty/],
    ['e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', /has no algorithm/],
    [`:${'a'.repeat(64)}`, /empty algorithm/],
    ['sha256:', /nothing after 'sha256:'/],
    ['sha256:abc', /sha256 needs 64 hex digits, got 3/],
    [`sha256:${'a'.repeat(65)}`, /sha256 needs 64 hex digits, got 65/],
    [`sha512:${'a'.repeat(64)}`, /sha512 needs 128 hex digits, got 64/],
    [`sha256:${'A'.repeat(64)}`, /must use lowercase hex digits/],
    [`sha256:${'g'.repeat(64)}`, /must be hex after 'sha256:'/],
    [`sha256:${'a'.repeat(63)}!`, /invalid characters after 'sha256:'/],
    [`md5:${'a'.repeat(32)}`, /unsupported algorithm "md5" \(supported: sha256, sha512\)/],
    [`SHA256:${'a'.repeat(64)}`, /invalid algorithm "SHA256"/],
    [`sha384:${'a'.repeat(96)}`, /unsupported algorithm "sha384"/],
  ]
  it.each(invalid)('rejects %j', (input, message) => {
    const err = thrown(() => parseDigest(input))
    expect(err.code).toBe('ERR_OCI_INVALID_DIGEST')
    expect(err.message).toMatch(message)
    expect(isDigest(input)).toBe(false)
  })

  it('rejects non-strings', () => {
    expect(thrown(() => parseDigest(undefined as unknown as string)).message).toMatch(/must be a string, got undefined/)
    expect(isDigest(42)).toBe(false)
  })

  it('splits', () => {
    expect(splitDigest(EMPTY_SHA256)).toEqual({ algorithm: 'sha256', hex: EMPTY_SHA256.slice(7) })
    expect(splitDigest(EMPTY_SHA512).algorithm).toBe('sha512')
  })
})

describe('digestOf', () => {
  it('hashes bytes and strings', () => {
    expect(digestOf('')).toBe(EMPTY_SHA256)
    expect(digestOf(new Uint8Array())).toBe(EMPTY_SHA256)
    expect(digestOf('', 'sha512')).toBe(EMPTY_SHA512)
    expect(digestOf('héllo')).toBe(`sha256:${createHash('sha256').update(Buffer.from('héllo', 'utf8')).digest('hex')}`)
    expect(digestOf(Buffer.from('{}'))).toBe('sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a')
  })

  it('refuses unknown algorithms', () => {
    const err = thrown(() => digestOf('', 'md5' as 'sha256'))
    expect(err.code).toBe('ERR_OCI_INVALID_DIGEST')
    expect(err.message).toMatch(/unsupported digest algorithm "md5"/)
  })
})

describe('verifyBlob and BlobVerifier', () => {
  const data = Buffer.from('hello, layer')
  const digest = digestOf(data)

  it('passes matching content and returns its digest', () => {
    expect(verifyBlob(data, { digest, size: data.length })).toBe(digest)
    expect(verifyBlob(data, { digest: digestOf(data, 'sha512') })).toBe(digestOf(data, 'sha512'))
  })

  it('reports a digest mismatch with expected and actual', () => {
    const other = digestOf('something else')
    const err = thrown(() => verifyBlob(data, { digest: other, size: data.length, what: 'manifest' }))
    expect(err).toBeInstanceOf(DigestMismatchError)
    expect(err.code).toBe('ERR_OCI_DIGEST_MISMATCH')
    expect((err as DigestMismatchError).expected).toBe(other)
    expect((err as DigestMismatchError).actual).toBe(digest)
    expect(err.message).toBe(`manifest digest mismatch: expected ${other}, got ${digest}`)
  })

  it('reports short content as a size mismatch, before the digest', () => {
    const err = thrown(() => verifyBlob(data.subarray(0, 5), { digest, size: data.length }))
    expect(err).toBeInstanceOf(SizeMismatchError)
    expect(err.code).toBe('ERR_OCI_SIZE_MISMATCH')
    expect((err as SizeMismatchError).expected).toBe(data.length)
    expect((err as SizeMismatchError).actual).toBe(5)
    expect((err as SizeMismatchError).exceeded).toBe(false)
    expect(err.message).toBe(`content size mismatch: expected ${data.length} bytes, got 5`)
  })

  it('fails as soon as the size is exceeded', () => {
    const v = new BlobVerifier({ digest, size: 10 })
    v.update(data.subarray(0, 8))
    const err = thrown(() => v.update(data.subarray(8)))
    expect(err).toBeInstanceOf(SizeMismatchError)
    expect((err as SizeMismatchError).exceeded).toBe(true)
    expect((err as SizeMismatchError).actual).toBe(data.length)
    expect(err.message).toMatch(/expected 10 bytes, got more \(at least 12\)/)
  })

  it('spans several chunk sources (a resumed download)', () => {
    const v = new BlobVerifier({ digest, size: data.length })
    v.update(data.subarray(0, 3))
    v.update(data.subarray(3, 7).toString('latin1'))
    v.update(new Uint8Array(data.subarray(7)))
    expect(v.bytes).toBe(data.length)
    expect(v.finished).toBe(false)
    expect(v.verify()).toBe(digest)
    expect(v.finished).toBe(true)
    expect(() => v.update(data)).toThrow(/after the digest was computed/)
  })

  it('computes without an expected digest, with the chosen algorithm', () => {
    const v = new BlobVerifier({ algorithm: 'sha512' })
    v.update(data)
    expect(v.verify()).toBe(digestOf(data, 'sha512'))
    expect(v.expectedDigest).toBeUndefined()
    expect(new BlobVerifier().algorithm).toBe('sha256')
  })

  it('takes the algorithm from the expected digest', () => {
    expect(new BlobVerifier({ digest: EMPTY_SHA512 }).algorithm).toBe('sha512')
    expect(new BlobVerifier({ digest: EMPTY_SHA512 }).verify()).toBe(EMPTY_SHA512)
  })

  it('rejects invalid expectations', () => {
    expect(thrown(() => new BlobVerifier({ digest: 'sha256:nope' })).code).toBe('ERR_OCI_INVALID_DIGEST')
    expect(thrown(() => new BlobVerifier({ size: -1 })).message).toMatch(/non-negative integer, got -1/)
    expect(thrown(() => new BlobVerifier({ size: 1.5 })).message).toMatch(/non-negative integer, got 1.5/)
  })

  it('verifies empty content against size 0', () => {
    expect(verifyBlob(new Uint8Array(), { digest: EMPTY_SHA256, size: 0 })).toBe(EMPTY_SHA256)
  })
})

function chunks(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size))
  return out
}

function collector(): { sink: Writable; received: Buffer[] } {
  const received: Buffer[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      received.push(chunk)
      cb()
    },
  })
  return { sink, received }
}

describe('DigestVerifier (stream)', () => {
  const data = Buffer.alloc(256 * 1024)
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff
  const digest = digestOf(data)

  it('passes data through and exposes the digest at the end', async () => {
    const v = new DigestVerifier({ digest, size: data.length })
    const { sink, received } = collector()
    await pipeline(Readable.from(chunks(data, 10_000)), v, sink)
    expect(Buffer.concat(received).equals(data)).toBe(true)
    expect(v.digest).toBe(digest)
    expect(v.bytes).toBe(data.length)
  })

  it('computes a digest when none is expected (sha512)', async () => {
    const v = new DigestVerifier({ algorithm: 'sha512' })
    await pipeline(Readable.from(chunks(data, 4096)), v, collector().sink)
    expect(v.digest).toBe(digestOf(data, 'sha512'))
  })

  it('errors with DigestMismatchError at the end', async () => {
    const corrupt = Buffer.from(data)
    corrupt[1000] = (corrupt[1000] ?? 0) ^ 1
    const v = new DigestVerifier({ digest, size: data.length })
    const { sink, received } = collector()
    const err = await pipeline(Readable.from(chunks(corrupt, 8192)), v, sink).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DigestMismatchError)
    expect((err as DigestMismatchError).expected).toBe(digest)
    expect((err as DigestMismatchError).actual).toBe(digestOf(corrupt))
    // Everything flowed through: the error comes at the end.
    expect(Buffer.concat(received).length).toBe(data.length)
    expect(v.digest).toBeUndefined()
  })

  it('errors with SizeMismatchError when the stream is short', async () => {
    const v = new DigestVerifier({ digest, size: data.length })
    const err = await pipeline(Readable.from(chunks(data.subarray(0, 1000), 100)), v, collector().sink).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SizeMismatchError)
    expect((err as SizeMismatchError).actual).toBe(1000)
    expect((err as SizeMismatchError).expected).toBe(data.length)
  })

  it('errors as soon as the size is exceeded, without forwarding the extra bytes', async () => {
    const limit = 50_000
    const v = new DigestVerifier({ digest: digestOf(data.subarray(0, limit)), size: limit })
    let pulled = 0
    async function* source() {
      for (const c of chunks(data, 10_000)) {
        pulled += c.length
        yield c
      }
    }
    const { sink, received } = collector()
    const err = await pipeline(source(), v, sink).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SizeMismatchError)
    expect((err as SizeMismatchError).exceeded).toBe(true)
    expect((err as SizeMismatchError).actual).toBe(60_000)
    expect(Buffer.concat(received).length).toBeLessThanOrEqual(limit)
    // The source was not read to its end.
    expect(pulled).toBeLessThan(data.length)
  })

  it('handles string chunks', async () => {
    const v = new DigestVerifier({ digest: digestOf('héllo wörld'), size: Buffer.byteLength('héllo wörld') })
    await pipeline(Readable.from(['héllo ', 'wörld'], { objectMode: false }), v, collector().sink)
    expect(v.digest).toBe(digestOf('héllo wörld'))
  })
})

describe('digestStream', () => {
  it('reads a stream and returns digest and size', async () => {
    const data = Buffer.from('x'.repeat(100_000))
    expect(await digestStream(Readable.from(chunks(data, 999)))).toEqual({ digest: digestOf(data), size: data.length })
  })

  it('verifies when given expectations', async () => {
    const data = Buffer.from('abc')
    await expect(digestStream(Readable.from([data]), { digest: digestOf('abd') })).rejects.toBeInstanceOf(DigestMismatchError)
    await expect(digestStream(Readable.from([data]), { size: 2 })).rejects.toBeInstanceOf(SizeMismatchError)
  })
})
