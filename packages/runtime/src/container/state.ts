/**
 * Container state on disk, `<stateRoot>/<id>/state.json` (default `/run/ctr`, a tmpfs gone at
 * reboot), so another process — `ctr ps`, `ctr inspect`, a later `run()` — can list and
 * inspect containers. Written atomically (temporary file, rename); the directory also holds
 * the container's generated /etc files and its log.
 */
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { RuntimeError } from '../errors.js'
import { isAlive } from './process-identity.js'
import { stateIoFor, type StateIo } from './state-io.js'

const identity = z.strictObject({ pid: z.number().int().positive(), start: z.number().int().min(0) })

export const stateSchema = z.strictObject({
  version: z.literal(1),
  id: z.string().regex(/^[0-9a-f]{64}$/),
  name: z.string(),
  status: z.enum(['created', 'running', 'paused', 'exited']),
  /** The process that manages the container (the creating Node process, or a monitor). */
  owner: identity,
  /** The container's init process, once started. */
  process: identity.optional(),
  image: z.string(),
  imageDigest: z.string(),
  imageId: z.string(),
  storeRoot: z.string(),
  snapshot: z.string(),
  rootfs: z.string(),
  cgroup: z.strictObject({
    name: z.string(),
    parent: z.string(),
    /** Absolute directories, per hierarchy: the cgroup found again from any other cgroup. */
    paths: z.array(z.string()).optional(),
  }),
  config: z.strictObject({
    argv: z.array(z.string()),
    env: z.array(z.string()),
    cwd: z.string(),
    user: z.strictObject({ uid: z.number(), gid: z.number(), groups: z.array(z.number()) }),
    hostname: z.string(),
    tty: z.boolean(),
    /** 'none', 'host', or the name of the network it is on. */
    network: z.string(),
    labels: z.record(z.string(), z.string()),
    /** stdin kept open (`create({ interactive: true })`). */
    interactive: z.boolean().optional(),
    /** Removed once it exits (`run()` with `remove`, `ctr run --rm`): an exited one whose owner is gone is released too. */
    autoRemove: z.boolean().optional(),
    /** What exec from another process needs to give its processes the same restrictions. */
    security: z
      .strictObject({
        capabilities: z.array(z.string()),
        noNewPrivileges: z.boolean(),
        seccomp: z.union([z.literal('default'), z.literal('unconfined'), z.record(z.string(), z.unknown())]),
        ulimits: z.record(z.string(), z.strictObject({ soft: z.number(), hard: z.number() })).optional(),
      })
      .optional(),
  }),
  created: z.string(),
  started: z.string().optional(),
  finished: z.string().optional(),
  exitCode: z.number().int().nullable().optional(),
  signal: z.string().nullable().optional(),
  oomKilled: z.boolean().optional(),
  logPath: z.string().optional(),
})

/** What a container's state.json holds. */
export type ContainerState = z.infer<typeof stateSchema>

/**
 * The state directory: one subdirectory per container. A container's own files (state.json,
 * name link, directory) are written synchronously when the directory is on tmpfs (see
 * state-io.ts), through the thread pool otherwise.
 */
export class StateStore {
  #namesDirMade = false
  #io: Promise<StateIo> | undefined

  constructor(readonly root: string) {}

  /** How this directory's small files are best written, found once. */
  io(): Promise<StateIo> {
    return (this.#io ??= stateIoFor(this.root))
  }

  dir(id: string): string {
    return path.join(this.root, id)
  }

  /** `<root>/.names/<name>` → the id: names are reserved atomically, looked up in O(1). */
  #nameLink(name: string): string {
    return path.join(this.root, '.names', name)
  }

  /**
   * Creates the container's directory and reserves its name; a taken name is
   * `ERR_RUNTIME_CONFLICT` (a name left by a container whose state is gone is taken over).
   */
  async create(state: ContainerState): Promise<void> {
    if (!this.#namesDirMade) {
      await fs.mkdir(path.join(this.root, '.names'), { recursive: true, mode: 0o711 })
      this.#namesDirMade = true
    }
    const io = await this.io()
    const link = this.#nameLink(state.name)
    for (let attempt = 0; ; attempt++) {
      try {
        await io.symlink(state.id, link)
        break
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'ENOENT' && attempt === 0) {
          // The state directory went away under us (removed by hand): make it again.
          await fs.mkdir(path.join(this.root, '.names'), { recursive: true, mode: 0o711 })
          continue
        }
        if (code !== 'EEXIST') {
          throw new RuntimeError('ERR_RUNTIME_STATE', `reserve the container name "${state.name}" in ${link}: ${code ?? String(err)}`, { cause: err })
        }
        if (attempt > 1) {
          throw new RuntimeError('ERR_RUNTIME_CONFLICT', `the container name "${state.name}" is already in use`, { field: 'name', cause: err })
        }
        const owner = await fs.readlink(link).catch(() => '')
        const alive = owner !== '' && (await fs.stat(this.dir(owner)).then(() => true, () => false))
        if (alive) throw new RuntimeError('ERR_RUNTIME_CONFLICT', `the container name "${state.name}" is already in use by ${owner.slice(0, 12)}`, { field: 'name' })
        await fs.rm(link, { force: true })
      }
    }
    try {
      await io.mkdir(this.dir(state.id), 0o711)
      // The first write goes straight to state.json (no temporary and rename: one journaled
      // metadata change less). A reader meanwhile, or a crash, finds it unreadable, which
      // read() and orphans() already treat as a directory without a state.
      await io.writeFile(path.join(this.dir(state.id), 'state.json'), JSON.stringify(state, null, 2))
    } catch (err) {
      await io.rm(link)
      throw err
    }
  }

  /** Replaces state.json atomically (no fsync: /run is volatile by design). */
  async write(state: ContainerState): Promise<void> {
    const file = path.join(this.dir(state.id), 'state.json')
    const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`
    const io = await this.io()
    await io.writeFile(tmp, JSON.stringify(state, null, 2))
    await io.rename(tmp, file)
  }

  /** The state of one container, or undefined when there is none (or it is unreadable). */
  async read(id: string): Promise<ContainerState | undefined> {
    let text: string
    try {
      text = await fs.readFile(path.join(this.dir(id), 'state.json'), 'utf8')
    } catch {
      return undefined
    }
    const r = stateSchema.safeParse(safeJson(text))
    return r.success ? r.data : undefined
  }

  /** Every container with a readable state. */
  async list(): Promise<ContainerState[]> {
    let names: string[]
    try {
      names = await fs.readdir(this.root)
    } catch {
      return []
    }
    const states = await Promise.all(names.filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => this.read(n)))
    return states.filter((s): s is ContainerState => s !== undefined)
  }

  /** Ids of directories without a readable state (a crash between mkdir and write), older than `minAgeMs`. */
  async orphans(minAgeMs = 0): Promise<string[]> {
    let names: string[]
    try {
      names = await fs.readdir(this.root)
    } catch {
      return []
    }
    const out: string[] = []
    for (const n of names.filter((x) => /^[0-9a-f]{64}$/.test(x))) {
      if (await this.read(n)) continue
      const age = await fs.stat(this.dir(n)).then((st) => Date.now() - st.mtimeMs, () => -1)
      if (age >= minAgeMs) out.push(n)
    }
    return out
  }

  async findByName(name: string): Promise<ContainerState | undefined> {
    const id = await fs.readlink(this.#nameLink(name)).catch(() => undefined)
    const s = id ? await this.read(id) : undefined
    return s?.name === name ? s : undefined
  }

  /**
   * A container by id, unique id prefix or name, as docker resolves them.
   * @throws RuntimeError ERR_RUNTIME_NOT_FOUND, or ERR_RUNTIME_INVALID_OPTIONS for an ambiguous prefix
   */
  async resolve(idOrName: string): Promise<ContainerState> {
    const exact = (/^[0-9a-f]{64}$/.test(idOrName) ? await this.read(idOrName) : undefined) ?? (await this.findByName(idOrName))
    if (exact) return exact
    const all = await this.list()
    const prefixed = /^[0-9a-f]{3,63}$/.test(idOrName) ? all.filter((s) => s.id.startsWith(idOrName)) : []
    if (prefixed.length === 1) return prefixed[0]!
    if (prefixed.length > 1) throw new RuntimeError('ERR_RUNTIME_INVALID_OPTIONS', `"${idOrName}" matches ${prefixed.length} containers`, { field: 'id' })
    throw new RuntimeError('ERR_RUNTIME_NOT_FOUND', `no such container: ${idOrName}`)
  }

  /** Frees a container's name now (its directory may stay a little longer). */
  async releaseName(id: string, name: string): Promise<void> {
    const link = this.#nameLink(name)
    const io = await this.io()
    if ((await io.readlink(link)) === id) await io.rm(link)
  }

  /**
   * Removes the container's directory and frees its name: `name` when the caller knows it,
   * else the one its state records (read first, for a container found after a crash).
   */
  async remove(id: string, name?: string): Promise<void> {
    const n = name ?? (await this.read(id))?.name
    await (await this.io()).rm(this.dir(id), true)
    if (n !== undefined) await this.releaseName(id, n)
  }
}

/**
 * A container whose owner (the process that created it, or its monitor) is gone while it
 * claims to be created, running or paused: a crash. Its init normally died with the owner
 * (PDEATHSIG); if it has not yet, releasing the cgroup kills it.
 */
export function isStale(s: ContainerState): boolean {
  return !isAlive(s.owner) && (s.status !== 'exited' || s.config.autoRemove === true)
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
