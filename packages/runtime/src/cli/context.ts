/** What every `ctr` command gets: the global flags, and the runtime opened on first use. */
import path from 'node:path'
import { StateStore } from '../container/state.js'
import { Runtime } from '../runtime.js'
import { UsageError } from './args.js'

/** The global flags, resolved with their environment defaults. */
export interface Globals {
  /** The image store (`--root`, `$CTR_ROOT`, `/var/lib/ctr`). */
  root: string
  /** Container state (`--state`, `$CTR_STATE_ROOT`, `/run/ctr`). */
  stateRoot: string
  /** Registries spoken to over plain HTTP (`--insecure-registry`, `$CTR_INSECURE_REGISTRIES`). */
  insecure: string[]
  /**
   * The network namespace bridges, veths, NAT rules and port proxies live in (`--host-netns`,
   * `$CTR_HOST_NETNS`): a pid or a netns path. Default ours. Tests point it at a netns that
   * plays the host, so the machine's own network is never touched.
   */
  hostNetns?: number | string
  debug: boolean
}

export class Context {
  #runtimes = new Map<string, Promise<Runtime>>()

  constructor(readonly globals: Globals) {}

  /** The runtime (store, state, registry settings); `cgroupParent` only matters for new containers. */
  runtime(cgroupParent?: string): Promise<Runtime> {
    const key = cgroupParent ?? ''
    let rt = this.#runtimes.get(key)
    if (!rt) {
      rt = Runtime.open({
        root: this.globals.root,
        stateRoot: this.globals.stateRoot,
        registry: { insecure: this.globals.insecure },
        ...(this.globals.hostNetns !== undefined ? { hostNetns: this.globals.hostNetns } : {}),
        ...(cgroupParent ? { cgroupParent } : {}),
      })
      this.#runtimes.set(key, rt)
    }
    return rt
  }

  /** The state directory alone (no image store opened): enough to read containers. */
  states(): StateStore {
    return new StateStore(this.globals.stateRoot)
  }
}

export function resolveGlobals(o: { root?: string; state?: string; hostNetns?: string; insecure: string[]; debug: boolean }, env: NodeJS.ProcessEnv = process.env): Globals {
  const fromEnv = (env['CTR_INSECURE_REGISTRIES'] ?? '').split(',').map((s) => s.trim()).filter(Boolean)
  const netns = o.hostNetns ?? (env['CTR_HOST_NETNS'] || undefined)
  const hostNetns = netns === undefined ? undefined : parseHostNetns(netns)
  return {
    root: path.resolve(o.root ?? env['CTR_ROOT'] ?? '/var/lib/ctr'),
    stateRoot: path.resolve(o.state ?? env['CTR_STATE_ROOT'] ?? '/run/ctr'),
    insecure: [...new Set([...o.insecure, ...fromEnv])],
    ...(hostNetns !== undefined ? { hostNetns } : {}),
    debug: o.debug,
  }
}

/** `--host-netns`: a pid (its netns) or a path to a netns file (`/proc/PID/ns/net`, `/run/netns/NAME`). */
export function parseHostNetns(v: string): number | string {
  const s = v.trim()
  if (/^\d+$/.test(s) && Number(s) > 0) return Number(s)
  if (s.startsWith('/')) return path.resolve(s)
  throw new UsageError(`invalid argument "${v}" for "--host-netns" flag: a pid or an absolute path to a network namespace`)
}
