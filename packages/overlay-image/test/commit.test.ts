/**
 * Commit against real overlay mounts: changes made through a mounted snapshot become a layer
 * whose tar entries are checked one by one (a strict reader in helpers/snap-tar.ts), that
 * GNU tar extracts to the same tree, that is byte-identical when committed twice with a fixed
 * mtime, and that enters the content store with the right media types, diff id and config.
 */
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chownSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, chmodSync, mkdtempSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AT_FDCWD, FileType, llistxattr, lsetxattr, makedev, mknodat } from '@ctr/native'
import { MediaType, digestOf, type Descriptor, type ImageConfig, type Manifest } from '@ctr/oci'
import { ContentStore } from '../src/content/store.js'
import { StoreError } from '../src/errors.js'
import { chainIds as chainIdsOf } from '../src/layers/chain-id.js'
import { unpackLayer } from '../src/layers/unpack.js'
import type { StorePaths } from '../src/paths.js'
import { Snapshots, type Snapshot } from '../src/snapshots/index.js'
import { commitSnapshot, diffUpper, tarStream, entryHeader, paxRecord, type CommitArgs } from '../src/commit/index.js'
import { listTree, makeLayer, mountsBelow, tempStore, writeNodes, type Node } from './helpers/snap-fixtures.js'
import { decompressBlob, listTar, type ListedEntry } from './helpers/snap-tar.js'
import { runScript, transpiledSrc } from './helpers/snap-child.js'

let store: ReturnType<typeof tempStore>
let paths: StorePaths
let snaps: Snapshots
let content: ContentStore

beforeEach(async () => {
  store = tempStore('ctr-commit-')
  paths = store.paths
  snaps = new Snapshots(paths, { fsync: false })
  content = await ContentStore.open(paths, { fsync: false })
})

afterEach(() => {
  const left = mountsBelow(store.root)
  store.cleanup()
  expect(left, 'mounts left behind by the test').toEqual([])
})

const fakeDigest = (s: string) => digestOf(s)

/** A base image of layer directories built by hand, with a manifest and config that name them. */
function baseImage(layers: Node[][], format: 'oci' | 'docker' = 'oci'): { manifest: Manifest; config: ImageConfig; chainIds: string[]; manifestDigest: string } {
  const diffIds = layers.map((_, i) => fakeDigest(`diff ${i} ${Math.random()}`))
  const chainIds = chainIdsOf(diffIds)
  layers.forEach((nodes, i) => makeLayer(paths, nodes, chainIds[i]))
  const layerType = format === 'oci' ? MediaType.OciLayerGzip : MediaType.DockerLayerGzip
  const config: ImageConfig = {
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/bin:/bin', 'LANG=C'], Cmd: ['/bin/sh'], Labels: { keep: 'yes', drop: 'me' }, ExposedPorts: { '22/tcp': {} } },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `layer ${i}` })),
  }
  const manifest = {
    schemaVersion: 2 as const,
    mediaType: format === 'oci' ? MediaType.OciManifest : MediaType.DockerManifest,
    config: { mediaType: format === 'oci' ? MediaType.OciConfig : MediaType.DockerConfig, digest: fakeDigest('config'), size: 100 },
    layers: diffIds.map((d, i) => ({ mediaType: layerType, digest: fakeDigest(`blob ${i} ${d}`), size: 1000 + i })),
  } as Manifest
  return { manifest, config, chainIds, manifestDigest: fakeDigest(JSON.stringify(manifest)) }
}

const BASE_LAYERS: Node[][] = [
  [
    { path: 'etc', type: 'dir' },
    { path: 'etc/passwd', type: 'file', content: 'root:x:0:0\n' },
    { path: 'etc/motd', type: 'file', content: 'hello\n' },
    { path: 'usr/share/doc', type: 'dir' },
    { path: 'usr/share/doc/a', type: 'file', content: 'a' },
    { path: 'usr/share/doc/b', type: 'file', content: 'b' },
    { path: 'bin', type: 'dir' },
    { path: 'bin/busybox', type: 'file', content: 'bb', mode: 0o755 },
  ],
  [{ path: 'etc/hostname', type: 'file', content: 'base\n' }],
]

async function prepared(format: 'oci' | 'docker' = 'oci') {
  const image = baseImage(BASE_LAYERS, format)
  const snap = await snaps.prepare({ id: 'c1', image: 'busybox:latest', manifestDigest: image.manifestDigest, chainIds: image.chainIds })
  return { image, snap }
}

/** Changes of every kind, made through the mounted overlay. */
function makeChanges(root: string): void {
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0\nuser:x:1000:1000\n') // modify a lower file
  rmSync(join(root, 'etc/motd')) // delete a lower file
  rmSync(join(root, 'usr/share/doc'), { recursive: true }) // replace a directory…
  mkdirSync(join(root, 'usr/share/doc'))
  writeFileSync(join(root, 'usr/share/doc/new'), 'new doc') // …by another one
  mkdirSync(join(root, 'opt/app'), { recursive: true })
  writeFileSync(join(root, 'opt/app/run'), '#!/bin/sh\necho hi\n')
  chmodSync(join(root, 'opt/app/run'), 0o4755)
  linkSync(join(root, 'opt/app/run'), join(root, 'opt/app/run-again')) // a hard link
  symlinkSync('../opt/app/run', join(root, 'bin/app')) // a symlink
  lsetxattr(join(root, 'opt/app/run'), 'user.comment', Buffer.from('binary\0value\xff', 'latin1'))
  lsetxattr(join(root, 'opt/app'), 'trusted.app', Buffer.from('t'))
  mknodat(AT_FDCWD, join(root, 'opt/app/fifo'), FileType.S_IFIFO | 0o600, 0)
  mknodat(AT_FDCWD, join(root, 'opt/app/null'), FileType.S_IFCHR | 0o666, makedev(1, 3))
  const deep = join(root, 'opt', 'd'.repeat(60), 'e'.repeat(60), 'f'.repeat(60))
  mkdirSync(deep, { recursive: true })
  writeFileSync(join(deep, 'g'.repeat(120)), 'long name') // > 255 bytes: a pax path
  writeFileSync(join(root, 'opt/héllo wörld'), 'utf-8') // not ASCII: a pax path
  writeFileSync(join(root, 'opt/big-ids'), 'x')
  chownSync(join(root, 'opt/big-ids'), 3_000_000, 4_000_000) // over 2097151: base-256 and pax
  writeFileSync(join(root, 'opt/-dash'), 'sorts before .wh.')
}

function entryList(entries: ListedEntry[]): string[] {
  return entries.map((e) => {
    const mode = e.mode.toString(8)
    const x = Object.entries(e.xattrs).map(([k, v]) => ` ${k}=${JSON.stringify(v)}`).join('')
    const link = e.linkname ? ` -> ${e.linkname}` : ''
    const dev = e.type === '3' || e.type === '4' ? ` ${e.devmajor}:${e.devminor}` : ''
    const owner = e.uid !== 0 || e.gid !== 0 ? ` ${e.uid}:${e.gid}` : ''
    const body = e.type === '0' && e.size > 0 ? ` ${JSON.stringify(e.content.toString())}` : ''
    return `${e.type} ${e.name} ${mode}${owner}${link}${dev}${body}${x}`
  })
}

async function commitArgs(snap: Snapshot, image: { manifest: Manifest; config: ImageConfig }, extra: Partial<CommitArgs> = {}): Promise<CommitArgs> {
  return { paths, snapshot: snap, base: { manifest: image.manifest, config: image.config }, content, ...extra }
}

function blob(desc: Descriptor): Buffer {
  return readFileSync(content.path(desc.digest))
}

function blobNames(): string[] {
  return readdirSync(join(paths.blobs, 'sha256')).sort()
}

describe('diff and tar', () => {
  it('turns every kind of change into the expected tar entries, in order', async () => {
    const { image, snap } = await prepared()
    try {
      makeChanges(snap.rootfs)
      const r = await commitSnapshot(await commitArgs(snap, image, { compression: 'none', mtime: new Date('2024-05-01T00:00:00Z') }))
      const entries = listTar(blob(r.layerDesc))
      const long = `opt/${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(60)}`
      expect(entryList(entries)).toEqual([
        '5 bin/ 755',
        '2 bin/app 777 -> ../opt/app/run',
        '5 etc/ 755',
        '0 etc/.wh.motd 0', // the whiteout, before its siblings
        '0 etc/passwd 644 "root:x:0:0\\nuser:x:1000:1000\\n"',
        '5 opt/ 755',
        '0 opt/-dash 644 "sorts before .wh."',
        '5 opt/app/ 755 trusted.app="t"',
        '6 opt/app/fifo 600',
        '3 opt/app/null 644 1:3', // (mknod under umask 022)
        '0 opt/app/run 4755 "#!/bin/sh\\necho hi\\n" user.comment="binary\\u0000valueÿ"',
        '1 opt/app/run-again 4755 -> opt/app/run',
        '0 opt/big-ids 644 3000000:4000000 "x"',
        `5 opt/${'d'.repeat(60)}/ 755`,
        `5 opt/${'d'.repeat(60)}/${'e'.repeat(60)}/ 755`,
        `5 ${long}/ 755`,
        `0 ${long}/${'g'.repeat(120)} 644 "long name"`,
        '0 opt/héllo wörld 644 "utf-8"',
        '5 usr/ 755',
        '5 usr/share/ 755',
        '5 usr/share/doc/ 755',
        '0 usr/share/doc/.wh..wh..opq 755', // opaque: the replaced directory hides the lower one
        '0 usr/share/doc/new 644 "new doc"',
      ])
      // no names or overlay internals leak; one fixed mtime
      for (const e of entries) {
        expect([e.uname, e.gname]).toEqual(['', ''])
        expect(e.mtime).toBe(Date.parse('2024-05-01T00:00:00Z') / 1000)
        expect(Object.keys(e.xattrs).some((k) => k.startsWith('trusted.overlay.'))).toBe(false)
      }
      expect(entries.find((e) => e.name.endsWith('g'.repeat(120)))!.paxKeys).toContain('path')
      expect(entries.find((e) => e.name === 'opt/héllo wörld')!.paxKeys).toContain('path')
      expect(entries.find((e) => e.name === 'opt/big-ids')!.paxKeys).toEqual(['path', 'gid', 'mtime', 'size', 'uid'])
      expect(entries.find((e) => e.name === 'etc/passwd')!.paxKeys).toEqual([])
      expect(r.diffId).toBe(digestOf(blob(r.layerDesc)))
    } finally {
      await snaps.remove('c1')
    }
  })

  it('GNU tar extracts the layer to the upper directory\'s tree, with OCI whiteouts', async () => {
    const { image, snap } = await prepared()
    const out = mkdtempSync('/tmp/ctr-commit-x-')
    try {
      makeChanges(snap.rootfs)
      const r = await commitSnapshot(await commitArgs(snap, image, { compression: 'gzip' }))
      writeFileSync(join(out, '..', `${out.split('/').pop()}.tar.gz`), blob(r.layerDesc))
      const tarFile = join(out, '..', `${out.split('/').pop()}.tar.gz`)
      try {
        const r = spawnSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xzpf', tarFile, '-C', out])
        expect(r.stderr.toString()).toBe('')
        expect(r.status).toBe(0)
      } finally {
        rmSync(tarFile, { force: true })
      }
      // what the upper directory holds, with the overlay forms turned into OCI ones
      const expected = listTree(snap.upper!, { modes: true, xattrs: true })
        .map((l) => l.replace(/^(.*\/)?([^/]+) c 0:0 \d+ \d+:\d+$/, (_, dir: string | undefined, name: string) => `${dir ?? ''}.wh.${name} file 0 0:0 ""`))
        .flatMap((l) => (l.endsWith(' opaque') ? [l.replace(/ opaque$/, ''), `${l.split(' ')[0]}.wh..wh..opq file 755 0:0 ""`] : [l]))
        .sort()
      expect(listTree(out, { modes: true, xattrs: true }).sort()).toEqual(expected)
      // and the same file times (whole seconds)
      const t = (p: string) => Math.floor(lstatSync(p).mtimeMs / 1000)
      expect(t(join(out, 'etc/passwd'))).toBe(t(join(snap.upper!, 'etc/passwd')))
    } finally {
      rmSync(out, { recursive: true, force: true })
      await snaps.remove('c1')
    }
  })

  it('an xattr the container set on overlay\'s own namespace is committed unescaped', async () => {
    const { image, snap } = await prepared()
    try {
      writeFileSync(join(snap.rootfs, 'nested'), '')
      try {
        lsetxattr(join(snap.rootfs, 'nested'), 'trusted.overlay.opaque', Buffer.from('y'))
      } catch (err) {
        // kernels before 6.7 refuse overlay xattrs through the overlay
        expect((err as NodeJS.ErrnoException).code).toMatch(/EPERM|EOPNOTSUPP|ENOTSUP/)
        return
      }
      expect(llistxattr(join(snap.upper!, 'nested'))).toContain('trusted.overlay.overlay.opaque')
      const r = await commitSnapshot(await commitArgs(snap, image, { compression: 'none' }))
      const e = listTar(blob(r.layerDesc)).find((x) => x.name === 'nested')!
      expect(e.xattrs).toEqual({ 'trusted.overlay.opaque': 'y' })
    } finally {
      await snaps.remove('c1')
    }
  })

  it('round trip: the committed layer, unpacked by the store\'s unpacker on top of the base, renders the same tree', async () => {
    const { image, snap } = await prepared()
    try {
      makeChanges(snap.rootfs)
      for (const compression of ['gzip', 'zstd'] as const) {
        const r = await commitSnapshot(await commitArgs(snap, image, { compression }))
        const { chainId, created } = await unpackLayer(
          paths,
          { blobPath: content.path(r.layerDesc.digest), mediaType: r.layerDesc.mediaType, digest: r.layerDesc.digest, size: r.layerDesc.size },
          r.diffId,
          image.chainIds.at(-1),
          { fsync: false },
        )
        expect(created).toBe(compression === 'gzip') // the same diff id: the same layer, unpacked once
        expect(chainIdsOf(r.config.rootfs.diff_ids).at(-1)).toBe(chainId)
        const again = await snaps.prepare({ id: 'c2', image: 'mine:v2', manifestDigest: r.manifestDesc.digest, chainIds: [...image.chainIds, chainId] })
        try {
          expect(listTree(again.rootfs, { modes: true, xattrs: true })).toEqual(listTree(snap.rootfs, { modes: true, xattrs: true }))
          const ino = (p: string) => lstatSync(join(again.rootfs, p)).ino
          expect(ino('opt/app/run-again')).toBe(ino('opt/app/run'))
        } finally {
          await snaps.remove('c2')
        }
      }
    } finally {
      await snaps.remove('c1')
    }
  })

  it('is deterministic: two commits of one upper are byte-identical with a fixed mtime', async () => {
    const { image, snap } = await prepared()
    try {
      makeChanges(snap.rootfs)
      const args = await commitArgs(snap, image, { mtime: new Date(0), compression: 'none' })
      const a = await commitSnapshot(args)
      const b = await commitSnapshot(args)
      expect(b.layerDesc).toEqual(a.layerDesc)
      expect(b.configDesc).toEqual(a.configDesc)
      expect(b.manifestDesc).toEqual(a.manifestDesc)
      // also compressed, and also without a fixed mtime (nothing changed in between)
      for (const compression of ['gzip', 'zstd'] as const) {
        const c1 = await commitSnapshot({ ...args, compression })
        const c2 = await commitSnapshot({ ...args, compression })
        expect(c2.layerDesc.digest).toBe(c1.layerDesc.digest)
        expect(c2.manifestDesc.digest).toBe(c1.manifestDesc.digest)
      }
      const n1 = await commitSnapshot({ ...args, mtime: undefined })
      const n2 = await commitSnapshot({ ...args, mtime: undefined })
      expect(n2.diffId).toBe(n1.diffId)
      expect(n1.diffId).not.toBe(a.diffId)
      // the diff from a stream is the same as through the store
      const chunks: Buffer[] = []
      for await (const c of tarStream(diffUpper(snap.upper!), { mtime: new Date(0) })) chunks.push(c)
      expect(digestOf(Buffer.concat(chunks))).toBe(a.diffId)
    } finally {
      await snaps.remove('c1')
    }
  })

  it('an empty upper directory gives an empty layer (two zero blocks)', async () => {
    const { image, snap } = await prepared()
    try {
      const r = await commitSnapshot(await commitArgs(snap, image, { compression: 'none' }))
      expect(blob(r.layerDesc)).toEqual(Buffer.alloc(1024))
    } finally {
      await snaps.remove('c1')
    }
  })

  it('pax records: lengths that count themselves, raw binary values', () => {
    expect(paxRecord('path', Buffer.from('a')).toString()).toBe('9 path=a\n')
    // 2 digits → 3 digits when the length reaches 100
    for (const [n, len] of [[90, 99], [91, 101], [92, 102]] as const) {
      const r = paxRecord('path', Buffer.from('x'.repeat(n)))
      expect(r.length).toBe(len)
      expect(r.toString().split(' ')[0]).toBe(String(len))
    }
    expect(paxRecord('SCHILY.xattr.user.x', Buffer.from([0, 255])).subarray(-3)).toEqual(Buffer.from([0, 255, 10]))
    expect(() => entryHeader({ name: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, xattrs: [['user.bad=name', Buffer.from('')]] })).toThrow(
      expect.objectContaining({ code: 'ERR_STORE_UNSUPPORTED' }),
    )
    // a plain entry is one ustar block
    expect(entryHeader({ name: 'etc/', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0 }).length).toBe(512)
  })
})

describe('commit', () => {
  it('stores layer, config and manifest: diff id, media types per compression, config changes, history, annotations', async () => {
    const { image, snap } = await prepared()
    try {
      writeFileSync(join(snap.rootfs, 'etc/hostname'), 'committed\n')
      for (const compression of ['gzip', 'zstd', 'none'] as const) {
        const before = blobNames()
        const r = await commitSnapshot(
          await commitArgs(snap, image, {
            compression,
            mtime: new Date('2024-06-01T12:00:00Z'),
            author: 'me <me@example.com>',
            message: 'change the host name',
            changes: { entrypoint: ['/bin/app'], env: ['LANG=C.UTF-8', 'NEW=1'], workingDir: '/opt', user: '1000:1000', labels: { drop: null, add: 'x' }, exposedPorts: ['80', '53/udp'] },
          }),
        )
        expect(r.layerDesc.mediaType).toBe({ gzip: MediaType.OciLayerGzip, zstd: MediaType.OciLayerZstd, none: MediaType.OciLayer }[compression])
        const bytes = blob(r.layerDesc)
        expect(r.layerDesc).toEqual({ mediaType: r.layerDesc.mediaType, digest: digestOf(bytes), size: bytes.length })
        const tar = decompressBlob(bytes, compression)
        expect(r.diffId).toBe(digestOf(tar))
        expect(entryList(listTar(tar))).toEqual(['5 etc/ 755', '0 etc/hostname 644 "committed\\n"'])
        // config
        const config = JSON.parse(blob(r.configDesc).toString())
        expect(config).toEqual(r.config)
        expect(r.configDesc.mediaType).toBe(MediaType.OciConfig)
        expect(config.rootfs.diff_ids).toEqual([...image.config.rootfs.diff_ids, r.diffId])
        expect(config.created).toBe('2024-06-01T12:00:00.000Z')
        expect(config.author).toBe('me <me@example.com>')
        expect(config.history).toEqual([
          ...image.config.history!,
          { created: '2024-06-01T12:00:00.000Z', created_by: 'ctr commit', author: 'me <me@example.com>', comment: 'change the host name' },
        ])
        expect(config.config).toEqual({
          Env: ['PATH=/usr/bin:/bin', 'LANG=C.UTF-8', 'NEW=1'],
          Entrypoint: ['/bin/app'], // and the inherited Cmd is gone
          WorkingDir: '/opt',
          User: '1000:1000',
          Labels: { keep: 'yes', add: 'x' },
          ExposedPorts: { '22/tcp': {}, '80/tcp': {}, '53/udp': {} },
        })
        expect(config.architecture).toBe('amd64')
        // manifest
        const manifest = JSON.parse(blob(r.manifestDesc).toString())
        expect(manifest).toEqual(r.manifest)
        expect(r.manifestDesc.mediaType).toBe(MediaType.OciManifest)
        expect(manifest).toEqual({
          schemaVersion: 2,
          mediaType: MediaType.OciManifest,
          config: r.configDesc,
          layers: [...image.manifest.layers, r.layerDesc],
          annotations: { 'org.opencontainers.image.base.digest': image.manifestDigest, 'org.opencontainers.image.base.name': 'docker.io/library/busybox:latest' },
        })
        expect(blobNames()).toEqual([...new Set([...before, ...[r.layerDesc, r.configDesc, r.manifestDesc].map((d) => d.digest.slice(7))])].sort())
      }
      // the snapshot was only read
      expect(readFileSync(join(snap.rootfs, 'etc/hostname'), 'utf8')).toBe('committed\n')
    } finally {
      await snaps.remove('c1')
    }
  })

  it('a Docker base stays Docker with gzip, becomes OCI with zstd, and refuses format docker + zstd', async () => {
    const { image, snap } = await prepared('docker')
    try {
      writeFileSync(join(snap.rootfs, 'f'), 'x')
      const g = await commitSnapshot(await commitArgs(snap, image))
      expect(g.manifestDesc.mediaType).toBe(MediaType.DockerManifest)
      expect(g.manifest.mediaType).toBe(MediaType.DockerManifest)
      expect(g.configDesc.mediaType).toBe(MediaType.DockerConfig)
      expect(g.layerDesc.mediaType).toBe(MediaType.DockerLayerGzip)
      expect(g.manifest.layers.map((l) => l.mediaType)).toEqual([MediaType.DockerLayerGzip, MediaType.DockerLayerGzip, MediaType.DockerLayerGzip])
      expect(g.manifest.annotations).toBeUndefined()

      const z = await commitSnapshot(await commitArgs(snap, image, { compression: 'zstd' }))
      expect(z.manifestDesc.mediaType).toBe(MediaType.OciManifest)
      expect(z.configDesc.mediaType).toBe(MediaType.OciConfig)
      expect(z.manifest.layers.map((l) => l.mediaType)).toEqual([MediaType.OciLayerGzip, MediaType.OciLayerGzip, MediaType.OciLayerZstd])
      expect(z.manifest.layers.slice(0, 2).map((l) => l.digest)).toEqual(image.manifest.layers.map((l) => l.digest))

      const err = await commitSnapshot(await commitArgs(snap, image, { compression: 'zstd', format: 'docker' })).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(StoreError)
      expect((err as StoreError).code).toBe('ERR_STORE_UNSUPPORTED')
      // an OCI base written as Docker
      const { image: oci } = { image: baseImage(BASE_LAYERS) }
      const snap2 = await snaps.prepare({ id: 'c2', image: 'i', manifestDigest: oci.manifestDigest, chainIds: oci.chainIds, mount: false })
      try {
        const od = await commitSnapshot(await commitArgs(snap2, oci, { format: 'docker' }))
        expect(od.manifest.mediaType).toBe(MediaType.DockerManifest)
        expect(od.configDesc.mediaType).toBe(MediaType.DockerConfig)
        expect(od.manifest.layers.map((l) => l.mediaType)).toEqual([MediaType.DockerLayerGzip, MediaType.DockerLayerGzip, MediaType.DockerLayerGzip])
      } finally {
        await snaps.remove('c2')
      }
      // and format 'oci' converts with gzip too
      const d = await commitSnapshot(await commitArgs(snap, image, { format: 'oci' }))
      expect(d.manifestDesc.mediaType).toBe(MediaType.OciManifest)
      expect(d.manifest.layers.map((l) => l.mediaType)).toEqual([MediaType.OciLayerGzip, MediaType.OciLayerGzip, MediaType.OciLayerGzip])
    } finally {
      await snaps.remove('c1')
    }
  })

  it('refuses read-only snapshots, foreign bases and bad changes, with nothing stored', async () => {
    const { image, snap } = await prepared()
    const ro = await snaps.prepare({ id: 'ro', image: 'i', manifestDigest: image.manifestDigest, chainIds: image.chainIds, readonly: true, mount: false })
    try {
      const before = blobNames()
      const code = async (args: Partial<CommitArgs>, s: Snapshot = snap) => {
        const e = await commitSnapshot(await commitArgs(s, image, args)).catch((x: unknown) => x)
        expect(e).toBeInstanceOf(StoreError)
        return [(e as StoreError).code, (e as StoreError).field]
      }
      expect(await code({}, ro)).toEqual(['ERR_STORE_INVALID', 'snapshot'])
      const other = baseImage([[{ path: 'x', type: 'file' }]])
      expect(await code({ base: { manifest: other.manifest, config: other.config } })).toEqual(['ERR_STORE_INVALID', 'base'])
      expect(await code({ changes: { env: ['NOEQUALS'] } })).toEqual(['ERR_STORE_INVALID', 'changes.env.0'])
      expect(await code({ changes: { workingDir: 'relative' } })).toEqual(['ERR_STORE_INVALID', 'changes.workingDir'])
      expect(await code({ changes: { bogus: 1 } as never })).toEqual(['ERR_STORE_INVALID', 'changes'])
      expect(await code({ compression: 'xz' as never })).toEqual(['ERR_STORE_INVALID', 'compression'])
      expect(await code({ snapshot: { ...snap.record, id: 'gone' } })).toEqual(['ERR_STORE_NOT_FOUND', undefined])
      expect(blobNames()).toEqual(before)
    } finally {
      await snaps.remove('ro')
      await snaps.remove('c1')
    }
  })

  it('refuses an upper directory that is not self-contained (redirect or metacopy xattrs), leaving only nothing behind', async () => {
    const { image, snap } = await prepared()
    try {
      await snaps.unmount('c1')
      for (const xattr of ['trusted.overlay.redirect', 'trusted.overlay.metacopy']) {
        const dir = join(snap.upper!, 'renamed')
        mkdirSync(dir)
        writeFileSync(join(snap.upper!, 'aaa'), 'x'.repeat(200_000)) // some layer before it
        lsetxattr(dir, xattr, Buffer.from('/elsewhere'))
        const before = blobNames()
        const err = await commitSnapshot(await commitArgs(snap, image)).catch((e: unknown) => e)
        expect(err).toBeInstanceOf(StoreError)
        expect((err as StoreError).code).toBe('ERR_STORE_UNSUPPORTED')
        expect((err as StoreError).message).toMatch(/renamed/)
        expect(blobNames()).toEqual(before)
        expect(readdirSync(paths.tmp)).toEqual([])
        rmSync(dir, { recursive: true })
      }
    } finally {
      await snaps.remove('c1')
    }
  })

  it('an abort stops the commit with ERR_STORE_ABORTED and no temporary or blob left', async () => {
    const { image, snap } = await prepared()
    try {
      for (let i = 0; i < 40; i++) writeFileSync(join(snap.rootfs, `file-${i}`), Buffer.alloc(1 << 20, i))
      const before = blobNames()
      const ac = new AbortController()
      const err = await commitSnapshot(
        await commitArgs(snap, image, {
          signal: ac.signal,
          onProgress: (p) => {
            if (p.entries === 10) ac.abort()
          },
        }),
      ).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(StoreError)
      expect((err as StoreError).code).toBe('ERR_STORE_ABORTED')
      expect(blobNames()).toEqual(before)
      expect(readdirSync(paths.tmp)).toEqual([])
    } finally {
      await snaps.remove('c1')
    }
  })

  it('a commit killed with SIGKILL half-way leaves only temporaries, which the next open removes', async () => {
    const { image, snap } = await prepared()
    const built = transpiledSrc()
    try {
      // 48 MiB of incompressible data, so the kill lands in the middle of the layer
      for (let i = 0; i < 48; i++) writeFileSync(join(snap.rootfs, `r${i}`), randomBytes(1 << 20))
      const treeBefore = listTree(snap.upper!).join('\n')
      const before = blobNames()
      const script = `
        const { commitSnapshot } = await import('./commit/index.js')
        const { ContentStore } = await import('./content/store.js')
        const { Snapshots } = await import('./snapshots/index.js')
        const { StorePaths } = await import('./paths.js')
        const paths = new StorePaths(${JSON.stringify(store.root)})
        const content = await ContentStore.open(paths)
        const snap = await new Snapshots(paths).get('c1')
        let said = false
        await commitSnapshot({ paths, snapshot: snap, content, base: ${JSON.stringify({ manifest: image.manifest, config: image.config })},
          onProgress: (p) => { if (!said && p.tarBytes > 16 * 1024 * 1024) { said = true; console.log('half') } } })
        console.log('done')
      `
      let sawHalf = false
      const { exited } = runScript(built.dir, script, (line, child) => {
        if (line === 'half') {
          sawHalf = true
          child.kill('SIGKILL')
        }
      })
      const res = await exited
      expect(res.signal, res.stderr).toBe('SIGKILL')
      expect(sawHalf).toBe(true)
      // the ingest's temporary is all there is; nothing entered blobs/
      const tmp = readdirSync(paths.tmp)
      expect(tmp.length).toBe(1)
      expect(tmp[0]).toMatch(/^\.tmp-\d+-[0-9a-f]+-ingest$/)
      expect(blobNames()).toEqual(before)
      // the next open cleans up; the snapshot is intact and commits
      const reopened = await ContentStore.open(paths, { fsync: false })
      expect(readdirSync(paths.tmp)).toEqual([])
      expect(listTree(snap.upper!).join('\n')).toBe(treeBefore)
      const r = await commitSnapshot({ ...(await commitArgs(snap, image)), content: reopened, compression: 'none' })
      expect(listTar(blob(r.layerDesc)).filter((e) => e.name.startsWith('r')).length).toBe(48)
    } finally {
      built.cleanup()
      await snaps.remove('c1')
    }
  })
})
