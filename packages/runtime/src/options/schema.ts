/**
 * The options of `run()` and `create()`, checked with zod before anything is created: they
 * often come from users of a code runner, so every field is validated and an error names it.
 */
import { Readable, Writable } from 'node:stream'
import { isIP } from 'node:net'
import { z } from 'zod'
import { invalidOption } from '../errors.js'
import { parseSize } from './units.js'

const noNul = z.string().refine((s) => !s.includes('\0'), 'must not contain NUL bytes')
const absolutePath = noNul.refine((s) => s.startsWith('/'), 'must be an absolute path')
const containerPath = absolutePath.refine((s) => !s.split('/').includes('..'), 'must not contain ".."')
const size = z.union([z.number().int().min(0), z.string()]).refine((v) => parseSize(v) !== undefined, 'a size like 64m, 1g or a number of bytes')

/** Names of containers and volumes: Docker's rule. */
export const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

const mount = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('bind'), source: absolutePath, target: containerPath, readonly: z.boolean().optional() }),
  z.strictObject({ type: z.literal('tmpfs'), target: containerPath, size: size.optional(), mode: z.number().int().min(0).max(0o7777).optional() }),
  z.strictObject({ type: z.literal('volume'), name: z.string().regex(NAME, 'a volume name: letters, digits, _ . -'), target: containerPath, readonly: z.boolean().optional() }),
])

const envSchema = z.union([
  z.record(z.string().regex(/^[^=\0]+$/, 'an environment name has no = or NUL'), noNul),
  z.array(noNul.refine((s) => /^[^=]+=/.test(s), 'KEY=value')),
])

const outputMode = z.union([z.enum(['capture', 'inherit', 'ignore']), z.instanceof(Writable)])

/** Fields that `create()` and `run()` share. */
export const containerFields = {
  image: noNul.pipe(z.string().min(1, 'an image is required')),
  pull: z.enum(['missing', 'always', 'never']).optional(),
  platform: z.string().regex(/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/, 'os/arch[/variant]').optional(),
  name: z.string().regex(NAME, 'a name: letters, digits, _ . - (up to 128)').optional(),
  cmd: z.array(noNul).optional(),
  entrypoint: z.union([z.array(noNul), noNul]).optional(),
  env: envSchema.optional(),
  workdir: containerPath.optional(),
  user: z.string().regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?$/, 'user, uid, user:group or uid:gid').optional(),
  hostname: z.string().max(64).regex(/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/, 'not a valid host name').optional(),
  memory: size.optional(),
  memorySwap: z.union([size, z.literal(-1)]).optional(),
  cpus: z.number().positive().max(1024).optional(),
  pids: z.number().int().min(1).optional(),
  ioWeight: z.number().int().min(1).max(10_000).optional(),
  mounts: z.array(mount).max(256).optional(),
  readonly: z.boolean().optional(),
  // Networking: a mode ('none', 'host'), 'bridge' (the default network) or a network's name.
  network: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, "'none', 'host', 'bridge' or a network name").optional(),
  dns: z.array(z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$|^[0-9a-fA-F:]+$/, 'an IP address')).max(3).optional(),
  publish: z.array(z.union([
    z.string(),
    z.strictObject({
      hostPort: z.number().int().min(1).max(65535),
      containerPort: z.number().int().min(1).max(65535),
      protocol: z.enum(['tcp', 'udp']).optional(),
      hostIp: z.string().refine((ip) => isIP(ip) !== 0, 'an IPv4 or IPv6 address').optional(),
    }),
  ])).max(256).optional(),
  tty: z.boolean().optional(),
  init: z.boolean().optional(),
  capAdd: z.array(z.string()).optional(),
  capDrop: z.array(z.string()).optional(),
  privileged: z.boolean().optional(),
  seccomp: z.union([z.literal('default'), z.literal('unconfined'), z.record(z.string(), z.unknown())]).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  ulimits: z.record(z.string(), z.strictObject({ soft: z.number().int().min(0), hard: z.number().int().min(0) })).optional(),
}

const createSchemaSource = z.strictObject({
  ...containerFields,
  /** Keep stdin open for `container.stdin` (docker create -i). */
  interactive: z.boolean().optional(),
})
// Parsed at every run() / create(): compiled ahead of time (invalid input falls back to the regular parser, so errors read the same).
export const createSchema = z.compile(createSchemaSource)

const runSchemaSource = z.strictObject({
  ...containerFields,
  stdin: z.union([z.string(), z.instanceof(Uint8Array), z.instanceof(Readable)]).optional(),
  stdout: outputMode.optional(),
  stderr: outputMode.optional(),
  timeout: z.number().int().positive().optional(),
  signal: z.instanceof(AbortSignal).optional(),
  remove: z.boolean().optional(),
  waitForRemoval: z.boolean().optional(),
})
// Parsed at every run() / create(): compiled ahead of time (invalid input falls back to the regular parser, so errors read the same).
export const runSchema = z.compile(runSchemaSource)

export type CreateOptionsParsed = z.infer<typeof createSchema>
export type RunOptionsParsed = z.infer<typeof runSchema>

/** Parses options; the first issue becomes an `ERR_RUNTIME_INVALID_OPTIONS` naming its field. */
export function parseOptions<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value)
  if (r.success) return r.data
  const issue = r.error.issues[0]!
  if (issue.code === 'unrecognized_keys') {
    const key = (issue as { keys: string[] }).keys[0]!
    throw invalidOption([...issue.path.map(String), key].join('.'), 'unknown option')
  }
  throw invalidOption(issue.path.map(String).join('.'), issue.message)
}
