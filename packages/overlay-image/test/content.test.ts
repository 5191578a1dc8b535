/**
 * The content store on real files: verified writes, failures that leave nothing behind, a
 * crash (SIGKILL of a child process half-way through a large blob) that the next open cleans
 * up, ingest, documents validated with errors that name the field.
 */
import { createHash, randomBytes } from 'node:crypto'
import { promises as fs, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ImageConfigSchema, MediaType, digestOf, type Descriptor } from '@ctr/oci'
import { ContentStore } from '../src/content/store.js'
import { StoreError } from '../src/errors.js'
import { removeTemporaries, writeFileAtomic } from '../src/fs/atomic.js'
import { withLockFile } from '../src/fs/lock.js'
import { StorePaths } from '../src/paths.js'
import { checkStore, chunks, names, openStore, runChild, sha256, tempDir, transpileSrc, type TestStore } from './helpers/content-store.js'

const roots: string[] = []
afterAll(async () => {
  for (const r of roots) await fs.rm(r, { recursive: true, force: true })
})

async function store(): Promise<TestStore> {
  const s = await openStore()
  roots.push(s.root)
  return s
}

async function rejection(p: Promise<unknown>): Promise<StoreError> {
  try {
    await p
  } catch (err) {
    return err as StoreError
  }
  throw new Error('expected a rejection')
}

function desc(bytes: Uint8Array, mediaType = 'application/octet-stream'): Descriptor {
  return { mediaType, digest: digestOf(bytes), size: bytes.byteLength }
}

describe('fs/atomic', () => {
  it('writeFileAtomic replaces a file, leaving no temporary; removeTemporaries keeps live owners', async () => {
    const dir = tempDir('ovl-atomic-')
    roots.push(dir)
    const file = path.join(dir, 'x.json')
    await writeFileAtomic(file, 'one')
    await writeFileAtomic(file, 'two', { fsync: true })
    expect(readFileSync(file, 'utf8')).toBe('two')
    expect(names(dir)).toEqual(['x.json'])

    writeFileSync(path.join(dir, '.tmp-999999999-abc-dead'), 'crash leftover') // no such pid
    writeFileSync(path.join(dir, '.tmp-nopid'), 'no pid')
    writeFileSync(path.join(dir, `.tmp-1-abc-live`), 'pid 1 is alive') // another live process
    writeFileSync(path.join(dir, `.tmp-${process.pid}-abc-mine`), 'in flight here')
    const removed = await removeTemporaries(dir)
    expect(removed.sort()).toEqual(['.tmp-999999999-abc-dead', '.tmp-nopid'])
    expect(names(dir)).toEqual([`.tmp-${process.pid}-abc-mine`, '.tmp-1-abc-live', 'x.json'].sort())
    await removeTemporaries(dir, { all: true })
    expect(names(dir)).toEqual(['x.json'])
  })

  it('writeFileAtomic into a missing directory fails with ERR_STORE_IO and leaves nothing', async () => {
    const err = await rejection(writeFileAtomic('/tmp/ctr-does-not-exist-dir/x', 'y'))
    expect(err.code).toBe('ERR_STORE_IO')
    expect(err.path).toBe('/tmp/ctr-does-not-exist-dir/x')
  })

  it('withLockFile serialises holders and takes over a lock whose owner died', async () => {
    const dir = tempDir('ovl-lock-')
    roots.push(dir)
    const lock = path.join(dir, 'x.lock')
    const order: string[] = []
    await Promise.all(
      ['a', 'b', 'c'].map((n) =>
        withLockFile(lock, async () => {
          order.push(`${n}+`)
          await new Promise((r) => setTimeout(r, 10))
          order.push(`${n}-`)
        }),
      ),
    )
    expect(order).toEqual(['a+', 'a-', 'b+', 'b-', 'c+', 'c-'])
    expect(names(dir)).toEqual([])
    writeFileSync(lock, '999999999 deadbeef') // left by a crashed process
    expect(await withLockFile(lock, async () => 42, { timeoutMs: 2000 })).toBe(42)
    writeFileSync(lock, '1 live') // held by a live process (pid 1)
    const err = await rejection(withLockFile(lock, async () => 0, { timeoutMs: 100 }))
    expect(err.code).toBe('ERR_STORE_IN_USE')
  })
})

describe('ContentStore', () => {
  it('open creates the layout and removes what a crash left in tmp/ and blobs/', async () => {
    const root = tempDir('ovl-open-')
    roots.push(root)
    const paths = new StorePaths(root)
    await ContentStore.open(paths)
    expect(names(root)).toEqual(['blobs', 'tmp'])
    expect(names(paths.blobs)).toEqual(['sha256'])
    writeFileSync(path.join(paths.tmp, '.tmp-999999999-0123456789ab-blob'), 'partial')
    await fs.mkdir(path.join(paths.tmp, '.tmp-999999999-0123456789ab-dir'))
    writeFileSync(path.join(paths.blobs, 'sha256', '.tmp-999999999-0123456789ab-x'), 'partial')
    await ContentStore.open(paths)
    expect(names(paths.tmp)).toEqual([])
    expect(names(path.join(paths.blobs, 'sha256'))).toEqual([])
  })

  it('writes a verified blob under blobs/sha256/<hex>, readable back', async () => {
    const { content, paths } = await store()
    const bytes = randomBytes(300_000)
    const d = desc(bytes)
    expect(await content.has(d)).toBe(false)
    await content.write(d, chunks(bytes, 7000))
    expect(content.path(d.digest)).toBe(path.join(paths.root, 'blobs', 'sha256', d.digest.slice(7)))
    expect(readFileSync(content.path(d.digest)).equals(bytes)).toBe(true)
    expect(await content.has(d)).toBe(true)
    expect(await content.has({ ...d, size: d.size + 1 })).toBe(false)
    expect(await content.size(d.digest)).toBe(bytes.length)
    expect((await content.readBytes(d)).equals(bytes)).toBe(true)
    const streamed: Buffer[] = []
    for await (const c of content.read(d)) streamed.push(Buffer.from(c))
    expect(Buffer.concat(streamed).equals(bytes)).toBe(true)
    expect(await checkStore(paths)).toEqual([d.digest])
  })

  it('verifies sha512 digests too', async () => {
    const { content, paths } = await store()
    const bytes = Buffer.from('sha512 content')
    const d: Descriptor = { mediaType: 'application/octet-stream', digest: digestOf(bytes, 'sha512'), size: bytes.length }
    await content.write(d, chunks(bytes))
    expect(await checkStore(paths)).toEqual([d.digest])
    const bad = await rejection(content.write({ ...d, digest: digestOf('other', 'sha512') }, chunks(bytes)))
    expect(bad.code).toBe('ERR_STORE_DIGEST_MISMATCH')
  })

  it('a wrong digest leaves nothing (ERR_STORE_DIGEST_MISMATCH)', async () => {
    const { content, paths } = await store()
    const bytes = randomBytes(100_000)
    const d = { ...desc(bytes), digest: sha256('something else') }
    const err = await rejection(content.write(d, chunks(bytes)))
    expect(err).toBeInstanceOf(StoreError)
    expect(err.code).toBe('ERR_STORE_DIGEST_MISMATCH')
    expect(err.message).toContain(d.digest)
    expect(await content.has(d)).toBe(false)
    expect(await checkStore(paths)).toEqual([])
  })

  it('a short stream and an overlong one leave nothing (ERR_STORE_SIZE_MISMATCH); the long one is cut off early', async () => {
    const { content, paths } = await store()
    const bytes = randomBytes(100_000)
    const short = await rejection(content.write({ ...desc(bytes), size: bytes.length + 10 }, chunks(bytes)))
    expect(short.code).toBe('ERR_STORE_SIZE_MISMATCH')
    let pulled = 0
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) {
        pulled++
        yield bytes.subarray(0, 1000)
      }
    }
    const long = await rejection(content.write({ ...desc(bytes), size: 5000 }, endless()))
    expect(long.code).toBe('ERR_STORE_SIZE_MISMATCH')
    expect(pulled).toBe(6)
    expect(await checkStore(paths)).toEqual([])
  })

  it('an abort leaves nothing (ERR_STORE_ABORTED)', async () => {
    const { content, paths } = await store()
    const ac = new AbortController()
    const bytes = randomBytes(1 << 20)
    async function* slow(): AsyncGenerator<Uint8Array> {
      let i = 0
      for await (const c of chunks(bytes, 4096)) {
        if (++i === 10) ac.abort(new Error('stop'))
        yield c
      }
    }
    const err = await rejection(content.write(desc(bytes), slow(), ac.signal))
    expect(err.code).toBe('ERR_STORE_ABORTED')
    expect(await checkStore(paths)).toEqual([])
    const pre = await rejection(content.write(desc(bytes), chunks(bytes), AbortSignal.abort()))
    expect(pre.code).toBe('ERR_STORE_ABORTED')
    const ingest = await rejection(content.ingest(slow(), { signal: ac.signal }))
    expect(ingest.code).toBe('ERR_STORE_ABORTED')
    expect(await checkStore(paths)).toEqual([])
  })

  it("a failing source's own error is rethrown as it is, and nothing is left", async () => {
    const { content, paths } = await store()
    const boom = new Error('connection reset')
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(1000)
      throw boom
    }
    const err = await rejection(content.write(desc(Buffer.alloc(2000)), failing()))
    expect(err).toBe(boom)
    expect(await checkStore(paths)).toEqual([])
  })

  it('does not rewrite a blob it has, nor read the stream', async () => {
    const { content } = await store()
    const bytes = Buffer.from('hello')
    const d = desc(bytes)
    await content.write(d, chunks(bytes))
    const before = statSync(content.path(d.digest))
    let read = false
    async function* never(): AsyncGenerator<Uint8Array> {
      read = true
      yield Buffer.from('not this')
    }
    await content.write(d, never())
    expect(read).toBe(false)
    const after = statSync(content.path(d.digest))
    expect(after.ino).toBe(before.ino)
    expect(after.mtimeMs).toBe(before.mtimeMs)
  })

  it('ingest hashes content of unknown digest; the same content twice is one blob', async () => {
    const { content, paths } = await store()
    const bytes = randomBytes(250_000)
    const a = await content.ingest(chunks(bytes, 10_000), { mediaType: MediaType.OciLayer })
    expect(a).toEqual({ mediaType: MediaType.OciLayer, digest: sha256(bytes), size: bytes.length })
    const b = await content.ingest(chunks(bytes))
    expect(b.digest).toBe(a.digest)
    expect(b.mediaType).toBe('application/octet-stream')
    const c = await content.ingest(chunks(bytes), { algorithm: 'sha512' })
    expect(c.digest).toBe(`sha512:${createHash('sha512').update(bytes).digest('hex')}`)
    expect(await checkStore(paths)).toEqual([a.digest, c.digest].sort())
  })

  it('putJson stores compact JSON; readJson validates it', async () => {
    const { content } = await store()
    const config = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256('x')] }, config: { Cmd: ['sh'] } }
    const d = await content.putJson(MediaType.OciConfig, config)
    const text = readFileSync(content.path(d.digest), 'utf8')
    expect(text).toBe(JSON.stringify(config))
    expect(text).not.toMatch(/\s/)
    expect(d).toEqual({ mediaType: MediaType.OciConfig, digest: sha256(text), size: Buffer.byteLength(text) })
    const back = await content.readJson(d, ImageConfigSchema)
    expect(back.config?.Cmd).toEqual(['sh'])
    const raw = await content.putBytes('text/plain', 'plain text')
    expect(readFileSync(content.path(raw.digest), 'utf8')).toBe('plain text')
  })

  it('readJson of an invalid document → ERR_STORE_BAD_IMAGE naming the field path', async () => {
    const { content } = await store()
    const d = await content.putJson(MediaType.OciConfig, { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ['sha256:nothex'] } })
    const err = await rejection(content.readJson(d, ImageConfigSchema))
    expect(err.code).toBe('ERR_STORE_BAD_IMAGE')
    expect(err.field).toBe('config.rootfs.diff_ids[0]')
    expect(err.message).toContain('config.rootfs.diff_ids[0]')
    expect(err.message).toContain(d.digest)
    const notJson = await content.putBytes(MediaType.OciConfig, '{"architecture":')
    const err2 = await rejection(content.readJson(notJson, ImageConfigSchema))
    expect(err2.code).toBe('ERR_STORE_BAD_IMAGE')
    expect(err2.message).toContain('not valid JSON')
  })

  it('readBytes: missing → NOT_FOUND, corrupt → DIGEST_MISMATCH, too big → BAD_IMAGE', async () => {
    const { content } = await store()
    const missing = await rejection(content.readBytes(sha256('nope')))
    expect(missing.code).toBe('ERR_STORE_NOT_FOUND')
    expect(missing.digest).toBe(sha256('nope'))
    const d = await content.putBytes('application/json', '{"a":1}')
    writeFileSync(content.path(d.digest), '{"a":2}') // bit rot
    expect((await rejection(content.readBytes(d))).code).toBe('ERR_STORE_DIGEST_MISMATCH')
    const big = await content.putBytes('application/json', Buffer.alloc(2000, 32))
    expect((await rejection(content.readBytes(big, { maxSize: 1000 }))).code).toBe('ERR_STORE_BAD_IMAGE')
    expect((await rejection(content.readBytes(big.digest, { maxSize: 1000 }))).code).toBe('ERR_STORE_BAD_IMAGE')
    const it = content.read(sha256('nope'))[Symbol.asyncIterator]()
    expect((await rejection(it.next())).code).toBe('ERR_STORE_NOT_FOUND')
  })

  it('list, size, delete; malformed digests never name a path', async () => {
    const { content } = await store()
    const a = await content.putBytes('x/y', 'a')
    const b = await content.putBytes('x/y', 'b')
    const listed: string[] = []
    for await (const d of content.list()) listed.push(d)
    expect(listed.sort()).toEqual([a.digest, b.digest].sort())
    expect(await content.delete(a.digest)).toBe(true)
    expect(await content.delete(a.digest)).toBe(false)
    expect((await rejection(content.size(a.digest))).code).toBe('ERR_STORE_NOT_FOUND')
    for (const bad of ['sha256:../../etc/passwd', 'md5:abc', 'sha256:' + 'A'.repeat(64), '../x']) {
      expect(() => content.path(bad)).toThrow(StoreError)
      expect((await rejection(content.write({ mediaType: 'x/y', digest: bad as Descriptor['digest'], size: 1 }, chunks(Buffer.from('x'))))).code).toBe('ERR_STORE_INVALID')
    }
  })

  it('tag and resolve go through the image index; without one, tag is refused', async () => {
    const { content, paths, index } = await store()
    const m = await content.putJson(MediaType.OciManifest, { schemaVersion: 2, config: { mediaType: MediaType.OciConfig, digest: sha256('c'), size: 1 }, layers: [] })
    await content.tag('docker.io/library/busybox:latest', m)
    expect((await index.get('busybox'))?.descriptor.digest).toBe(m.digest)
    expect((await content.resolve('busybox:latest'))?.digest).toBe(m.digest)
    expect(await content.resolve('nothing:here')).toBeUndefined()
    const missing = await rejection(content.tag('x:y', { ...m, digest: sha256('absent') }))
    expect(missing.code).toBe('ERR_STORE_NOT_FOUND')
    const bare = await ContentStore.open(paths)
    expect((await rejection(bare.tag('busybox', m))).code).toBe('ERR_STORE_INVALID')
    expect(await bare.resolve('busybox')).toBeUndefined()
  })

  it('a crash (SIGKILL) in the middle of a large write leaves only a temporary, which the next open removes', async () => {
    const root = tempDir('ovl-crash-')
    roots.push(root)
    const { dir, cleanup } = transpileSrc()
    try {
      const size = 512 * 1024 * 1024
      // The digest does not matter: the child never gets to the end.
      const digest = sha256('never finished')
      const script = `
        import { ContentStore } from './src/content/store.js'
        import { StorePaths } from './src/paths.js'
        const content = await ContentStore.open(new StorePaths(${JSON.stringify(root)}), { fsync: true })
        const chunk = Buffer.alloc(1 << 20, 7)
        let sent = 0
        async function* data() {
          for (let i = 0; i < ${size} / chunk.length; i++) {
            sent += chunk.length
            if (sent === 32 * chunk.length) console.log('halfway')
            yield chunk
          }
        }
        await content.write({ mediaType: 'application/octet-stream', digest: ${JSON.stringify(digest)}, size: ${size} }, data())
        console.log('finished')
      `
      const lines: string[] = []
      const { exited } = runChild(dir, script, (line, child) => {
        lines.push(line)
        if (line === 'halfway') child.kill('SIGKILL')
      })
      const { signal, stderr } = await exited
      expect(stderr).toBe('')
      expect(signal).toBe('SIGKILL')
      expect(lines).toEqual(['halfway'])
      const paths = new StorePaths(root)
      // The crash left a partial temporary, and nothing under blobs/.
      const tmps = names(paths.tmp)
      expect(tmps.length).toBe(1)
      expect(tmps[0]).toMatch(/^\.tmp-\d+-[0-9a-f]+-/)
      expect(statSync(path.join(paths.tmp, tmps[0]!)).size).toBeGreaterThan(0)
      expect(names(path.join(paths.blobs, 'sha256'))).toEqual([])
      // Reopening cleans up.
      const content = await ContentStore.open(paths)
      expect(names(paths.tmp)).toEqual([])
      expect(await checkStore(paths)).toEqual([])
      expect(await content.has({ mediaType: 'x/y', digest, size })).toBe(false)
    } finally {
      cleanup()
    }
  })
})
