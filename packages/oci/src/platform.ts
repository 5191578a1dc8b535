import { endianness } from 'node:os'
import { OciError } from './errors.js'
import { ATTESTATION_MANIFEST, Annotation } from './media-types.js'
import type { Descriptor, Platform } from './schemas.js'

/** A platform as a string (`linux/arm64/v8`) or an object. */
export type PlatformSpec = string | Platform

const KNOWN_OS = new Set([
  'aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'illumos', 'ios', 'js', 'linux', 'netbsd', 'openbsd', 'plan9', 'solaris', 'wasip1', 'windows',
])

/** Architecture aliases, to GOARCH plus the variant they imply. */
const ARCH_ALIASES: Record<string, { architecture: string; variant?: string }> = {
  x86_64: { architecture: 'amd64' },
  'x86-64': { architecture: 'amd64' },
  x64: { architecture: 'amd64' },
  aarch64: { architecture: 'arm64' },
  armhf: { architecture: 'arm', variant: 'v7' },
  armel: { architecture: 'arm', variant: 'v6' },
  armv8l: { architecture: 'arm', variant: 'v8' },
  armv7l: { architecture: 'arm', variant: 'v7' },
  armv7: { architecture: 'arm', variant: 'v7' },
  armv6l: { architecture: 'arm', variant: 'v6' },
  armv6: { architecture: 'arm', variant: 'v6' },
  armv5l: { architecture: 'arm', variant: 'v5' },
  armv5tel: { architecture: 'arm', variant: 'v5' },
  i386: { architecture: '386' },
  i486: { architecture: '386' },
  i586: { architecture: '386' },
  i686: { architecture: '386' },
  x86: { architecture: '386' },
  ia32: { architecture: '386' },
  ppc64el: { architecture: 'ppc64le' },
  mips64el: { architecture: 'mips64le' },
  mipsel: { architecture: 'mipsle' },
}

/** The default variant of architectures that have one. */
const DEFAULT_VARIANT: Record<string, string> = { arm64: 'v8', arm: 'v7' }

/**
 * Normalises a platform: lowercase OS (`macos` → `darwin`), GOARCH names (`x86_64` → `amd64`,
 * `aarch64` → `arm64`, `armhf` → `arm`/`v7`, `armel` → `arm`/`v6`, `i686` → `386`), variants
 * with a `v` (`7` → `v7`, `v8.0` → `v8`) and the default variants filled in (`arm64` → `v8`,
 * `arm` → `v7`). Other fields are kept.
 *
 * @example
 * ```ts
 * normalizePlatform({ os: 'Linux', architecture: 'aarch64' }) // { os: 'linux', architecture: 'arm64', variant: 'v8' }
 * normalizePlatform({ os: 'linux', architecture: 'armhf' })   // { os: 'linux', architecture: 'arm', variant: 'v7' }
 * ```
 */
export function normalizePlatform(p: Platform): Platform {
  let os = p.os.toLowerCase()
  if (os === 'macos' || os === 'osx') os = 'darwin'
  let architecture = p.architecture.toLowerCase()
  let variant = p.variant === undefined || p.variant === '' ? undefined : p.variant.toLowerCase()
  const alias = ARCH_ALIASES[architecture]
  if (alias !== undefined) {
    architecture = alias.architecture
    if (alias.variant !== undefined && variant === undefined) variant = alias.variant
  }
  if (variant !== undefined && /^[0-9]/.test(variant) && (architecture === 'arm' || architecture === 'arm64' || architecture === 'amd64')) variant = `v${variant}`
  if (variant !== undefined && architecture === 'arm64' && /^v8\.0$/.test(variant)) variant = 'v8'
  variant ??= DEFAULT_VARIANT[architecture]
  const out: Platform = { ...p, os, architecture }
  if (variant === undefined) delete out.variant
  else out.variant = variant
  return out
}

function platformError(input: string, problem: string): never {
  throw new OciError('ERR_OCI_INVALID_PLATFORM', `invalid platform ${JSON.stringify(input)}: ${problem}`)
}

const COMPONENT_RE = /^[A-Za-z0-9_.-]+$/

/**
 * Parses `os/arch[/variant]` (as in `docker --platform`) into a normalised {@link Platform}.
 * A single component is an OS when it is a known one (the architecture is then the host's),
 * else an architecture on `linux`. `os(version)` sets `os.version`. Throws {@link OciError}
 * `ERR_OCI_INVALID_PLATFORM`.
 *
 * @example
 * ```ts
 * parsePlatform('linux/arm64/v8') // { os: 'linux', architecture: 'arm64', variant: 'v8' }
 * parsePlatform('linux/arm64')    // { os: 'linux', architecture: 'arm64', variant: 'v8' }
 * parsePlatform('linux/armhf')    // { os: 'linux', architecture: 'arm', variant: 'v7' }
 * parsePlatform('arm64')          // { os: 'linux', architecture: 'arm64', variant: 'v8' }
 * ```
 */
export function parsePlatform(input: string): Platform {
  if (typeof input !== 'string') throw new OciError('ERR_OCI_INVALID_PLATFORM', `invalid platform: expected a string, got ${typeof input}`)
  const s = input.trim()
  if (s === '') platformError(input, 'it is empty; expected os/arch[/variant], e.g. linux/amd64')
  const parts = s.split('/')
  if (parts.length > 3) platformError(input, `it has ${parts.length} components; expected os/arch[/variant], e.g. linux/arm/v7`)
  let osVersion: string | undefined
  const first = parts[0] ?? ''
  const m = /^([^()]*)\(([^()]*)\)$/.exec(first)
  if (m !== null) {
    parts[0] = m[1] ?? ''
    osVersion = m[2]
  }
  parts.forEach((part, i) => {
    if (part === '') platformError(input, `component ${i + 1} is empty`)
    if (!COMPONENT_RE.test(part)) platformError(input, `component "${part}" has invalid characters (letters, digits, '_', '.', '-')`)
  })
  let p: Platform
  if (parts.length === 1) {
    const only = (parts[0] ?? '').toLowerCase()
    p = KNOWN_OS.has(only) || only === 'macos' ? { os: only, architecture: hostPlatform().architecture } : { os: 'linux', architecture: only }
  } else {
    p = { os: parts[0] ?? '', architecture: parts[1] ?? '' }
    if (parts[2] !== undefined) p.variant = parts[2]
  }
  if (osVersion !== undefined && osVersion !== '') p['os.version'] = osVersion
  return normalizePlatform(p)
}

/**
 * `os/arch[/variant]` for a platform, e.g. `linux/arm/v7`.
 *
 * @example
 * ```ts
 * formatPlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' }) // 'linux/arm64/v8'
 * ```
 */
export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`
}

const NODE_OS: Record<string, string> = { win32: 'windows', sunos: 'solaris', cygwin: 'windows' }
const NODE_ARCH: Record<string, string> = {
  x64: 'amd64',
  ia32: '386',
  arm64: 'arm64',
  arm: 'arm',
  s390x: 's390x',
  s390: 's390',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips: 'mips',
  mipsel: 'mipsle',
  mips64: 'mips64',
  mips64el: 'mips64le',
  ppc: 'ppc',
}

/**
 * The OCI platform of a Node.js `process.platform` / `process.arch` pair. `armVersion` is
 * Node's `process.config.variables.arm_version` (`'6'`, `'7'`), used for `arm`.
 *
 * @example
 * ```ts
 * nodePlatform('linux', 'x64')      // { os: 'linux', architecture: 'amd64' }
 * nodePlatform('linux', 'arm', '6') // { os: 'linux', architecture: 'arm', variant: 'v6' }
 * ```
 */
export function nodePlatform(platform: string, arch: string, armVersion?: string | number, littleEndian = true): Platform {
  const os = NODE_OS[platform] ?? platform
  let architecture: string
  if (arch === 'ppc64') architecture = littleEndian ? 'ppc64le' : 'ppc64'
  else architecture = NODE_ARCH[arch] ?? arch
  const p: Platform = { os, architecture }
  if (architecture === 'arm') {
    const v = armVersion === undefined || armVersion === '' || armVersion === 'default' ? '7' : String(armVersion)
    p.variant = `v${v}`
  }
  return normalizePlatform(p)
}

/**
 * The platform of the running Node.js process: `process.platform`/`process.arch` mapped to
 * GOOS/GOARCH (`x64` → `amd64`, `arm64` → `arm64`/`v8`, `arm` → `arm` with the variant Node
 * was built for, `ia32` → `386`, `ppc64` → `ppc64le` on little-endian hosts).
 *
 * @example
 * ```ts
 * hostPlatform() // { os: 'linux', architecture: 'amd64' } on a typical server
 * ```
 */
export function hostPlatform(): Platform {
  const variables = (process.config as unknown as { variables?: Record<string, unknown> }).variables ?? {}
  const armVersion = variables['arm_version']
  return nodePlatform(process.platform, process.arch, typeof armVersion === 'string' || typeof armVersion === 'number' ? armVersion : undefined, endianness() === 'LE')
}

function toPlatform(p: PlatformSpec): Platform {
  return typeof p === 'string' ? parsePlatform(p) : normalizePlatform(p)
}

/** Parses `vN` or `vN.M` into a number ordering variants, or undefined. */
function variantLevel(variant: string): number | undefined {
  const m = /^v(\d+)(?:\.(\d+))?$/.exec(variant)
  if (m === null) return undefined
  return Number(m[1]) * 1000 + Number(m[2] ?? 0)
}

/** Architectures whose variants are ordered: a CPU of variant N runs variants ≤ N. */
const ORDERED_VARIANTS: Record<string, string> = { arm: 'v7', arm64: 'v8', amd64: 'v1' }

/**
 * How well `have` serves `want`: 0 is exact, higher is a worse (older-variant) fit, undefined
 * means it cannot run. Both must be normalised.
 */
function fit(want: Platform, have: Platform): number | undefined {
  if (want.os !== have.os || want.architecture !== have.architecture) return undefined
  // Windows: the build (first three parts of os.version) must agree; revisions do not matter.
  const wv = want['os.version']
  const hv = have['os.version']
  if (wv !== undefined && hv !== undefined && wv.split('.').slice(0, 3).join('.') !== hv.split('.').slice(0, 3).join('.')) return undefined
  const base = ORDERED_VARIANTS[want.architecture]
  if (base !== undefined) {
    const w = variantLevel(want.variant ?? base)
    const h = variantLevel(have.variant ?? base)
    if (w === undefined || h === undefined) return want.variant === have.variant ? 0 : undefined
    return h <= w ? w - h : undefined
  }
  if (want.variant === undefined) return have.variant === undefined ? 0 : 1
  if (have.variant === undefined) return 1
  return want.variant === have.variant ? 0 : undefined
}

/**
 * Whether an image built for `have` can run on `want`: same OS and architecture (after
 * normalisation) and a compatible variant. Variants of `arm` (v5 < v6 < v7 < v8), `arm64`
 * (v8 < v8.1 < … < v9) and `amd64` (v1 < … < v4) are ordered: a host runs its own and lower
 * variants. Missing variants are the defaults (`arm` v7, `arm64` v8, `amd64` v1).
 *
 * @example
 * ```ts
 * matchPlatform('linux/arm/v7', 'linux/arm/v6')      // true: a v7 CPU runs v6 code
 * matchPlatform('linux/arm/v6', 'linux/arm/v7')      // false
 * matchPlatform('linux/arm64', { os: 'linux', architecture: 'arm64', variant: 'v8' }) // true
 * ```
 */
export function matchPlatform(want: PlatformSpec, have: PlatformSpec): boolean {
  return fit(toPlatform(want), toPlatform(have)) !== undefined
}

/**
 * Whether an index entry is an attestation rather than an image: BuildKit's provenance/SBOM
 * manifests, marked with the platform `unknown/unknown` or the annotation
 * `vnd.docker.reference.type: attestation-manifest`.
 *
 * @example
 * ```ts
 * index.manifests.filter((m) => !isAttestation(m))
 * ```
 */
export function isAttestation(desc: Descriptor): boolean {
  if (desc.annotations?.[Annotation.DockerReferenceType] === ATTESTATION_MANIFEST) return true
  return desc.platform?.os === 'unknown' && desc.platform.architecture === 'unknown'
}

/**
 * The platforms an index offers, attestation entries left out, in index order.
 *
 * @example
 * ```ts
 * indexPlatforms(index).map(formatPlatform) // ['linux/amd64', 'linux/arm64/v8']
 * ```
 */
export function indexPlatforms(index: { manifests: readonly Descriptor[] }): Platform[] {
  return index.manifests.filter((m) => !isAttestation(m) && m.platform !== undefined).map((m) => m.platform as Platform)
}

/**
 * Thrown by {@link selectManifest} when no entry of an index can run on the wanted platform.
 * `available` lists what the index offers (attestations left out).
 *
 * @example
 * ```ts
 * catch (err) { if (err instanceof PlatformNotFoundError) console.log(err.available.map(formatPlatform)) }
 * ```
 */
export class PlatformNotFoundError extends OciError {
  override readonly name: string = 'PlatformNotFoundError'
  /** The platform asked for (normalised). */
  readonly wanted: Platform
  /** The platforms the index offers. */
  readonly available: Platform[]

  constructor(wanted: Platform, available: Platform[]) {
    const list = available.length === 0 ? 'the index lists no platforms' : `available: ${available.map(formatPlatform).join(', ')}`
    super('ERR_OCI_PLATFORM_NOT_FOUND', `no image for platform ${formatPlatform(wanted)} in the index (${list})`)
    this.wanted = wanted
    this.available = available
  }
}

/**
 * The entries of an index that can run on `want`, best first: exact variant first, then lower
 * variants in descending order; entries of equal fit keep their index order. Attestation entries
 * are skipped. Entries without a `platform` come last, as a fallback (their config says what
 * they are).
 *
 * @example
 * ```ts
 * matchingManifests(list, 'linux/arm/v7').map((d) => d.platform?.variant) // ['v7', 'v6', 'v5']
 * ```
 */
export function matchingManifests(index: { manifests: readonly Descriptor[] }, want: PlatformSpec = hostPlatform()): Descriptor[] {
  const w = toPlatform(want)
  const scored: { desc: Descriptor; score: number; order: number }[] = []
  index.manifests.forEach((desc, order) => {
    if (isAttestation(desc)) return
    if (desc.platform === undefined) {
      scored.push({ desc, score: Number.MAX_SAFE_INTEGER, order })
      return
    }
    const score = fit(w, normalizePlatform(desc.platform))
    if (score !== undefined) scored.push({ desc, score, order })
  })
  return scored.sort((a, b) => a.score - b.score || a.order - b.order).map((s) => s.desc)
}

/**
 * Picks the manifest for a platform from an index (default: this host). Prefers the exact
 * variant, then lower variants in descending order (an `arm/v7` host takes `v6`, then `v5`,
 * when there is no `v7`). Skips attestation entries. Throws {@link PlatformNotFoundError}
 * (`ERR_OCI_PLATFORM_NOT_FOUND`) listing the available platforms when nothing fits.
 *
 * @example
 * ```ts
 * const m = parseManifest(body, contentType)
 * if (m.kind === 'index') {
 *   const desc = selectManifest(m.value, 'linux/arm64')
 *   // fetch desc.digest next
 * }
 * ```
 */
export function selectManifest(index: { manifests: readonly Descriptor[] }, want: PlatformSpec = hostPlatform()): Descriptor {
  const w = toPlatform(want)
  const best = matchingManifests(index, w)[0]
  if (best === undefined) throw new PlatformNotFoundError(w, indexPlatforms(index))
  return best
}
