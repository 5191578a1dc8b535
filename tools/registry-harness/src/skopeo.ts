/** Debian's skopeo, run hermetically against the harness's registries. */
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { ensureTools, makeTempDir, run, Tools } from './system.js'

/** What skopeo needs to know about a registry: a {@link Registry} fits. */
export interface SkopeoTarget {
  /** The registry's base URL; `http:` turns TLS verification off (skopeo then falls back to HTTP). */
  url: string
  /** A directory with the CA as `ca.crt`. */
  certDir?: string
  /** Credentials (Basic, or for the token issuer). */
  credentials?: { username: string; password: string }
}

/**
 * The flags skopeo needs for `registry`: `side` is `src` or `dest` for `skopeo copy`, or
 * `plain` for `inspect`, `list-tags`, `delete` (which take unprefixed flags).
 *
 * @example
 * ```ts
 * await skopeo(['copy', '--all', ...skopeoFlags(registry, 'src'), `docker://${ref}`, `oci:${dir}:tag`])
 * await skopeo(['inspect', '--raw', ...skopeoFlags(registry, 'plain'), `docker://${ref}`])
 * ```
 */
export function skopeoFlags(registry: SkopeoTarget, side: 'src' | 'dest' | 'plain'): string[] {
  const p = side === 'plain' ? '' : `${side}-`
  const out: string[] = []
  if (registry.url.startsWith('http:')) out.push(`--${p}tls-verify=false`)
  else if (registry.certDir !== undefined) out.push(`--${p}cert-dir=${registry.certDir}`)
  if (registry.credentials !== undefined) out.push(`--${p}creds=${registry.credentials.username}:${registry.credentials.password}`)
  return out
}

let authFile: string | undefined

/**
 * Runs `skopeo --insecure-policy ARGS` with an empty auth file of its own (so no
 * `~/.docker/config.json` or `auth.json` of the machine leaks in). Installs skopeo if missing.
 *
 * @example
 * ```ts
 * const { stdout } = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${image.reference}`])
 * ```
 */
export async function skopeo(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string }> {
  await ensureTools(['skopeo'])
  if (authFile === undefined) {
    authFile = path.join(makeTempDir('skopeo-'), 'auth.json')
    writeFileSync(authFile, '{"auths":{}}\n')
  }
  const env: NodeJS.ProcessEnv = { ...process.env, REGISTRY_AUTH_FILE: authFile }
  return run(Tools.skopeo, ['--insecure-policy', ...args], { env, timeoutMs: options.timeoutMs ?? 300_000 })
}
