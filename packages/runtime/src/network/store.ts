/**
 * Networks on disk, beside the container states: `<stateRoot>/networks/<name>.json` (the
 * network), `<name>.ipam/` (who holds which address: one symlink per address, `<ip>` →
 * the holder as JSON) and `<name>.hosts` (the /etc/hosts every container on it bind-mounts).
 *
 * An address is taken by creating its symlink: `symlink(2)` is atomic and fails with EEXIST
 * when the name exists, so two processes can never hold one address, and the link (with its
 * holder) is complete from the moment it exists — no read-modify-write of a shared file, no
 * rename. One lock file (`O_CREAT|O_EXCL`, holding the holder's pid) still serialises what
 * must see a consistent whole: a join (network present, address, hosts file), a leave, a
 * network's creation and removal. Every file operation under the lock is synchronous: these
 * are a handful of tiny files, and a chain of thread-pool round trips (each waiting behind
 * whatever else the pool is doing: snapshots, cgroups) is what made the lock slow.
 */
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { isAlive, selfIdentity } from '../container/process-identity.js'
import { RuntimeError } from '../errors.js'

export const networkNameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'a network name: letters, digits, _ . - (up to 64)')

export const networkSchema = z.strictObject({
  version: z.literal(1),
  name: z.string(),
  subnet: z.string(),
  gateway: z.string(),
  /** IPv6 too (containers get the same host number in it). */
  subnet6: z.string().optional(),
  gateway6: z.string().optional(),
  bridge: z.string(),
  /** The netns the bridge and nft rules live in (absent: the creator's own). */
  hostNetns: z.union([z.number().int().positive(), z.string()]).optional(),
  /** Created on demand for a container (the default `bridge`): removed with its last container. */
  implicit: z.boolean(),
  dns: z.array(z.string()).optional(),
  created: z.string(),
})
export type NetworkRecord = z.infer<typeof networkSchema>

export const allocationSchema = z.strictObject({
  containerId: z.string(),
  name: z.string(),
  hostVeth: z.string(),
})
export const ipamSchema = z.strictObject({ version: z.literal(1), allocations: z.record(z.string(), allocationSchema) })
export type Ipam = z.infer<typeof ipamSchema>
export type Allocation = z.infer<typeof allocationSchema>

export class NetworkStore {
  readonly dir: string
  constructor(readonly stateRoot: string) {
    this.dir = path.join(stateRoot, 'networks')
  }

  file(name: string, ext: 'json' | 'ipam.json' | 'ipam' | 'hosts'): string {
    return path.join(this.dir, `${name}.${ext}`)
  }

  read(name: string): NetworkRecord | undefined {
    const r = networkSchema.safeParse(readJson(this.file(name, 'json')))
    return r.success ? r.data : undefined
  }

  list(): NetworkRecord[] {
    let names: string[]
    try {
      names = fs.readdirSync(this.dir)
    } catch {
      return []
    }
    return names
      .filter((n) => n.endsWith('.json') && !n.endsWith('.ipam.json'))
      .map((n) => this.read(n.slice(0, -5)))
      .filter((r): r is NetworkRecord => r !== undefined)
  }

  write(rec: NetworkRecord): void {
    atomicWrite(this.file(rec.name, 'json'), JSON.stringify(rec, null, 2))
  }

  /** Every address held on a network and by whom. */
  readIpam(name: string): Ipam {
    const dir = this.file(name, 'ipam')
    this.#migrate(name)
    const allocations: Ipam['allocations'] = {}
    let ips: string[]
    try {
      ips = fs.readdirSync(dir)
    } catch {
      return { version: 1, allocations }
    }
    for (const ip of ips) {
      let target: string
      try {
        target = fs.readlinkSync(path.join(dir, ip))
      } catch {
        continue // released meanwhile, or not a link
      }
      const a = allocationSchema.safeParse(parseJson(target))
      if (a.success) allocations[ip] = a.data
    }
    return { version: 1, allocations }
  }

  /** Takes `ip` for `a`; false when it is held already. */
  allocate(name: string, ip: string, a: Allocation): boolean {
    const dir = this.file(name, 'ipam')
    try {
      fs.symlinkSync(JSON.stringify(a), path.join(dir, ip))
      return true
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EEXIST') return false
      if (code !== 'ENOENT') throw err
    }
    fs.mkdirSync(dir, { recursive: true, mode: 0o711 })
    return this.allocate(name, ip, a)
  }

  /** Gives `ip` back (only if `containerId` holds it). */
  release(name: string, ip: string, containerId: string): void {
    const file = path.join(this.file(name, 'ipam'), ip)
    try {
      const a = parseJson(fs.readlinkSync(file)) as { containerId?: unknown } | undefined
      if (a?.containerId === containerId) fs.unlinkSync(file)
    } catch {
      /* not held */
    }
  }

  /** An empty IPAM (a new network). */
  resetIpam(name: string): void {
    fs.rmSync(this.file(name, 'ipam'), { recursive: true, force: true })
    fs.mkdirSync(this.file(name, 'ipam'), { mode: 0o711 })
  }

  /**
   * Rewrites the hosts file in place (bind mounts of it keep the inode and see the change):
   * written over the old text and cut to the new length, not truncated to 0 first (ext4 then
   * forces the blocks out at close).
   */
  writeHosts(name: string, text: string): void {
    const fd = fs.openSync(this.file(name, 'hosts'), fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644)
    try {
      const b = Buffer.from(text)
      fs.writeSync(fd, b, 0, b.length, 0)
      fs.ftruncateSync(fd, b.length)
    } finally {
      fs.closeSync(fd)
    }
  }

  removeFiles(name: string): void {
    for (const e of ['json', 'ipam.json', 'hosts'] as const) fs.rmSync(this.file(name, e), { force: true })
    fs.rmSync(this.file(name, 'ipam'), { recursive: true, force: true })
  }

  /** An IPAM file of an earlier version (`<name>.ipam.json`) becomes links. Idempotent, safe to race. */
  #migrate(name: string): void {
    const old = this.file(name, 'ipam.json')
    const j = readJson(old)
    if (j === undefined) return
    const r = z.object({ allocations: z.record(z.string(), allocationSchema) }).safeParse(j)
    if (r.success) for (const [ip, a] of Object.entries(r.data.allocations)) this.allocate(name, ip, a)
    fs.rmSync(old, { force: true })
  }

  /**
   * Runs `f` holding the networks lock: a file created with O_EXCL holding the holder's pid
   * and start time (a dead holder's lock is taken over). Waits in 1–3 ms steps while another
   * process holds it.
   */
  async locked<T>(f: () => T | Promise<T>): Promise<T> {
    const lock = path.join(this.dir, '.lock')
    const self = selfIdentity()
    const me = `${self.pid}:${self.start}:${randomBytes(4).toString('hex')}`
    const deadline = Date.now() + 30_000
    for (;;) {
      try {
        const fd = fs.openSync(lock, 'wx')
        try {
          fs.writeSync(fd, me)
        } finally {
          fs.closeSync(fd)
        }
        break
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'ENOENT') {
          fs.mkdirSync(this.dir, { recursive: true, mode: 0o711 })
          continue
        }
        if (code !== 'EEXIST') throw err
      }
      const holder = readText(lock)
      const [pid, start] = holder.split(':').map(Number)
      if (holder && !(pid && isAlive({ pid, start: start ?? 0 }))) {
        // A crashed holder: take its lock over (only if it is still the same lock).
        if (readText(lock) === holder) fs.rmSync(lock, { force: true })
        continue
      }
      if (Date.now() > deadline) throw new RuntimeError('ERR_RUNTIME_STATE', `the network lock ${lock} is held by pid ${pid}`)
      await new Promise((r) => setTimeout(r, 1 + Math.random() * 2))
    }
    try {
      return await f()
    } finally {
      if (readText(lock) === me) fs.rmSync(lock, { force: true })
    }
  }
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function readJson(file: string): unknown {
  const t = readText(file)
  return t ? parseJson(t) : undefined
}

function atomicWrite(file: string, text: string): void {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`
  fs.writeFileSync(tmp, text)
  fs.renameSync(tmp, file)
}
