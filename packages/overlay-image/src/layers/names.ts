/**
 * Entry names: which ones a layer may hold, and what OCI whiteouts mean.
 *
 * Names are cleaned lexically, like Go's `path.Clean`: `./usr//bin/` is `usr/bin`, and `a/../b`
 * is `b`. Two kinds of name are refused with `ERR_STORE_UNSAFE_TAR` instead of being bent
 * back inside the layer: absolute names (`/etc/passwd`) and names whose `..` climb above the
 * layer root (`../../etc/passwd`) — the names Go's `filepath.IsLocal` rejects and Go's
 * `archive/tar` reports as `ErrInsecurePath`. containerd and umoci would clamp them into the
 * layer (`/etc/x` → `etc/x`, `../../x` → `x`) and Docker refuses only the `..` ones; no image
 * builder writes either kind, so a layer that has one was made by hand, and saying so is
 * clearer than guessing where it meant to write.
 */
import { StoreError } from '../errors.js'

/** Longest name component Linux accepts (NAME_MAX). */
const NAME_MAX = 255

/**
 * Cleans an archive name into its components (`[]` is the layer root).
 *
 * @param what how the name is described in errors: `entry` or `hardlink target`.
 * @param entry the entry the name belongs to, for error messages.
 * @throws StoreError `ERR_STORE_UNSAFE_TAR` for absolute or escaping names,
 *   `ERR_STORE_BAD_TAR` for components longer than 255 bytes.
 *
 * @example
 * ```ts
 * cleanName('./usr/bin/', 'entry', './usr/bin/')  // ['usr', 'bin']
 * cleanName('../etc/passwd', 'entry', '…')         // throws ERR_STORE_UNSAFE_TAR
 * ```
 */
export function cleanName(name: string, what: string, entry: string): string[] {
  if (name.startsWith('/')) {
    throw new StoreError('ERR_STORE_UNSAFE_TAR', `entry \`${entry}\`: ${what} \`${name}\` is an absolute name; layer names are relative to the layer root`, {
      path: entry,
    })
  }
  const parts: string[] = []
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue
    if (p === '..') {
      if (parts.length === 0) {
        throw new StoreError('ERR_STORE_UNSAFE_TAR', `entry \`${entry}\`: ${what} \`${name}\` climbs out of the layer with \`..\``, { path: entry })
      }
      parts.pop()
      continue
    }
    if (Buffer.byteLength(p) > NAME_MAX) {
      throw new StoreError('ERR_STORE_BAD_TAR', `entry \`${entry}\`: a component of ${what} \`${name.slice(0, 200)}…\` is longer than ${NAME_MAX} bytes`, {
        path: entry,
      })
    }
    parts.push(p)
  }
  return parts
}

/** The prefix of OCI whiteout files. */
export const WHITEOUT_PREFIX = '.wh.'
/** The name of an OCI opaque-directory marker. */
export const OPAQUE_MARKER = '.wh..wh..opq'
/** The xattr overlayfs reads to make a directory opaque (hide the lower layers' contents). */
export const OPAQUE_XATTR = 'trusted.overlay.opaque'

/** What a name means as an OCI whiteout. */
export type WhiteoutKind =
  /** `.wh..wh..opq`: the directory it is in hides the lower layers' contents. */
  | { kind: 'opaque' }
  /** `.wh.<name>`: `<name>` is deleted from the lower layers. */
  | { kind: 'whiteout'; name: string }
  /** Other `.wh..wh.*` names (AUFS bookkeeping such as `.wh..wh.plnk`): ignored, as containerd does. */
  | { kind: 'ignore' }

/**
 * Whether a name component is an OCI whiteout, and which kind.
 *
 * @throws StoreError `ERR_STORE_UNSAFE_TAR` for `.wh.` names that would delete `.`, `..` or
 *   nothing.
 */
export function whiteoutOf(base: string, entry: string): WhiteoutKind | undefined {
  if (!base.startsWith(WHITEOUT_PREFIX)) return undefined
  if (base === OPAQUE_MARKER) return { kind: 'opaque' }
  if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return { kind: 'ignore' }
  const name = base.slice(WHITEOUT_PREFIX.length)
  if (name === '' || name === '.' || name === '..') {
    throw new StoreError('ERR_STORE_UNSAFE_TAR', `entry \`${entry}\`: whiteout of \`${name}\` is not a name in its directory`, { path: entry })
  }
  return { kind: 'whiteout', name }
}
