/**
 * The runtime: an image store, a state directory and a cgroup parent, and the operations that
 * compose them into containers. `run()` and `create()` use a default runtime (`/var/lib/ctr`,
 * `/run/ctr`), opened on first use; open your own for other roots.
 */
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Cgroup, detect, type CgroupHost } from '@ctr/cgroups'
import type { SpawnOptions } from '@ctr/namespaces'
import { ImageStore } from '@ctr/overlay-image'
import { RegistryClient, type RegistryClientOptions } from '@ctr/registry-client'
import type { z } from 'zod'
import { Container, type ContainerContext } from './container/container.js'
import { CONTAINER_MOUNT_TARGETS, writeEtcFiles } from './container/etc-files.js'
import { initBinary } from './container/init-binary.js'
import { cgroupLimits } from './container/limits.js'
import { releaseResources, type ContainerResources } from './container/resources.js'
import { selfIdentity } from './container/process-identity.js'
import { isStale, StateStore, type ContainerState } from './container/state.js'
import { RuntimeError } from './errors.js'
import { ensureImage } from './image/source.js'
import { ImageCache } from './image/prepared-image.js'
import { resolveCommand } from './image-config/command.js'
import { mergeEnv } from './image-config/env.js'
import { createSchema, parseOptions, type CreateOptionsParsed } from './options/schema.js'
import { capabilitySets, resolveCapabilities } from './security/capabilities.js'
import { compileSeccomp } from './security/seccomp/compile.js'
import { defaultSeccompProfile } from './security/seccomp/default-profile.js'
import { joinNetwork, networkExists, pruneNetworks, type NetworkAttachment } from './network/network.js'
import type { NetnsRef } from './network/netlink.js'
import { parsePublish } from './network/proxy.js'
import { dropLoopbackSpareAsync } from './network/loopback-netns.js'
import type { SeccompProfile } from './security/seccomp/profile.js'

/** Where a runtime keeps things. Every root is configurable; the defaults are Docker-like. */
export interface RuntimeOptions {
  /** The image store (blobs, layers, snapshots, volumes). Default `/var/lib/ctr`, or `$CTR_ROOT`. */
  root?: string
  /** Volatile container state. Default `/run/ctr`, or `$CTR_STATE_ROOT`. */
  stateRoot?: string
  /** The cgroup (below this process's own) that holds the containers' cgroups. Default `ctr`. */
  cgroupParent?: string
  /** Registry settings for pulls (insecure hosts, auth, CA, mirrors), or a client. */
  registry?: RegistryClientOptions | RegistryClient
  /** fsync content and metadata (default true). */
  fsync?: boolean
  /** The network namespace bridges, veths, NAT and published ports live in (a pid or a netns path); default ours. */
  hostNetns?: number | string
}

/** Options of {@link Runtime.create} and `create()`: see the README for each field. */
export type CreateOptions = z.input<typeof createSchema> & { onPullProgress?: (p: unknown) => void; signal?: AbortSignal }

/**
 * A container runtime over one image store and state directory.
 *
 * @example
 * ```ts
 * import { Runtime } from '@ctr/runtime'
 * const rt = await Runtime.open({ root: '/tmp/ctr', stateRoot: '/tmp/ctr-run' })
 * const c = await rt.create({ image: 'oci:/images/busybox', cmd: ['echo', 'hi'] })
 * await c.start()
 * await c.wait()
 * await c.delete()
 * ```
 */
export class Runtime {
  readonly store: ImageStore
  readonly states: StateStore
  readonly cgroupParent: string
  /** The cgroup setup of this host, detected once. */
  readonly cgroupHost: CgroupHost
  /** Where bridge networks live (undefined: this process's netns). */
  readonly hostNetns: NetnsRef | undefined
  #images: ImageCache
  #registry: RegistryClientOptions | RegistryClient | undefined
  #client: RegistryClient | undefined
  #containers = new Map<string, Container>()
  /** Removals run() left to finish in the background, and those that failed. */
  #pending = new Set<Promise<void>>()
  #failures: unknown[] = []
  /** Containers of ours holding a cgroup below the parent, which is kept while there are any. */
  #live = 0
  #parentTimer: NodeJS.Timeout | undefined

  private constructor(store: ImageStore, states: StateStore, host: CgroupHost, o: RuntimeOptions) {
    this.store = store
    this.states = states
    this.cgroupHost = host
    this.#images = new ImageCache(store)
    this.cgroupParent = o.cgroupParent ?? 'ctr'
    this.#registry = o.registry
    this.hostNetns = o.hostNetns
  }

  /** Opens (creating if needed) the store and state directory and cleans up after crashed runs. */
  static async open(o: RuntimeOptions = {}): Promise<Runtime> {
    const root = path.resolve(o.root ?? process.env['CTR_ROOT'] ?? '/var/lib/ctr')
    const stateRoot = path.resolve(o.stateRoot ?? process.env['CTR_STATE_ROOT'] ?? '/run/ctr')
    const store = await ImageStore.open(root, o.fsync === undefined ? {} : { fsync: o.fsync })
    const rt = new Runtime(store, new StateStore(stateRoot), await detect(), o)
    await rt.cleanupStale()
    return rt
  }

  /** The registry client, made on first use. */
  client(): RegistryClient {
    if (!this.#client) this.#client = this.#registry instanceof RegistryClient ? this.#registry : new RegistryClient(this.#registry ?? {})
    return this.#client
  }

  /**
   * Removes what crashed processes left: containers whose owner and init are both gone
   * while their state says created or running. Returns their ids.
   */
  async cleanupStale(): Promise<string[]> {
    const removed: string[] = []
    for (const s of await this.states.list()) {
      if (!isStale(s)) continue
      await this.#release(s).catch(() => {})
      removed.push(s.id)
    }
    // A directory without a readable state: a crash between its mkdir and its first write.
    // Only old ones: a young one may be a create in progress in another process.
    for (const id of await this.states.orphans(10_000)) {
      await releaseResources({
        id, store: this.store, states: this.states, cgroupHost: this.cgroupHost,
        cgroupName: id, cgroupParent: this.cgroupParent, snapshot: id, stateDir: true,
      }).catch(() => {})
      removed.push(id)
    }
    // Network addresses of containers whose state is gone; implicit networks left empty.
    await pruneNetworks(this.states.root).catch(() => {})
    return removed
  }

  #release(s: ContainerState): Promise<void> {
    return releaseResources({
      id: s.id, store: this.store, states: this.states, cgroupHost: this.cgroupHost,
      cgroupName: s.cgroup.name, cgroupParent: s.cgroup.parent, snapshot: s.snapshot, stateDir: true,
      ...(s.cgroup.paths ? { cgroupPaths: s.cgroup.paths } : {}),
      ...(isBridged(s.config.network) ? { network: { stateRoot: this.states.root, name: s.config.network } } : {}),
    })
  }

  /**
   * Waits until the containers `run()` removes in the background are gone (cgroup, snapshot,
   * state). Rejects with `ERR_RUNTIME_CLEANUP` if one of those removals failed since the last
   * call (the container is then left for {@link cleanupStale} of the next open).
   */
  async idle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending)
    const failed = this.#failures.splice(0)
    if (failed.length > 0) {
      throw new RuntimeError('ERR_RUNTIME_CLEANUP', `${failed.length} container removal(s) failed: ${(failed[0] as Error).message}`, { cause: failed[0] })
    }
  }

  /**
   * Finishes this runtime's work: waits for background removals ({@link idle}), removes the
   * cgroup parent if no container is left below it, and closes the registry client. Containers
   * still running are not touched. The last open runtime also closes the spare network
   * namespace kept for the next start on network `none`.
   */
  async close(): Promise<void> {
    try {
      await this.idle()
    } finally {
      clearTimeout(this.#parentTimer)
      if (this.#live === 0) await this.#removeCgroupParent()
      openRuntimes.delete(this)
      if (openRuntimes.size === 0) await dropLoopbackSpareAsync()
      await this.#client?.close().catch(() => {})
    }
  }

  /**
   * @internal run()'s removal: the name is free at once, the rest (cgroup, snapshot, state,
   * network address) goes in the background, tracked by {@link idle}.
   */
  async removeInBackground(c: Container): Promise<void> {
    await this.states.releaseName(c.id, c.name).catch(() => {})
    // From the next turn of the event loop, not this one: run() returns first, and a caller
    // that starts its next container at once gets that container's first steps in ahead of
    // this removal's (the removal then fills the time that start spends waiting on the kernel).
    const p: Promise<void> = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => c.delete({ force: true }))
      .catch((err: unknown) => void this.#failures.push(err))
      .finally(() => {
        this.#pending.delete(p)
        this.forget(c.id)
      })
    this.#pending.add(p)
  }

  #cgroupMade(): void {
    this.#live++
    clearTimeout(this.#parentTimer)
    openRuntimes.add(this)
    watchExit()
  }

  /**
   * A container's cgroup is gone. The parent stays while more may come: making it again costs
   * a mkdir in every hierarchy (and a cpuset copy) per container. It goes a second after the
   * last one, at close(), or at exit.
   */
  #cgroupGone(): void {
    if (--this.#live > 0) return
    clearTimeout(this.#parentTimer)
    this.#parentTimer = setTimeout(() => void this.#removeCgroupParent(), 1000).unref()
  }

  async #removeCgroupParent(): Promise<void> {
    if (this.#live > 0) return
    await Cgroup.removeParent({ parent: this.cgroupParent, host: this.cgroupHost }).catch(() => {})
  }

  /** @internal at process exit: the cgroup parent goes if empty (synchronously). */
  removeCgroupParentSync(): void {
    if (this.#live > 0) return
    try {
      Cgroup.removeParentSync({ parent: this.cgroupParent, host: this.cgroupHost })
    } catch {
      // nothing to report at exit
    }
  }

  /** Containers with a state in this runtime's state directory (any process's). */
  list(): Promise<ContainerState[]> {
    return this.states.list()
  }

  /** A container this process created, by id, id prefix or name. */
  async get(idOrName: string): Promise<Container> {
    const s = await this.states.resolve(idOrName)
    const c = this.#containers.get(s.id)
    if (!c) throw new RuntimeError('ERR_RUNTIME_NOT_FOUND', `container ${idOrName} is managed by another process (pid ${s.owner.pid})`)
    return c
  }

  /**
   * Creates a container: image pulled or imported as needed, layers unpacked, a snapshot
   * mounted, limits in a new cgroup, state written. Nothing runs until `start()`. Invalid
   * options are rejected before anything is created; a failure later releases everything.
   */
  async create(options: CreateOptions): Promise<Container> {
    const { onPullProgress, signal, ...rest } = options
    const o = parseOptions(createSchema, rest)
    return this.createParsed(o, { ...(onPullProgress ? { onPullProgress } : {}), ...(signal ? { signal } : {}) })
  }

  /** @internal create() after validation (run() validates its own superset). */
  async createParsed(o: CreateOptionsParsed, extra: { onPullProgress?: (p: unknown) => void; signal?: AbortSignal; autoRemove?: boolean }): Promise<Container> {
    // Everything that can be checked without touching the system, first.
    const caps = resolveCapabilities({
      ...(o.capAdd ? { capAdd: o.capAdd } : {}), ...(o.capDrop ? { capDrop: o.capDrop } : {}), ...(o.privileged ? { privileged: true } : {}),
    })
    const seccomp = o.privileged || o.seccomp === 'unconfined'
      ? undefined
      : typeof o.seccomp === 'object'
        ? compileSeccomp(o.seccomp as unknown as SeccompProfile, { caps, field: 'seccomp' })
        : defaultFilter(caps)
    const limits = cgroupLimits(o)
    const network = o.network ?? 'none'
    const id = randomBytes(32).toString('hex')
    const name = o.name ?? id.slice(0, 12)
    const bridged = isBridged(network)
    // On a network, the host name is the container's name (as its hosts entry).
    const hostname = o.hostname ?? (network === 'host' ? os.hostname() : bridged ? name : id.slice(0, 12))
    const publish = (o.publish ?? []).map((p) => (typeof p === 'string' ? parsePublish(p) : { ...p, protocol: p.protocol ?? ('tcp' as const) }))
    if (publish.length && !bridged) throw new RuntimeError('ERR_RUNTIME_INVALID_OPTIONS', `publish: needs a bridge network, not network "${network}"`, { field: 'publish' })
    if (bridged && !(await networkExists(this.states.root, network))) {
      throw new RuntimeError('ERR_RUNTIME_INVALID_OPTIONS', `network: no such network: ${network} ('none', 'host', 'bridge' or a created network)`, { field: 'network' })
    }
    const init = o.init ? initBinary() : undefined

    const ref = await ensureImage(this.store, o.image, {
      pull: o.pull ?? 'missing',
      ...(o.platform ? { platform: o.platform } : {}),
      client: () => this.client(),
      ...(extra.signal ? { signal: extra.signal } : {}),
      ...(extra.onPullProgress ? { onProgress: extra.onPullProgress } : {}),
    })
    const prepared = await this.#images.get(ref, { ...(o.platform ? { platform: o.platform } : {}), ...(extra.signal ? { signal: extra.signal } : {}) })
    const image = prepared.image
    const cfg = image.config.config ?? {}
    // Nothing to run is an error before anything is created.
    const argv = resolveCommand(cfg, {
      ...(o.entrypoint !== undefined ? { entrypoint: typeof o.entrypoint === 'string' ? [o.entrypoint] : o.entrypoint } : {}),
      ...(o.cmd ? { cmd: o.cmd } : {}),
    })
    // The user (through the image's /etc/passwd; unknown is an error before anything is made)
    // and everything else the state records are known before the state is written, so it is
    // written once, complete, before any resource exists.
    const user = await this.#images.user(prepared, o.user ?? (cfg.User || undefined))
    const env = mergeEnv({ image: cfg.Env ?? [], ...(o.env ? { user: o.env } : {}), hostname, home: user.home, tty: o.tty ?? false })
    const cwd = o.workdir ?? (cfg.WorkingDir || '/')
    const groups = user.additionalGids
    const fullArgv = init ? ['/dev/init', '--', ...argv] : argv
    const cgroupPaths = Cgroup.pathsOf(id, { parent: this.cgroupParent, host: this.cgroupHost })
    const res: ContainerResources = {
      id, name, store: this.store, states: this.states, cgroupHost: this.cgroupHost, cgroupName: id, cgroupParent: this.cgroupParent,
      keepCgroupParent: true,
    }
    const state: ContainerState = {
      version: 1, id, name, status: 'created', owner: selfIdentity(),
      image: o.image, imageDigest: image.manifestDesc.digest, imageId: image.configDesc.digest,
      storeRoot: this.store.root, snapshot: id, rootfs: path.join(this.store.paths.snapshot(id), 'merged'),
      cgroup: { name: id, parent: this.cgroupParent, paths: [...(cgroupPaths.unified ? [cgroupPaths.unified] : []), ...Object.values(cgroupPaths.legacy)] },
      config: {
        argv: fullArgv, env: Object.entries(env).map(([k, v]) => `${k}=${v}`), cwd, user: { uid: user.uid, gid: user.gid, groups },
        hostname, tty: o.tty ?? false, network, labels: o.labels ?? {},
        ...(extra.autoRemove ? { autoRemove: true } : {}),
        ...(o.interactive ? { interactive: true } : {}),
        security: {
          capabilities: caps,
          noNewPrivileges: !o.privileged,
          seccomp: o.privileged ? 'unconfined' : (o.seccomp ?? 'default'),
          ...(o.ulimits ? { ulimits: o.ulimits } : {}),
        },
      },
      created: new Date().toISOString(),
    }
    let attachment: NetworkAttachment | undefined
    try {
      // The state goes first: whatever follows can be found and released after a crash.
      await this.states.create(state)
      res.stateDir = true
      res.snapshot = id
      // Not mounted here: the spawn mounts it inside the container's own mount namespace, so
      // it disappears with the container and nothing is ever left mounted on the host.
      // volatile: the root is thrown away with the container, so its unmount need not flush
      // the host file system (a syncfs costs tens of ms).
      // Independent steps, in parallel (allSettled: a failure must not leave one of them
      // finishing after the cleanup below has run).
      const steps = await Promise.allSettled([
        this.store.snapshots.prepare({
          id, image: ref, manifestDigest: image.manifestDesc.digest, chainIds: prepared.chainIds, mount: false, volatile: true,
          mountTargets: [...CONTAINER_MOUNT_TARGETS],
        }),
        bridged
          ? joinNetwork({
            stateRoot: this.states.root, ...(this.hostNetns !== undefined ? { hostNetns: this.hostNetns } : {}), id, name, hostname, network,
            stateDir: this.states.dir(id), ...(o.dns ? { dns: o.dns } : {}), publish,
          }).then((a) => {
            res.network = { stateRoot: this.states.root, name: network }
            attachment = a
            return a.etcFiles
          })
          : this.states.io().then((io) => writeEtcFiles(this.states.dir(id), hostname, network as 'none' | 'host', io)),
        this.volumesOf(o),
        Cgroup.create(id, limits, { parent: this.cgroupParent, host: this.cgroupHost }).then((cg) => {
          res.cgroup = cg
          this.#cgroupMade()
          res.onReleased = () => this.#cgroupGone()
          return cg
        }),
      ] as const)
      for (const r of steps) if (r.status === 'rejected') throw r.reason
      const [snap, etc, volumeMounts, cgroup] = steps.map((r) => (r as PromiseFulfilledResult<unknown>).value) as [
        Awaited<ReturnType<ImageStore['snapshots']['prepare']>>,
        Awaited<ReturnType<typeof writeEtcFiles>>,
        Awaited<ReturnType<Runtime['volumesOf']>>,
        Cgroup,
      ]
      const spawnOptions: ContainerContext['spawnOptions'] = {
        argv: fullArgv,
        env,
        cwd,
        user: { uid: user.uid, gid: user.gid, groups },
        // On a bridge network the container joins a netns prepared at start (see NetworkAttachment).
        namespaces: network === 'none' ? ['pid', 'mnt', 'uts', 'ipc', 'net'] : ['pid', 'mnt', 'uts', 'ipc'],
        hostname,
        rootfs: {
          path: snap.mount.target,
          filesystem: { type: snap.mount.fstype, source: snap.mount.source, data: snap.mount.data, flags: snap.mount.flags, cwd: snap.mount.cwd },
          ...(o.readonly ? { readonly: true } : {}),
          mounts: [
            ...etc.map((f) => ({ type: 'bind' as const, source: f.source, target: f.target })),
            ...(init ? [{ type: 'bind' as const, source: init, target: '/dev/init', readonly: true }] : []),
            ...volumeMounts,
          ],
          ...(o.privileged ? { maskedPaths: [], readonlyPaths: [] } : {}),
        },
        capabilities: capabilitySets(caps),
        noNewPrivileges: !o.privileged,
        ...(seccomp ? { seccomp: { filter: seccomp.program, flags: seccomp.flags } } : {}),
        ...(o.ulimits ? { rlimits: o.ulimits as SpawnOptions['rlimits'] } : {}),
        cgroup: cgroup.placement,
      }
      // What the state said before these existed must be what they are; written again if not.
      const made = [...(cgroup.paths.unified ? [cgroup.paths.unified] : []), ...Object.values(cgroup.paths.legacy)]
      if (snap.rootfs !== state.rootfs || made.join('\n') !== state.cgroup.paths!.join('\n')) {
        state.rootfs = snap.rootfs
        state.cgroup.paths = made
        await this.states.write(state)
      }
      const container = new Container({
        state, resources: res, cgroup, spawnOptions, stateDir: this.states.dir(id), ...(attachment ? { network: attachment } : {}),
        save: (s) => this.states.write(s),
        resolveUser: async (u) => {
          const r = await this.#images.user(prepared, u)
          return { uid: r.uid, gid: r.gid, groups: r.additionalGids }
        },
      })
      this.#containers.set(id, container)
      return container
    } catch (err) {
      await releaseResources(res).catch(() => {})
      throw err
    }
  }

  /** Named volumes live in `<root>/volumes/<name>/_data`, as Docker keeps them. */
  private async volumesOf(o: CreateOptionsParsed): Promise<NonNullable<NonNullable<SpawnOptions['rootfs']>['mounts']>> {
    const out: NonNullable<NonNullable<SpawnOptions['rootfs']>['mounts']> = []
    for (const m of o.mounts ?? []) {
      if (m.type === 'volume') {
        const data = path.join(this.store.root, 'volumes', m.name, '_data')
        await fs.mkdir(data, { recursive: true })
        out.push({ type: 'bind', source: data, target: m.target, ...(m.readonly ? { readonly: true } : {}) })
      } else if (m.type === 'bind') {
        out.push({ type: 'bind', source: m.source, target: m.target, ...(m.readonly ? { readonly: true } : {}) })
      } else {
        out.push({ type: 'tmpfs', target: m.target, ...(m.size !== undefined ? { size: m.size } : {}), ...(m.mode !== undefined ? { mode: m.mode } : {}) })
      }
    }
    return out
  }

  /** @internal forget a deleted container. */
  forget(id: string): void {
    this.#containers.delete(id)
  }
}

/** Whether a network option names a bridge network (not a mode). */
function isBridged(network: string): boolean {
  return network !== 'none' && network !== 'host'
}

/** Compiled default filters by capability set: compiling takes ~10 ms, the result never changes. */
const defaultFilters = new Map<string, ReturnType<typeof compileSeccomp>>()

function defaultFilter(caps: readonly string[]): ReturnType<typeof compileSeccomp> {
  const key = [...caps].sort().join(',')
  let f = defaultFilters.get(key)
  if (!f) {
    f = compileSeccomp(defaultSeccompProfile(), { caps, field: 'seccomp' })
    defaultFilters.set(key, f)
  }
  return f
}

/** Runtimes that made cgroups: their empty parents are removed when the process exits. */
const openRuntimes = new Set<Runtime>()
let exitHook = false
function watchExit(): void {
  if (exitHook) return
  exitHook = true
  process.once('exit', () => {
    for (const rt of openRuntimes) rt.removeCgroupParentSync()
  })
}

let defaultRuntime: Promise<Runtime> | undefined

/** The runtime `run()` and `create()` use: `Runtime.open()` with the defaults (or `$CTR_ROOT`, `$CTR_STATE_ROOT`). */
export function getDefaultRuntime(): Promise<Runtime> {
  defaultRuntime ??= Runtime.open().catch((err: unknown) => {
    defaultRuntime = undefined
    throw err
  })
  return defaultRuntime
}

/**
 * Creates a container on the default runtime.
 *
 * @example
 * ```ts
 * const c = await create({ image: 'busybox:latest', cmd: ['sleep', '30'], pids: 64 })
 * await c.start()
 * ```
 */
export async function create(options: CreateOptions): Promise<Container> {
  return (await getDefaultRuntime()).create(options)
}
