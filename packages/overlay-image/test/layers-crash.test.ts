/**
 * Interrupted unpacks: an abort half-way leaves nothing; a crash (SIGKILL of the process
 * doing the unpack) leaves only `layers/.tmp-*`, which `cleanLayerTemporaries` removes, and
 * the same unpack then succeeds. No fd and no zstd process outlives any of it.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { StorePaths } from '../src/paths.js'
import { cleanLayerTemporaries, unpackImageLayers, unpackLayer } from '../src/layers/unpack.js'
import { childrenNamed, fdCount, layerDirs, tempDir, tree } from './helpers/layers-fs.js'
import { transpileLayers, unpackInChild } from './helpers/layers-child.js'
import { rawTar, writeBlob, type BuiltBlob, type RawEntry } from './helpers/layers-tar.js'

const root = tempDir()
let child: { src: string; cleanup: () => void }
let gz: BuiltBlob
let zst: BuiltBlob
let fds = 0
let n = 0

/** ~48 MiB in 1000 files of random bytes: the blob is as big as the tar, so reading it takes a while. */
function bigTar(): Buffer {
  const entries: RawEntry[] = []
  for (let i = 0; i < 1000; i++) entries.push({ name: `d${i % 10}/f${i}`, data: randomBytes(48 * 1024) })
  return rawTar(entries)
}

function store(): StorePaths {
  const dir = join(root.dir, `s${n++}`)
  mkdirSync(dir)
  return new StorePaths(join(dir, 'store'))
}

beforeAll(() => {
  fds = fdCount()
  const tar = bigTar()
  gz = writeBlob(join(root.dir, 'big.tar.gz'), tar, 'gzip')
  zst = writeBlob(join(root.dir, 'big.tar.zst'), tar, 'zstd')
  child = transpileLayers()
}, 120_000)

afterAll(() => {
  child.cleanup()
  root.remove()
})

describe('abort', () => {
  for (const [what, blob] of [
    ['gzip', () => gz],
    ['zstd (through the zstd program)', () => zst],
  ] as const) {
    it(`half-way through a ${what} layer: ERR_STORE_ABORTED, nothing left`, async () => {
      const paths = store()
      const ac = new AbortController()
      let seen = 0
      const err = await unpackLayer(paths, blob(), blob().diffId, undefined, {
        fsync: false,
        signal: ac.signal,
        onProgress: (p) => {
          seen = p.bytes
          if (p.bytes > p.total / 3) ac.abort(new Error('user gave up'))
        },
      }).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'ERR_STORE_ABORTED' })
      expect(seen).toBeLessThan(blob().size)
      expect(layerDirs(paths.root)).toEqual([])
      expect(childrenNamed('zstd')).toEqual([])
      expect(fdCount()).toBe(fds)
    })
  }

  it('an abort of an image unpack stops every layer and leaves nothing', async () => {
    const paths = store()
    const ac = new AbortController()
    const desc = (b: BuiltBlob) => ({ mediaType: b.mediaType, digest: b.digest as `sha256:${string}`, size: b.size })
    const blobs = new Map([
      [gz.digest, gz.blobPath],
      [zst.digest, zst.blobPath],
    ])
    setTimeout(() => ac.abort(), 150)
    const err = await unpackImageLayers(paths, (d) => blobs.get(d)!, [desc(gz), desc(zst)], [gz.diffId, zst.diffId], { fsync: false, signal: ac.signal }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_STORE_ABORTED' })
    expect(layerDirs(paths.root)).toEqual([])
    expect(childrenNamed('zstd')).toEqual([])
  })

  it('an already aborted signal: nothing is read', async () => {
    const paths = store()
    const progress: number[] = []
    const err = await unpackLayer(paths, gz, gz.diffId, undefined, { signal: AbortSignal.abort(), onProgress: (p) => progress.push(p.bytes) }).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'ERR_STORE_ABORTED' })
    expect(progress).toEqual([])
  })
})

describe('crash', () => {
  for (const [what, blob] of [
    ['gzip', () => gz],
    ['zstd', () => zst],
  ] as const) {
    it(`kill -9 half-way through a ${what} layer leaves only a temporary; cleaning it and unpacking again works`, async () => {
      const paths = store()
      let killedAt = -1
      const run = unpackInChild(child.src, { root: paths.root, blob: blob(), diffId: blob().diffId }, (line, c) => {
        const m = /^progress (\d+)$/.exec(line)
        if (m && killedAt < 0 && Number(m[1]) > blob().size / 3) {
          killedAt = Number(m[1])
          c.kill('SIGKILL')
        }
      })
      const exit = await run.exited
      expect(exit.signal, exit.stderr).toBe('SIGKILL')
      expect(killedAt).toBeLessThan(blob().size)
      const left = layerDirs(paths.root)
      expect(left).toHaveLength(1)
      expect(left[0]).toMatch(/^\.tmp-\d+\.\d+-[0-9a-f]+$/)
      // Half a layer is there, and no layer.json.
      expect(execFileSync('find', [join(paths.layers, left[0]!), '-type', 'f']).toString().split('\n').length).toBeGreaterThan(10)

      expect(await cleanLayerTemporaries(paths)).toBe(1)
      expect(layerDirs(paths.root)).toEqual([])
      const r = await unpackLayer(paths, blob(), blob().diffId, undefined, { fsync: false })
      expect(r.created).toBe(true)
      expect([...tree(paths.layerFs(r.chainId)).values()].filter((v) => v.type === 'file')).toHaveLength(1000)
      // A zstd child of the killed process is not ours to see, but it must have gone too.
      expect(execFileSync('ps', ['-eo', 'args']).toString()).not.toContain(blob().blobPath)
    })
  }

  it('cleanLayerTemporaries keeps the temporaries of unpacks still running', async () => {
    const paths = store()
    let cleaned = -1
    const r = await unpackLayer(paths, gz, gz.diffId, undefined, {
      fsync: false,
      onProgress: (p) => {
        if (cleaned < 0 && p.bytes > p.total / 2) {
          cleaned = 0
          void cleanLayerTemporaries(paths).then((k) => (cleaned = k))
        }
      },
    })
    expect(r.created).toBe(true)
    expect(cleaned).toBe(0)
  })
})
