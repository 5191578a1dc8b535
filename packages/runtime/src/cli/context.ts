/** What every `ctr` command gets: the global flags, and the runtime opened on first use. */
import path from 'node:path'
import { StateStore } from '../container/state.js'
import { Runtime } from '../runtime.js'

/** The global flags, resolved with their environment defaults. */
export interface Globals {
  /** The image store (`--root`, `$CTR_ROOT`, `/var/lib/ctr`). */
  root: string
  /** Container state (`--state`, `$CTR_STATE_ROOT`, `/run/ctr`). */
  stateRoot: string
  /** Registries spoken to over plain HTTP (`--insecure-registry`, `$CTR_INSECURE_REGISTRIES`). */
  insecure: string[]
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

export function resolveGlobals(o: { root?: string; state?: string; insecure: string[]; debug: boolean }, env: NodeJS.ProcessEnv = process.env): Globals {
  const fromEnv = (env['CTR_INSECURE_REGISTRIES'] ?? '').split(',').map((s) => s.trim()).filter(Boolean)
  return {
    root: path.resolve(o.root ?? env['CTR_ROOT'] ?? '/var/lib/ctr'),
    stateRoot: path.resolve(o.state ?? env['CTR_STATE_ROOT'] ?? '/run/ctr'),
    insecure: [...new Set([...o.insecure, ...fromEnv])],
    debug: o.debug,
  }
}
