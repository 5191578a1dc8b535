import { digestProblem, type Digest } from './digest.js'
import { OciError } from './errors.js'

/** The registry that names without a host refer to. */
export const DEFAULT_REGISTRY = 'docker.io'
/** The host that serves Docker Hub's registry API. */
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io'
/** The tag used when a reference has neither tag nor digest. */
export const DEFAULT_TAG = 'latest'
/** The longest name (`registry/repository`) accepted. */
export const NAME_MAX_LENGTH = 255

// The grammar of distribution/reference and of the OCI distribution spec:
//   path-component := [a-z0-9]+ (separator [a-z0-9]+)*      separator := [._] | __ | -+
//   domain         := host (":" port)?                       host := domain-name | "[" IPv6 "]"
//   tag            := [\w][\w.-]{0,127}
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/
const DOMAIN_NAME_RE = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*$/
const IPV6_RE = /^\[[a-fA-F0-9:.]+\]$/
const TAG_RE = /^[\w][\w.-]{0,127}$/
const IMAGE_ID_RE = /^[a-f0-9]{64}$/

function fail(input: string, problem: string): never {
  throw new OciError('ERR_OCI_INVALID_REFERENCE', `invalid reference ${JSON.stringify(input)}: ${problem}`)
}

/** Returns what is wrong with a registry host (with optional port), or undefined. */
function registryProblem(registry: string): string | undefined {
  let host = registry
  let port: string | undefined
  if (registry.startsWith('[')) {
    const close = registry.indexOf(']')
    if (close === -1) return `registry "${registry}" has an unclosed '['`
    host = registry.slice(0, close + 1)
    const rest = registry.slice(close + 1)
    if (rest !== '') {
      if (!rest.startsWith(':')) return `registry "${registry}" has characters after ']' that are not a port`
      port = rest.slice(1)
    }
    if (!IPV6_RE.test(host)) return `registry "${registry}" is not a valid IPv6 address in brackets`
  } else {
    const colon = registry.indexOf(':')
    if (colon !== -1) {
      host = registry.slice(0, colon)
      port = registry.slice(colon + 1)
    }
    if (host === '') return `registry "${registry}" has no host name`
    if (!DOMAIN_NAME_RE.test(host)) {
      return `registry "${registry}" is not a valid host name (letters, digits and '-' in dot-separated parts; IPv6 addresses go in brackets)`
    }
  }
  if (port !== undefined) {
    if (!/^[0-9]+$/.test(port)) return `registry "${registry}" has an invalid port "${port}"`
    if (Number(port) > 65535) return `registry "${registry}" has port ${port}, over 65535`
  }
  return undefined
}

/** Returns what is wrong with a repository path, or undefined. */
function repositoryProblem(repository: string): string | undefined {
  if (repository === '') return 'the repository name is empty'
  if (repository.startsWith('/')) return 'the repository name starts with "/"'
  if (repository.endsWith('/')) return 'the repository name ends with "/"'
  for (const component of repository.split('/')) {
    if (component === '') return `the repository name "${repository}" has an empty path component ("//")`
    if (!PATH_COMPONENT_RE.test(component)) {
      if (/[A-Z]/.test(component) && PATH_COMPONENT_RE.test(component.toLowerCase())) {
        return `the repository name must be lowercase ("${component}" has uppercase letters)`
      }
      return `the path component "${component}" is invalid: use lowercase letters and digits, separated by one '.', one '_', two '__' or any number of '-'`
    }
  }
  return undefined
}

function tagProblem(tag: string): string | undefined {
  if (tag === '') return "the tag after ':' is empty"
  if (tag.length > 128) return `the tag is ${tag.length} characters long; the limit is 128`
  if (!TAG_RE.test(tag)) return `the tag "${tag}" is invalid: use letters, digits, '_', '.' and '-', not starting with '.' or '-'`
  return undefined
}

/** The parts of a {@link Reference}. */
export interface ReferenceParts {
  /** The registry host, with a port if any: `docker.io`, `ghcr.io`, `localhost:5000`, `[::1]:5000`. */
  registry: string
  /** The repository path: `library/alpine`, `user/repo`. */
  repository: string
  /** The tag, if any. */
  tag?: string | undefined
  /** The digest, if any. */
  digest?: Digest | undefined
}

/**
 * A parsed, normalised image reference: `registry/repository[:tag][@digest]`.
 *
 * Build one with {@link parseReference}. When both a tag and a digest are given, both are kept
 * and the digest wins for fetching ({@link Reference.manifestReference}).
 *
 * @example
 * ```ts
 * const ref = parseReference('alpine')
 * ref.registry          // 'docker.io'
 * ref.repository        // 'library/alpine'
 * ref.tag               // 'latest'
 * ref.toString()        // 'docker.io/library/alpine:latest'
 * ref.familiar          // 'alpine:latest'
 * apiHost(ref)          // 'registry-1.docker.io'
 * ```
 */
export class Reference implements ReferenceParts {
  readonly registry: string
  readonly repository: string
  readonly tag: string | undefined
  readonly digest: Digest | undefined

  /**
   * Builds a reference from parts, validating each (throws `ERR_OCI_INVALID_REFERENCE`). No
   * normalisation is applied: use {@link parseReference} for user input.
   */
  constructor(parts: ReferenceParts) {
    const shown = `${parts.registry}/${parts.repository}${parts.tag === undefined ? '' : `:${parts.tag}`}${parts.digest === undefined ? '' : `@${parts.digest}`}`
    const problem =
      registryProblem(parts.registry) ??
      repositoryProblem(parts.repository) ??
      (parts.tag === undefined ? undefined : tagProblem(parts.tag)) ??
      (parts.digest === undefined ? undefined : digestProblem(parts.digest))
    if (problem !== undefined) fail(shown, problem)
    const name = `${parts.registry}/${parts.repository}`
    if (name.length > NAME_MAX_LENGTH) fail(shown, `the name "${name.slice(0, 40)}..." is ${name.length} characters long; the limit is ${NAME_MAX_LENGTH}`)
    this.registry = parts.registry
    this.repository = parts.repository
    this.tag = parts.tag
    this.digest = parts.digest
  }

  /** Parses a reference; same as {@link parseReference}. */
  static parse(input: string): Reference {
    return parseReference(input)
  }

  /** `registry/repository`, e.g. `docker.io/library/alpine`. */
  get name(): string {
    return `${this.registry}/${this.repository}`
  }

  /**
   * What to ask the registry for in `/v2/<repository>/manifests/<reference>`: the digest when
   * there is one, else the tag (`latest` when there is neither).
   */
  get manifestReference(): string {
    return this.digest ?? this.tag ?? DEFAULT_TAG
  }

  /** The short name Docker shows: `alpine`, `user/repo`, `ghcr.io/o/r`. */
  get familiarName(): string {
    if (this.registry !== DEFAULT_REGISTRY) return this.name
    const rest = this.repository.startsWith('library/') ? this.repository.slice('library/'.length) : undefined
    return rest !== undefined && !rest.includes('/') ? rest : this.repository
  }

  /** The short form with tag and digest: `alpine:latest`, `ghcr.io/o/r:1@sha256:…`. */
  get familiar(): string {
    return this.familiarName + this.#suffix()
  }

  #suffix(): string {
    return `${this.tag === undefined ? '' : `:${this.tag}`}${this.digest === undefined ? '' : `@${this.digest}`}`
  }

  /** A copy with another tag (the digest is dropped). */
  withTag(tag: string): Reference {
    return new Reference({ registry: this.registry, repository: this.repository, tag })
  }

  /** A copy pinned to a digest (the tag is kept for display). */
  withDigest(digest: Digest | string): Reference {
    return new Reference({ registry: this.registry, repository: this.repository, tag: this.tag, digest: digest as Digest })
  }

  /** Whether two references have the same canonical form. */
  equals(other: Reference | string): boolean {
    return this.toString() === (typeof other === 'string' ? parseReference(other).toString() : other.toString())
  }

  /** The canonical form: `docker.io/library/alpine:latest`, `ghcr.io/o/r:1@sha256:…`. */
  toString(): string {
    return this.name + this.#suffix()
  }

  /** Serialises as the canonical string. */
  toJSON(): string {
    return this.toString()
  }
}

/**
 * Parses an image reference the way Docker does and normalises it.
 *
 * - The first path component is a registry when it contains `.` or `:`, is `localhost`, or is
 *   an IPv6 address in brackets; otherwise the registry is `docker.io`.
 * - On `docker.io` (and its alias `index.docker.io`), one-component names get `library/`.
 * - Without tag and digest the tag is `latest`; with a digest and no tag there is no tag.
 * - Repository names must be lowercase path components; tags match `[\w][\w.-]{0,127}`;
 *   digests must be valid sha256/sha512 digests; `registry/repository` is at most 255
 *   characters.
 *
 * Invalid input throws {@link OciError} `ERR_OCI_INVALID_REFERENCE` naming the problem.
 *
 * @example
 * ```ts
 * parseReference('alpine').toString()                    // 'docker.io/library/alpine:latest'
 * parseReference('user/repo').toString()                 // 'docker.io/user/repo:latest'
 * parseReference('localhost:5000/x').registry            // 'localhost:5000'
 * parseReference('ghcr.io/o/r:v1').tag                   // 'v1'
 * parseReference('alpine:3.20@sha256:…').manifestReference // 'sha256:…'
 * parseReference('Alpine') // throws: the repository name "Alpine" must be lowercase
 * ```
 */
export function parseReference(input: string): Reference {
  if (typeof input !== 'string') throw new OciError('ERR_OCI_INVALID_REFERENCE', `invalid reference: expected a string, got ${typeof input}`)
  if (input === '') fail(input, 'it is empty')
  if (/\s/.test(input)) fail(input, 'it contains whitespace')
  if (input.includes('://')) fail(input, 'a reference has no scheme; drop the "…://" prefix')
  if (IMAGE_ID_RE.test(input)) fail(input, 'a 64-character hex string is an image ID, not a repository name')

  let rest = input
  let digest: Digest | undefined
  const at = rest.indexOf('@')
  if (at !== -1) {
    const d = rest.slice(at + 1)
    rest = rest.slice(0, at)
    if (d.includes('@')) fail(input, "it has more than one '@'")
    if (d === '') fail(input, "the digest after '@' is empty")
    const problem = digestProblem(d)
    if (problem !== undefined) fail(input, problem)
    digest = d as Digest
  }

  let tag: string | undefined
  const colon = rest.lastIndexOf(':')
  if (colon > rest.lastIndexOf('/') && !(rest.startsWith('[') && !rest.includes('/'))) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    const problem = tagProblem(tag)
    if (problem !== undefined) fail(input, problem)
  }
  if (rest === '') fail(input, 'the repository name is missing')

  let registry = DEFAULT_REGISTRY
  let repository = rest
  const slash = rest.indexOf('/')
  if (slash !== -1) {
    const first = rest.slice(0, slash)
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      registry = first
      repository = rest.slice(slash + 1)
      if (repository === '') fail(input, `the repository name after the registry "${registry}/" is missing`)
    }
  } else if (rest.startsWith('[')) {
    fail(input, `"${rest}" looks like a registry but no repository follows it`)
  }
  const registryIssue = registryProblem(registry)
  if (registryIssue !== undefined) fail(input, registryIssue)
  if (registry === 'index.docker.io') registry = DEFAULT_REGISTRY
  if (registry === DEFAULT_REGISTRY && !repository.includes('/') && repository !== '') repository = `library/${repository}`

  const repositoryIssue = repositoryProblem(repository)
  if (repositoryIssue !== undefined) fail(input, repositoryIssue)
  const name = `${registry}/${repository}`
  if (name.length > NAME_MAX_LENGTH) fail(input, `the name is ${name.length} characters long; the limit is ${NAME_MAX_LENGTH}`)

  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG
  return new Reference({ registry, repository, tag, digest })
}

/**
 * Whether a string is a valid image reference.
 *
 * @example
 * ```ts
 * isValidReference('alpine:3.20') // true
 * isValidReference('Alpine')      // false
 * ```
 */
export function isValidReference(input: string): boolean {
  try {
    parseReference(input)
    return true
  } catch {
    return false
  }
}

/**
 * The host to send registry API requests to for a reference or registry name:
 * `registry-1.docker.io` for Docker Hub, the registry itself otherwise.
 *
 * @example
 * ```ts
 * apiHost(parseReference('alpine'))   // 'registry-1.docker.io'
 * apiHost('127.0.0.1:5000')           // '127.0.0.1:5000'
 * ```
 */
export function apiHost(ref: Reference | ReferenceParts | string): string {
  const registry = typeof ref === 'string' ? ref : ref.registry
  return registry === DEFAULT_REGISTRY || registry === 'index.docker.io' ? DOCKER_HUB_API_HOST : registry
}
