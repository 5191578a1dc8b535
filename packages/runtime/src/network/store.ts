/**
 * Networks on disk, beside the container states: `<stateRoot>/networks/<name>.json` (the
 * network), `<name>.ipam.json` (who holds which address) and `<name>.hosts` (the /etc/hosts
 * every container on it bind-mounts). One lock file serialises every change, across
 * processes; JSON files are replaced atomically, the hosts file is rewritten in place (bind
 * mounts keep the inode).
 */
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { isAlive, processStart } from '../container/process-identity.js'
import { RuntimeError } from '../errors.js'

export const networkNameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'a network name: letters, digits, _ . - (up to 64)')

export const networkSchema = z.strictObject({
  version: z.literal(1),
  name: z.string(),
  subnet: z.string(),
  gateway: z.string(),
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

  file(name: string, ext: 'json' | 'ipam.json' | 'hosts'): string {
    return path.join(this.dir, `${name}.${ext}`)
  }

  async read(name: string): Promise<NetworkRecord | undefined> {
    const j = await readJson(this.file(name, 'json'))
    const r = networkSchema.safeParse(j)
    return r.success ? r.data : undefined
  }

  async list(): Promise<NetworkRecord[]> {
    const names = await fs.readdir(this.dir).catch(() => [] as string[])
    const recs = await Promise.all(names.filter((n) => n.endsWith('.json') && !n.endsWith('.ipam.json')).map((n) => this.read(n.slice(0, -5))))
    return recs.filter((r): r is NetworkRecord => r !== undefined)
  }

  async write(rec: NetworkRecord): Promise<void> {
    await atomicWrite(this.file(rec.name, 'json'), JSON.stringify(rec, null, 2))
  }

  async readIpam(name: string): Promise<Ipam> {
    const r = ipamSchema.safeParse(await readJson(this.file(name, 'ipam.json')))
    return r.success ? r.data : { version: 1, allocations: {} }
  }

  async writeIpam(name: string, ipam: Ipam): Promise<void> {
    await atomicWrite(this.file(name, 'ipam.json'), JSON.stringify(ipam, null, 2))
  }

  /** Rewrites the hosts file in place (truncate + write): bind mounts of it see the change. */
  async writeHosts(name: string, text: string): Promise<void> {
    await fs.writeFile(this.file(name, 'hosts'), text, { mode: 0o644 })
  }

  async removeFiles(name: string): Promise<void> {
    await Promise.all((['json', 'ipam.json', 'hosts'] as const).map((e) => fs.rm(this.file(name, e), { force: true })))
  }

  /** Runs `f` holding the networks lock (a file with the holder's pid; a dead holder's lock is taken over). */
  async locked<T>(f: () => Promise<T>): Promise<T> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o711 })
    const lock = path.join(this.dir, '.lock')
    const me = `${process.pid}:${processStart(process.pid) ?? 0}:${randomBytes(4).toString('hex')}`
    const deadline = Date.now() + 30_000
    for (;;) {
      try {
        await fs.writeFile(lock, me, { flag: 'wx' })
        break
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const holder = await fs.readFile(lock, 'utf8').catch(() => '')
      const [pid, start] = holder.split(':').map(Number)
      if (holder && !(pid && isAlive({ pid, start: start ?? 0 }))) {
        // A crashed holder: take its lock over (only if it is still the same lock).
        if ((await fs.readFile(lock, 'utf8').catch(() => '')) === holder) await fs.rm(lock, { force: true })
        continue
      }
      if (Date.now() > deadline) throw new RuntimeError('ERR_RUNTIME_STATE', `the network lock ${lock} is held by pid ${pid}`)
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 10))
    }
    try {
      return await f()
    } finally {
      if ((await fs.readFile(lock, 'utf8').catch(() => '')) === me) await fs.rm(lock, { force: true })
    }
  }
}

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8'))
  } catch {
    return undefined
  }
}

async function atomicWrite(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`
  await fs.writeFile(tmp, text)
  await fs.rename(tmp, file)
}
