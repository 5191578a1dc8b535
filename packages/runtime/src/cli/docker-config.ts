/**
 * `ctr login` / `ctr logout`: credentials in Docker's `config.json` (`$DOCKER_CONFIG/config.json`
 * or `~/.docker/config.json`), under `auths` as `base64(user:password)` — where
 * `@ctr/registry-client` (and Docker, podman, skopeo) read them. The file is replaced
 * atomically (temporary file, fsync, rename) with mode 0600; every other key is kept.
 */
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { dockerConfigPath } from '@ctr/registry-client'

/** Docker Hub's key in config.json. */
export const DOCKER_HUB_KEY = 'https://index.docker.io/v1/'
const DOCKER_HUB_NAMES = ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']

/** `https://ghcr.io/`, `ghcr.io` → `ghcr.io`; Docker Hub's names → `docker.io`. */
export function normalizeServer(server: string | undefined): string {
  if (!server) return 'docker.io'
  let s = server.trim().replace(/^[a-z]+:\/\//i, '')
  s = s.replace(/\/+$/, '').replace(/\/v[12]$/, '')
  if (s.includes('/')) s = s.slice(0, s.indexOf('/'))
  return DOCKER_HUB_NAMES.includes(s.toLowerCase()) ? 'docker.io' : s
}

/** The keys a registry's entry may be stored under (so a re-login replaces them all). */
function aliases(server: string): string[] {
  if (server === 'docker.io') return [DOCKER_HUB_KEY, 'https://index.docker.io/v1', 'index.docker.io', 'docker.io', 'registry-1.docker.io']
  return [server, `https://${server}`, `http://${server}`, `https://${server}/v1/`, `https://${server}/v2/`]
}

export function configKey(server: string): string {
  return server === 'docker.io' ? DOCKER_HUB_KEY : server
}

type Config = Record<string, unknown> & { auths?: Record<string, Record<string, unknown>>; credsStore?: string; credHelpers?: Record<string, string> }

async function readConfig(file: string): Promise<Config> {
  let text: string
  try {
    text = await fs.readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw new Error(`cannot read ${file}: ${(err as Error).message}`, { cause: err })
  }
  if (text.trim() === '') return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new Error(`${file} is not valid JSON (left untouched): ${(err as Error).message}`, { cause: err })
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`${file} is not a JSON object (left untouched)`)
  return parsed as Config
}

async function writeConfig(file: string, config: Config): Promise<void> {
  const dir = path.dirname(file)
  await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${randomBytes(6).toString('hex')}`)
  const fh = await fs.open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(JSON.stringify(config, null, '\t') + '\n')
    await fh.chmod(0o600)
    await fh.sync()
  } catch (err) {
    await fh.close().catch(() => {})
    await fs.rm(tmp, { force: true })
    throw err
  } finally {
    await fh.close().catch(() => {})
  }
  try {
    await fs.rename(tmp, file)
  } catch (err) {
    await fs.rm(tmp, { force: true })
    throw err
  }
  const d = await fs.open(dir, 'r')
  try {
    await d.sync()
  } finally {
    await d.close()
  }
}

/**
 * Saves credentials for `server`. Returns a warning when a credential helper configured in
 * the file would be asked first (Docker's order), so the saved entry would not be used.
 */
export async function saveCredentials(server: string, username: string, password: string, file = dockerConfigPath()): Promise<{ file: string; warning?: string }> {
  const config = await readConfig(file)
  const auths = { ...(config.auths ?? {}) }
  for (const k of aliases(server)) delete auths[k]
  auths[configKey(server)] = { auth: Buffer.from(`${username}:${password}`, 'utf8').toString('base64') }
  config.auths = auths
  await writeConfig(file, config)
  const helper = aliases(server).map((k) => config.credHelpers?.[k]).find(Boolean) ?? config.credsStore
  return { file, ...(helper ? { warning: `${file} names the credential helper docker-credential-${helper}, which is asked before "auths"` } : {}) }
}

/** Removes a registry's entries; false when there were none. */
export async function removeCredentials(server: string, file = dockerConfigPath()): Promise<boolean> {
  const config = await readConfig(file)
  if (!config.auths) return false
  let found = false
  for (const k of aliases(server)) {
    if (k in config.auths) {
      delete config.auths[k]
      found = true
    }
  }
  if (found) await writeConfig(file, config)
  return found
}
