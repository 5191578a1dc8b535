/**
 * The options of {@link spawn} and {@link enter}, as zod schemas: options come from callers we
 * do not control (often from user input in a code runner), so every field is checked before
 * anything is created, and an error names the field.
 */
import { z } from 'zod'
import { NAMESPACE_TYPES } from './ids.js'
import { RLIMITS } from './rlimits.js'
import { capabilityNumber } from './capabilities.js'
import { InvalidOptionsError } from './errors.js'

const noNul = (what: string) => z.string().refine((s) => !s.includes('\0'), `${what} must not contain NUL bytes`)
const absolutePath = noNul('a path').refine((s) => s.startsWith('/'), 'must be an absolute path')
const id32 = z.number().int().min(0).max(0xfffffffe)
const fd = z.number().int().min(0).max(1_048_575)

const namespaceType = z.enum(NAMESPACE_TYPES)

const idMapEntry = z.strictObject({ containerId: id32, hostId: id32, size: z.number().int().min(1).max(0xffffffff) })

const stdioEntry = z.union([z.enum(['pipe', 'inherit', 'ignore']), fd])

const limitValue = z.union([z.literal('unlimited'), z.number().int().min(0)])
const rlimit = z.strictObject({ soft: limitValue, hard: limitValue }).refine(
  (l) => l.hard === 'unlimited' || (l.soft !== 'unlimited' && l.soft <= l.hard),
  'soft must not exceed hard',
)

const capabilityName = z.string().refine((n) => capabilityNumber(n) !== undefined, 'unknown capability')
const capabilitySets = z.strictObject({
  bounding: z.array(capabilityName).optional(),
  effective: z.array(capabilityName).optional(),
  permitted: z.array(capabilityName).optional(),
  inheritable: z.array(capabilityName).optional(),
  ambient: z.array(capabilityName).optional(),
})

const mountSpec = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('bind'), source: absolutePath, target: absolutePath, readonly: z.boolean().optional() }),
  z.strictObject({
    type: z.literal('tmpfs'),
    target: absolutePath,
    size: z.union([z.number().int().positive(), z.string().regex(/^\d+[kmgKMG%]?$/, 'a size like 64m')]).optional(),
    mode: z.number().int().min(0).max(0o7777).optional(),
    readonly: z.boolean().optional(),
  }),
])

const rootFilesystem = z.strictObject({
  type: noNul('a file system type').pipe(z.string().min(1)),
  source: noNul('a mount source').optional(),
  data: noNul('mount data').pipe(z.string().max(4095, 'mount data is limited to one page')).optional(),
  flags: z.number().int().min(0).optional(),
  cwd: absolutePath.optional(),
})

export const rootfsSchema = z.strictObject({
  path: absolutePath,
  filesystem: rootFilesystem.optional(),
  readonly: z.boolean().optional(),
  mounts: z.array(mountSpec).optional(),
  maskedPaths: z.array(absolutePath).optional(),
  readonlyPaths: z.array(absolutePath).optional(),
})

const hostnameSchema = z.string().min(1).max(64).regex(/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/, 'not a valid host name')

/** Fields shared by spawn and enter. */
const processFields = {
  argv: z.array(noNul('argv')).min(1, 'argv needs at least the program'),
  env: z.record(z.string().regex(/^[^=\0]+$/, 'an environment name has no = or NUL'), noNul('an environment value')).optional(),
  cwd: absolutePath.optional(),
  user: z.strictObject({ uid: id32, gid: id32, groups: z.array(id32).max(65536).optional() }).optional(),
  rlimits: z.partialRecord(z.enum(RLIMITS), rlimit).optional(),
  capabilities: capabilitySets.optional(),
  noNewPrivileges: z.boolean().optional(),
  seccomp: z
    .strictObject({
      filter: z.instanceof(Uint8Array).refine((b) => b.length > 0 && b.length % 8 === 0 && b.length / 8 <= 4096,
        'a filter is 1 to 4096 instructions of 8 bytes'),
      flags: z.number().int().min(0).optional(),
    })
    .optional(),
  umask: z.number().int().min(0).max(0o777).optional(),
  stdio: z.tuple([stdioEntry, stdioEntry, stdioEntry]).optional(),
  fds: z.array(fd).max(61).optional(),
  setsid: z.boolean().optional(),
  controllingTerminal: z.number().int().min(0).max(63).optional(),
  cgroup: z.strictObject({ unified: absolutePath.optional(), legacy: z.array(absolutePath).optional() }).optional(),
  signal: z.instanceof(AbortSignal).optional(),
}

const spawnSchemaSource = z
  .strictObject({
    ...processFields,
    namespaces: z.array(namespaceType).optional(),
    join: z.partialRecord(namespaceType, z.union([z.number().int().positive(), absolutePath])).optional(),
    uidMap: z.array(idMapEntry).min(1).max(340).optional(),
    gidMap: z.array(idMapEntry).min(1).max(340).optional(),
    setgroups: z.enum(['allow', 'deny']).optional(),
    hostname: hostnameSchema.optional(),
    domainname: hostnameSchema.optional(),
    loopback: z.boolean().optional(),
    rootfs: rootfsSchema.optional(),
  })
  .superRefine((o, ctx) => {
    const created = new Set(o.namespaces ?? [])
    const need = (field: string, ns: string, what: string) =>
      ctx.addIssue({ code: 'custom', path: [field], message: `${what} needs a new ${ns} namespace (add '${ns}' to namespaces)` })
    if (o.hostname !== undefined && !created.has('uts')) need('hostname', 'uts', 'setting the hostname')
    if (o.domainname !== undefined && !created.has('uts')) need('domainname', 'uts', 'setting the domain name')
    if (o.rootfs !== undefined && !created.has('mnt')) need('rootfs', 'mnt', 'a root filesystem')
    if ((o.uidMap || o.gidMap || o.setgroups) && !created.has('user'))
      need(o.uidMap ? 'uidMap' : o.gidMap ? 'gidMap' : 'setgroups', 'user', 'an id map')
    for (const t of Object.keys(o.join ?? {}))
      if (created.has(t as never))
        ctx.addIssue({ code: 'custom', path: ['join', t], message: `cannot both create and join a ${t} namespace` })
    if (new Set(o.namespaces).size !== (o.namespaces ?? []).length)
      ctx.addIssue({ code: 'custom', path: ['namespaces'], message: 'lists a namespace twice' })
  })
// Parsed at every start: compiled ahead of time (invalid input falls back to the regular parser, so errors read the same).
export const spawnSchema = z.compile(spawnSchemaSource)

const enterSchemaSource = z.strictObject({
  ...processFields,
  namespaces: z.array(namespaceType).optional(),
})
// Parsed at every start: compiled ahead of time (invalid input falls back to the regular parser, so errors read the same).
export const enterSchema = z.compile(enterSchemaSource)

export type SpawnOptionsParsed = z.infer<typeof spawnSchema>
export type EnterOptionsParsed = z.infer<typeof enterSchema>

/** Parses with a schema; the first issue becomes an {@link InvalidOptionsError} naming its field. */
export function parseOptions<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value)
  if (r.success) return r.data
  const issue = r.error.issues[0]!
  throw new InvalidOptionsError(issue.path.map(String).join('.'), issue.message)
}
