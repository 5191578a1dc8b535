/** `snapshot.json`: validation, crash-safe writing, reading. */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { StoreError, ioError } from '../errors.js'
import type { SnapshotRecord } from '../paths.js'

/**
 * A snapshot id: what `docker run --name` accepts, at most 128 characters.
 *
 * @example
 * ```ts
 * SNAPSHOT_ID_RE.test('c1') // true
 * ```
 */
export const SNAPSHOT_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

/** A chain id: `sha256:<64 hex>` (or `sha512:<128 hex>`), or the bare hex. */
const CHAIN_ID_RE = /^(?:(?:sha256:)?[0-9a-f]{64}|(?:sha512:)?[0-9a-f]{128})$/

export const SnapshotIdSchema = z.string().regex(SNAPSHOT_ID_RE, 'a snapshot id is 1 to 128 characters of [A-Za-z0-9_.-], starting with a letter or digit')

const SnapshotRecordSchemaSource = z.object({
  id: SnapshotIdSchema,
  image: z.string(),
  manifestDigest: z.string().min(1),
  chainIds: z.array(z.string().regex(CHAIN_ID_RE, 'not a chain id (sha256:<64 hex digits>)')),
  readonly: z.boolean(),
  volatile: z.boolean().optional(),
  initLayer: z.string().regex(/^[0-9a-f]{64}$/, 'not an init layer key (64 hex digits)').optional(),
  created: z.string(),
})
// Parsed at every snapshot read: compiled ahead of time (invalid input falls back to the regular parser, so errors read the same).
export const SnapshotRecordSchema = z.compile(SnapshotRecordSchemaSource)

/**
 * Checks a snapshot id; throws `ERR_STORE_INVALID` (field `id`).
 *
 * @example
 * ```ts
 * checkId('web-1')   // 'web-1'
 * checkId('../etc')  // throws StoreError ERR_STORE_INVALID, field 'id'
 * ```
 */
export function checkId(id: unknown): string {
  const r = SnapshotIdSchema.safeParse(id)
  if (!r.success) {
    throw new StoreError('ERR_STORE_INVALID', `invalid snapshot id ${JSON.stringify(id)}: ${r.error.issues[0]?.message ?? 'invalid'}`, { field: 'id' })
  }
  return r.data
}

/**
 * A name for a temporary under `snapshots/`: `.tmp-<pid>-<what>-<random>` — the pattern of
 * `fs/atomic.ts` (`temporaryOwner` reads the pid), with what it is spelled out for a human.
 */
export function tmpName(what: string): string {
  return `.tmp-${process.pid}-${what}-${randomBytes(6).toString('hex')}`
}

/** Reads and validates a snapshot's record; `undefined` when the snapshot does not exist. */
export async function readRecord(file: string): Promise<SnapshotRecord | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    throw ioError('read', file, err)
  }
  return parseRecord(file, text)
}

/**
 * {@link readRecord} on the calling thread: for a removal, which reads a record of a few hundred
 * bytes written moments ago (in the page cache), where fs.promises would make four thread-pool
 * trips of it.
 */
export function readRecordSync(file: string): SnapshotRecord | undefined {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    throw ioError('read', file, err)
  }
  return parseRecord(file, text)
}

function parseRecord(file: string, text: string): SnapshotRecord {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new StoreError('ERR_STORE_IO', `read \`${file}\`: not valid JSON`, { path: file, cause: err })
  }
  const r = SnapshotRecordSchema.safeParse(json)
  if (!r.success) {
    const iss = r.error.issues[0]
    throw new StoreError('ERR_STORE_IO', `read \`${file}\`: ${iss?.path.join('.') ?? ''}: ${iss?.message ?? 'invalid'}`, { path: file })
  }
  return r.data
}
