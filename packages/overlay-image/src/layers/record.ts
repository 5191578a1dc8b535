/**
 * `layers/<chain id hex>/layer.json`: what an unpacked layer is. It is written last, inside the
 * temporary directory, before the rename: a layer directory with a `layer.json` is complete.
 */
import { promises as fs } from 'node:fs'
import { z } from 'zod'
import { DigestSchema } from '@ctr/oci'
import { StoreError, ioError } from '../errors.js'
import type { StorePaths } from '../paths.js'

/** The content of `layer.json`. */
export interface LayerRecord {
  /** The layer's chain id (its directory's name is the hex part). */
  chainId: string
  /** The digest of the uncompressed tar (the config's `rootfs.diff_ids` entry). */
  diffId: string
  /** The chain id of the layer below, `null` for a base layer. */
  parent: string | null
  /** The digest of the blob it was unpacked from (one of possibly several with this diff id). */
  digest: string
  /** That blob's size. */
  size: number
  /** Bytes of regular-file content in `fs/`. */
  unpackedBytes: number
}

/** Schema of {@link LayerRecord}; unknown keys are kept (newer writers may add some). */
export const LayerRecordSchema = z.looseObject({
  chainId: DigestSchema,
  diffId: DigestSchema,
  parent: z.nullable(DigestSchema),
  digest: DigestSchema,
  size: z.number().int().nonnegative(),
  unpackedBytes: z.number().int().nonnegative(),
})

/** Writes `layer.json` (flushed to disk when `fsync`). */
export async function writeLayerRecord(file: string, record: LayerRecord, fsync: boolean): Promise<void> {
  try {
    const fh = await fs.open(file, 'wx', 0o644)
    try {
      await fh.writeFile(`${JSON.stringify(record, null, 2)}\n`)
      if (fsync) await fh.sync()
    } finally {
      await fh.close()
    }
  } catch (err) {
    throw ioError('write', file, err)
  }
}

/**
 * Reads an unpacked layer's `layer.json`; `undefined` when the layer is not unpacked.
 *
 * @throws StoreError `ERR_STORE_BAD_IMAGE` when the file is not a layer record.
 */
export async function readLayerRecord(paths: StorePaths, chainId: string): Promise<LayerRecord | undefined> {
  const file = paths.layerMeta(chainId)
  let text: string
  try {
    text = await fs.readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw ioError('read', file, err)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new StoreError('ERR_STORE_BAD_IMAGE', `\`${file}\` is not JSON`, { path: file, cause: err })
  }
  const r = LayerRecordSchema.safeParse(parsed)
  if (!r.success) throw new StoreError('ERR_STORE_BAD_IMAGE', `\`${file}\` is not a layer record: ${r.error.issues[0]?.message ?? ''}`, { path: file })
  return r.data as LayerRecord
}
