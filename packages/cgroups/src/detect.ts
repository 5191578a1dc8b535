/**
 * What this host's cgroups look like: pure v2 (unified), v1 (legacy) or the hybrid of both,
 * which hierarchies are mounted where, and which cgroup we are in in each — the parent every
 * cgroup we create goes under.
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { CgroupError } from './errors.js'
import { readOptional } from './files.js'

export type CgroupMode = 'unified' | 'legacy' | 'hybrid'

/** A controller ctr drives. `freezer` is the v1 controller or v2's built-in freeze. */
export type Controller = 'memory' | 'cpu' | 'cpuset' | 'pids' | 'io' | 'freezer'

/** One mounted v1 hierarchy. */
export interface LegacyHierarchy {
  /** Controllers mounted together in it, e.g. `['cpu', 'cpuacct']`. */
  controllers: string[]
  mount: string
  /** Our own cgroup in it, e.g. `/process_api/8c03…`. */
  own: string
}

/** The cgroup2 hierarchy. */
export interface UnifiedHierarchy {
  mount: string
  own: string
  /** Controllers our own cgroup can hand to children (its `cgroup.controllers`). */
  controllers: string[]
}

/** The host's cgroup layout, as {@link detect} finds it. */
export interface CgroupHost {
  mode: CgroupMode
  unified?: UnifiedHierarchy
  /** v1 hierarchies with at least one controller (named ones like name=systemd excluded). */
  legacy: LegacyHierarchy[]
  /** Controllers ctr can use on this host. */
  controllers: Controller[]
}

const CGROUP2_SUPER_MAGIC = 0x63677270

/** v1 controller names to the controller ctr calls them. */
const V1_CONTROLLERS: Record<string, Controller> = {
  memory: 'memory',
  cpu: 'cpu',
  cpuset: 'cpuset',
  pids: 'pids',
  blkio: 'io',
  freezer: 'freezer',
}

interface MountEntry {
  root: string
  mountPoint: string
  fstype: string
  superOptions: string[]
}

async function cgroupMounts(): Promise<MountEntry[]> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8')
  const out: MountEntry[] = []
  for (const line of text.split('\n')) {
    const f = line.split(' ')
    const sep = f.indexOf('-')
    if (sep < 0) continue
    const fstype = f[sep + 1]
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue
    const unescape = (s: string) => s.replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)))
    out.push({ root: unescape(f[3]!), mountPoint: unescape(f[4]!), fstype, superOptions: (f[sep + 3] ?? '').split(',') })
  }
  return out
}

/** Our cgroup per hierarchy from /proc/self/cgroup: controllers (or '' for v2) → path. */
async function ownCgroups(): Promise<{ controllers: string[]; path: string }[]> {
  const text = await fs.readFile('/proc/self/cgroup', 'utf8')
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const first = line.indexOf(':')
      const second = line.indexOf(':', first + 1)
      const controllers = line.slice(first + 1, second)
      return { controllers: controllers === '' ? [] : controllers.split(','), path: line.slice(second + 1) }
    })
}

/** Where our cgroup `own` is under a mount whose root is `root` (they differ inside a cgroup namespace). */
function dirUnder(mount: MountEntry, own: string): string {
  const rel = mount.root === '/' ? own : path.posix.relative(mount.root, own)
  return rel.startsWith('..') ? own : path.posix.join('/', rel)
}

/**
 * Detects the host's cgroup layout.
 *
 * @example
 * ```ts
 * const host = await detect() // { mode: 'hybrid', controllers: ['memory', 'cpu', …], … }
 * ```
 */
export async function detect(): Promise<CgroupHost> {
  let rootType: number
  try {
    rootType = Number((await fs.statfs('/sys/fs/cgroup')).type)
  } catch (err) {
    throw new CgroupError('ERR_CGROUP_NOT_FOUND', 'cannot read /sys/fs/cgroup: is cgroupfs mounted?', { path: '/sys/fs/cgroup', cause: err })
  }
  const mounts = await cgroupMounts()
  const own = await ownCgroups()

  let unified: UnifiedHierarchy | undefined
  const v2mount =
    rootType === CGROUP2_SUPER_MAGIC
      ? mounts.find((m) => m.fstype === 'cgroup2' && m.mountPoint === '/sys/fs/cgroup')
      : mounts.find((m) => m.fstype === 'cgroup2')
  const v2own = own.find((o) => o.controllers.length === 0)
  if (v2mount && v2own) {
    const ownPath = dirUnder(v2mount, v2own.path)
    const controllersText = await readOptional(path.join(v2mount.mountPoint, ownPath, 'cgroup.controllers'))
    unified = { mount: v2mount.mountPoint, own: ownPath, controllers: controllersText ? controllersText.split(/\s+/).filter(Boolean) : [] }
  }

  const legacy: LegacyHierarchy[] = []
  const seen = new Set<string>()
  for (const m of mounts) {
    if (m.fstype !== 'cgroup') continue
    const controllers = m.superOptions.filter((o) => o in V1_CONTROLLERS || o === 'cpuacct' || o === 'devices' || o === 'net_cls' || o === 'net_prio' || o === 'hugetlb' || o === 'perf_event' || o === 'rdma' || o === 'misc')
    if (controllers.length === 0) continue // name=systemd and the like
    const key = controllers.slice().sort().join(',')
    if (seen.has(key)) continue // the same hierarchy mounted twice
    seen.add(key)
    const mine = own.find((o) => o.controllers.some((c) => controllers.includes(c)))
    if (!mine) continue
    legacy.push({ controllers, mount: m.mountPoint, own: dirUnder(m, mine.path) })
  }

  const mode: CgroupMode = rootType === CGROUP2_SUPER_MAGIC ? 'unified' : unified ? 'hybrid' : 'legacy'
  if (mode !== 'unified' && legacy.length === 0) {
    throw new CgroupError('ERR_CGROUP_NOT_FOUND', 'no cgroup hierarchy with controllers is mounted under /sys/fs/cgroup')
  }

  const controllers = new Set<Controller>()
  if (mode === 'unified') {
    for (const c of unified?.controllers ?? []) if (c in V1_CONTROLLERS || c === 'io') controllers.add(c === 'blkio' ? 'io' : (c as Controller))
    controllers.add('freezer') // cgroup.freeze is part of every v2 cgroup (Linux 5.2+)
  } else {
    for (const h of legacy) for (const c of h.controllers) if (V1_CONTROLLERS[c]) controllers.add(V1_CONTROLLERS[c]!)
  }
  return { mode, ...(unified ? { unified } : {}), legacy: mode === 'unified' ? [] : legacy, controllers: [...controllers].sort() }
}
