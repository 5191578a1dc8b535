/**
 * Credentials for a registry, found as Docker finds them in `config.json`
 * (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): a per-registry credential
 * helper (`credHelpers`) first, then the default store (`credsStore`), then `auths`.
 * Helpers are the `docker-credential-<name>` programs, spoken to on stdin/stdout.
 */
import { execFile } from 'node:child_process'
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import * as z from 'zod/mini'
import { parseDocument } from '@ctr/oci'
import { RegistryError } from '../errors.js'

/** A user name and password (or a registry token as password), or an identity token. */
export type Credentials = { username: string; password: string } | { identityToken: string }

// zod/mini, as in @ctr/oci: the same checks, cheaper to build, and a bundle keeps only what they use.
const configSchema = z.looseObject({
  auths: z.optional(
    z.record(z.string(), z.looseObject({ auth: z.optional(z.string()), identitytoken: z.optional(z.string()), username: z.optional(z.string()), password: z.optional(z.string()) })),
  ),
  credsStore: z.optional(z.string()),
  credHelpers: z.optional(z.record(z.string(), z.string())),
})

/** The names Docker Hub goes by in config.json. */
const DOCKER_HUB = ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/', 'https://index.docker.io/v1', 'index.docker.io/v1']

/** Keys under which a registry's entry may appear in config.json `auths`. */
export function configKeys(registry: string): string[] {
  if (DOCKER_HUB.includes(registry)) return DOCKER_HUB
  return [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`]
}

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker'), 'config.json')
}

/** Asks `docker-credential-<helper> get` for a registry's credentials. */
async function fromHelper(helper: string, serverURL: string): Promise<Credentials | undefined> {
  const program = `docker-credential-${helper}`
  const out = await new Promise<string>((resolve, reject) => {
    const child = execFile(program, ['get'], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) {
        // "credentials not found in native keychain" is how helpers say "none"
        if (/not found/i.test(stdout + stderr)) resolve('')
        else reject(new RegistryError('ERR_REGISTRY_AUTH_CONFIG', `${program} get for ${serverURL} failed: ${(stderr || err.message).trim()}`, { cause: err }))
        return
      }
      resolve(stdout)
    })
    // A helper that exits without reading its stdin (a broken or missing one) makes this
    // write fail with EPIPE: its exit status already tells us what happened.
    child.stdin?.on('error', () => undefined)
    child.stdin?.end(serverURL)
  })
  if (!out.trim()) return undefined
  let parsed: { Username?: string; Secret?: string }
  try {
    parsed = JSON.parse(out) as { Username?: string; Secret?: string }
  } catch (err) {
    throw new RegistryError('ERR_REGISTRY_AUTH_CONFIG', `${program} get printed something that is not JSON`, { cause: err })
  }
  if (!parsed.Secret) return undefined
  // Docker's convention: the user name <token> means the secret is an identity token.
  return parsed.Username === '<token>' ? { identityToken: parsed.Secret } : { username: parsed.Username ?? '', password: parsed.Secret }
}

/**
 * The credentials config.json has for `registry` (a host like `ghcr.io` or `docker.io`), or
 * undefined. A malformed file or a failing helper is an ERR_REGISTRY_AUTH_CONFIG.
 */
export async function credentialsFromDockerConfig(registry: string, file = dockerConfigPath()): Promise<Credentials | undefined> {
  let text: string
  try {
    text = await fs.readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new RegistryError('ERR_REGISTRY_AUTH_CONFIG', `cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
  let config: z.infer<typeof configSchema>
  try {
    // parseDocument: errors that name the field (`config.json.auths["ghcr.io"].auth: expected a string, got 1`).
    config = parseDocument(configSchema, text, { name: 'config.json' })
  } catch (err) {
    throw new RegistryError('ERR_REGISTRY_AUTH_CONFIG', `${file} is not a valid Docker config: ${(err as Error).message}`, { cause: err })
  }
  const keys = configKeys(registry)
  const serverURL = DOCKER_HUB.includes(registry) ? 'https://index.docker.io/v1/' : registry
  const helper = keys.map((k) => config.credHelpers?.[k]).find(Boolean)
  if (helper) return fromHelper(helper, serverURL)
  if (config.credsStore) {
    const found = await fromHelper(config.credsStore, serverURL)
    if (found) return found
  }
  for (const k of keys) {
    const entry = config.auths?.[k]
    if (!entry) continue
    if (entry.identitytoken) return { identityToken: entry.identitytoken }
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      if (colon < 0) throw new RegistryError('ERR_REGISTRY_AUTH_CONFIG', `${file}: auths["${k}"].auth is not base64 of user:password`)
      return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
    }
    if (entry.username && entry.password) return { username: entry.username, password: entry.password }
  }
  return undefined
}
