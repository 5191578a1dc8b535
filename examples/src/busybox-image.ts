/**
 * An image for machines without internet: an OCI image layout built from the host's static
 * busybox (Debian's `busybox-static`), so `run({ image: await busyboxImage() })` works offline.
 *
 * The image has one layer: `/bin/busybox`, a relative symlink per applet at the path
 * `busybox --list-full` gives, `/etc/passwd` and `/etc/group` (root and nobody), and the empty
 * directories a container needs. Entries are sorted and owned by root with a fixed mtime, so
 * the same busybox always gives the same digests. The layout is cached in a directory named
 * after the binary's digest and built once: later calls only hash /bin/busybox.
 *
 *   import { busyboxImage } from './busybox-image.js'
 *   const image = await busyboxImage()   // 'oci:/var/lib/ctr/examples/busybox-1a2b3c4d5e6f:busybox:latest'
 *   await run({ image, cmd: ['echo', 'hi'] })
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { promisify } from 'node:util'
import { gzipSync } from 'node:zlib'
import { Header } from 'tar'
import { digestOf, MediaType, type Descriptor } from '@ctr/oci'
import { OciLayout } from '@ctr/registry-client'

/** The ref name of the image in its layout. */
export const BUSYBOX_REF = 'busybox:latest'

export interface BusyboxImageOptions {
  /** The static busybox binary. Default `/bin/busybox`. */
  busybox?: string
  /** Where layouts are cached. Default `$CTR_EXAMPLES_CACHE`, else `<$CTR_ROOT or /var/lib/ctr>/examples`. */
  cacheDir?: string
}

/** Every entry gets this mtime: the layer's digest depends only on the busybox binary. */
const MTIME = new Date('2024-01-01T00:00:00Z')
const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n'
const GROUP = 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n'
const DIRS = ['bin', 'dev', 'etc', 'home', 'proc', 'root', 'run', 'sbin', 'sys', 'tmp', 'usr', 'usr/bin', 'usr/sbin', 'var']

/**
 * Builds (once) the busybox OCI layout and returns its image name for `run()`:
 * `oci:<layout dir>:busybox:latest`.
 */
export async function busyboxImage(options: BusyboxImageOptions = {}): Promise<string> {
  const busybox = options.busybox ?? '/bin/busybox'
  const cacheDir = options.cacheDir ?? process.env['CTR_EXAMPLES_CACHE'] ?? path.join(process.env['CTR_ROOT'] ?? '/var/lib/ctr', 'examples')
  const binary = await fs.readFile(busybox).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${busybox}: ${err.code ?? err.message}; install Debian's busybox-static (apt-get install busybox-static)`, { cause: err })
  })
  const dir = path.join(cacheDir, `busybox-${createHash('sha256').update(binary).digest('hex').slice(0, 12)}`)
  if (!(await exists(path.join(dir, 'index.json')))) await build(busybox, binary, dir)
  return `oci:${dir}:${BUSYBOX_REF}`
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(() => true, () => false)
}

/** Writes the layout into a temporary sibling, then renames it into place (a racing build just loses). */
async function build(busybox: string, binary: Buffer, dir: string): Promise<void> {
  await fs.mkdir(path.dirname(dir), { recursive: true })
  const tmp = `${dir}.tmp-${process.pid}`
  await fs.rm(tmp, { recursive: true, force: true })
  try {
    const tar = tarball(binary, await applets(busybox))
    const layerBlob = gzipSync(tar, { level: 9 })
    const layout = await OciLayout.open(tmp, { fsync: false })
    const put = async (mediaType: string, data: Buffer): Promise<Descriptor> => {
      const desc = { mediaType, digest: digestOf(data), size: data.length } as Descriptor
      await layout.write(desc, Readable.from([data]))
      return desc
    }
    const json = (doc: unknown) => Buffer.from(JSON.stringify(doc))
    const layer = await put(MediaType.OciLayerGzip, layerBlob)
    const config = await put(MediaType.OciConfig, json({
      created: MTIME.toISOString(),
      architecture: ociArch(),
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [digestOf(tar)] },
      history: [{ created: MTIME.toISOString(), created_by: `busybox-image: ${busybox}` }],
    }))
    const manifest = await put(MediaType.OciManifest, json({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer] }))
    await layout.tag(BUSYBOX_REF, manifest)
    await fs.rename(tmp, dir)
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true })
    // Another process finished the same build first: its layout is as good as ours.
    if (!(await exists(path.join(dir, 'index.json')))) throw err
  }
}

/** Applet paths (`bin/sh`, `usr/bin/env`, …) as the binary lists them. */
async function applets(busybox: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)(busybox, ['--list-full'])
  return stdout.split('\n').map((s) => s.trim()).filter((s) => s !== '' && s !== 'bin/busybox').sort()
}

/** The layer as an uncompressed tar: directories, the binary, applet symlinks, /etc files. */
function tarball(binary: Buffer, links: string[]): Buffer {
  const dirs = new Set(DIRS)
  for (const l of links) for (let d = path.posix.dirname(l); d !== '.'; d = path.posix.dirname(d)) dirs.add(d)
  const parts: Buffer[] = []
  const entry = (p: string, type: 'Directory' | 'File' | 'SymbolicLink', mode: number, data?: Buffer, linkpath?: string) => {
    const block = Buffer.alloc(512)
    const needsPax = new Header({ path: p, type, mode, uid: 0, gid: 0, uname: 'root', gname: 'root', size: data?.length ?? 0, mtime: MTIME, ...(linkpath ? { linkpath } : {}) }).encode(block, 0)
    if (needsPax) throw new Error(`${p}: name too long for a plain ustar header`)
    parts.push(block)
    if (data) parts.push(data, Buffer.alloc((512 - (data.length % 512)) % 512))
  }
  for (const d of [...dirs].sort()) entry(`${d}/`, 'Directory', d === 'tmp' ? 0o1777 : d === 'root' ? 0o700 : 0o755)
  entry('bin/busybox', 'File', 0o755, binary)
  for (const l of links) entry(l, 'SymbolicLink', 0o777, undefined, path.posix.relative(path.posix.dirname(l), 'bin/busybox'))
  entry('etc/group', 'File', 0o644, Buffer.from(GROUP))
  entry('etc/passwd', 'File', 0o644, Buffer.from(PASSWD))
  parts.push(Buffer.alloc(1024))
  return Buffer.concat(parts)
}

/** This host's architecture as OCI names it. */
function ociArch(): string {
  const names: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' }
  return names[process.arch] ?? process.arch
}
