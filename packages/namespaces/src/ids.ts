import { promises as fs } from 'node:fs'

/** The namespace types Linux has. */
export const NAMESPACE_TYPES = ['pid', 'mnt', 'uts', 'ipc', 'net', 'user', 'cgroup', 'time'] as const
export type NamespaceType = (typeof NAMESPACE_TYPES)[number]

function nsPath(pid: number | 'self', type: NamespaceType): string {
  return `/proc/${pid}/ns/${type}`
}

/**
 * The id of a process's namespace of one type: the inode of `/proc/<pid>/ns/<type>`. Two
 * processes share a namespace exactly when the ids are equal.
 *
 * @example
 * ```ts
 * const isolated = (await namespaceId(child.pid, 'net')) !== (await namespaceId('self', 'net'))
 * ```
 */
export async function namespaceId(pid: number | 'self', type: NamespaceType): Promise<number> {
  return (await fs.stat(nsPath(pid, type))).ino
}

/** Every namespace id of a process; types this kernel lacks are left out. */
export async function namespaceIds(pid: number | 'self'): Promise<Partial<Record<NamespaceType, number>>> {
  const found = await Promise.all(
    NAMESPACE_TYPES.map(async (type) => {
      try {
        return await namespaceId(pid, type)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
        return undefined
      }
    }),
  )
  // Keys in NAMESPACE_TYPES order, whatever order the stats finished in.
  const ids: Partial<Record<NamespaceType, number>> = {}
  NAMESPACE_TYPES.forEach((type, i) => {
    if (found[i] !== undefined) ids[type] = found[i]
  })
  return ids
}

/** Whether two processes share the namespace of the given type. */
export async function sameNamespace(a: number | 'self', b: number | 'self', type: NamespaceType): Promise<boolean> {
  const [x, y] = await Promise.all([namespaceId(a, type), namespaceId(b, type)])
  return x === y
}
