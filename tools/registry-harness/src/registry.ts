/**
 * Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 with a temporary root: plain HTTP,
 * TLS from a test CA, htpasswd Basic auth, or Bearer tokens from {@link startTokenIssuer}.
 */
import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream, promises as fs } from 'node:fs'
import path from 'node:path'
import bcrypt from 'bcryptjs'
import { freePort, httpRequest, LOOPBACK, sleep } from './net.js'
import { cleanEnv, ensureTools, HarnessError, makeTempDir, removeTempDir, spawnManaged, stopChild, Tools } from './system.js'
import { createCa, createServerCert } from './tls.js'
import { startTokenIssuer, type TokenIssuer, type TokenIssuerOptions } from './token-issuer.js'

/** The credentials the harness uses when none are given. */
export const TEST_USER = { username: 'tester', password: 'test-password' } as const

/** A username and password. */
export interface Credentials {
  /** The username. */
  username: string
  /** The password. */
  password: string
}

/** htpasswd Basic auth: `users` maps usernames to passwords (stored bcrypt-hashed). */
export interface BasicAuthOptions {
  /** Selects Basic auth. */
  type: 'basic'
  /** username → password. Default: {@link TEST_USER}. */
  users?: Record<string, string>
  /** The realm in `WWW-Authenticate`. Default `ctr-registry-harness`. */
  realm?: string
}

/** Bearer token auth through a token issuer started with the registry. */
export interface TokenAuthOptions extends TokenIssuerOptions {
  /** Selects Bearer token auth. */
  type: 'token'
}

/** Options of {@link startRegistry}. */
export interface RegistryOptions {
  /** Serve HTTPS with a certificate from a fresh test CA (`caPem`, `certDir`). Default false. */
  tls?: boolean
  /** Authentication: none (default), htpasswd Basic, or Bearer tokens. */
  auth?: BasicAuthOptions | TokenAuthOptions
  /** A fixed port (default: a free ephemeral one). */
  port?: number
  /**
   * Regular expressions (Go syntax) that foreign-layer `urls` in pushed manifests must match.
   * Distribution refuses every manifest with `urls` unless an allow list is set. Default: any
   * http(s) URL on 127.0.0.1 or localhost.
   */
  allowedForeignUrls?: string[]
  /** Extra configuration, deep-merged over the generated one. */
  config?: Record<string, unknown>
  /** The registry's log level. Default `warn`. */
  logLevel?: 'error' | 'warn' | 'info' | 'debug'
  /** How long to wait for `GET /v2/` to answer. Default 20 s. */
  startTimeoutMs?: number
}

/** A running registry; see {@link startRegistry}. */
export interface Registry {
  /** `127.0.0.1:PORT`: the registry part of image references. */
  readonly host: string
  /** `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`. */
  readonly url: string
  /** The port. */
  readonly port: number
  /** Whether it serves HTTPS. */
  readonly tls: boolean
  /** The temporary directory holding config, storage, certificates and the log. */
  readonly rootDir: string
  /** The storage root (`rootDir/storage`). */
  readonly storageDir: string
  /** The config file written for the registry (JSON, which is YAML). */
  readonly configPath: string
  /** The generated configuration. */
  readonly config: Record<string, unknown>
  /** The test CA's certificate (PEM) when `tls` is on. */
  readonly caPem?: string
  /** A directory with the CA as `ca.crt`: skopeo's `--src-cert-dir`/`--dest-cert-dir`. */
  readonly certDir?: string
  /** The auth mode. */
  readonly authType: 'none' | 'basic' | 'token'
  /** All accepted users (username → password); empty without auth. */
  readonly users: Record<string, string>
  /** The first user, when there is auth. */
  readonly credentials?: Credentials
  /** The token issuer in `token` mode. */
  readonly tokenIssuer?: TokenIssuer
  /** The registry's pid. */
  readonly pid: number
  /** The registry's stdout and stderr so far. */
  logs(): Promise<string>
  /** Stops the registry (and its token issuer) and removes `rootDir`. */
  stop(): Promise<void>
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Deep-merges `extra` into `base` (objects merged, everything else replaced).
 * @internal
 */
export function deepMerge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(extra)) {
    const prev = out[k]
    out[k] = isPlainObject(prev) && isPlainObject(v) ? deepMerge(prev, v) : v
  }
  return out
}

/**
 * Writes an htpasswd file with bcrypt hashes (`$2b$`, cost 5: fast, and distribution accepts it).
 * @internal
 */
export async function writeHtpasswd(file: string, users: Record<string, string>): Promise<void> {
  const lines = Object.entries(users).map(([user, pass]) => `${user}:${bcrypt.hashSync(pass, 5)}`)
  await fs.writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 })
}

/**
 * Starts Debian's `docker-registry serve CONFIG` on 127.0.0.1 with a temporary storage root and
 * waits until `GET /v2/` answers (200, or 401 with auth). The config (written as JSON, which is
 * YAML) enables deletes, logs at `warn` and allows foreign-layer URLs on loopback. The process
 * gets a clean environment (distribution reads every `REGISTRY_*` variable as configuration),
 * dies with this process, and `stop()` removes the temporary root.
 *
 * Modes:
 * - plain HTTP, no auth: `startRegistry()`;
 * - TLS from a test CA with htpasswd Basic auth: `startRegistry({ tls: true, auth: { type: 'basic' } })`
 *   (pass `caPem` to clients, or `certDir` to skopeo);
 * - Bearer tokens: `startRegistry({ auth: { type: 'token', users: { alice: 'pw' }, anonymous: 'pull' } })`.
 *
 * Installs the Debian packages it needs when missing (see {@link ensureTools}).
 *
 * @example
 * ```ts
 * const registry = await startRegistry({ tls: true, auth: { type: 'basic' } })
 * // registry.host === '127.0.0.1:PORT', registry.caPem, registry.credentials
 * await registry.stop()
 * ```
 */
export async function startRegistry(options: RegistryOptions = {}): Promise<Registry> {
  await ensureTools(['registry', 'openssl'])
  const rootDir = makeTempDir('registry-')
  try {
    return await startIn(rootDir, options)
  } catch (err) {
    removeTempDir(rootDir)
    throw err
  }
}

async function startIn(rootDir: string, options: RegistryOptions): Promise<Registry> {
  const storageDir = path.join(rootDir, 'storage')
  await fs.mkdir(storageDir)
  const tls = options.tls ?? false
  const scheme = tls ? 'https' : 'http'
  let caPem: string | undefined
  let certDir: string | undefined
  const http: Record<string, unknown> = {
    secret: randomBytes(16).toString('hex'),
    headers: { 'X-Content-Type-Options': ['nosniff'] },
  }
  if (tls) {
    const tlsDir = path.join(rootDir, 'tls')
    await fs.mkdir(tlsDir)
    const ca = await createCa(tlsDir)
    const server = await createServerCert(tlsDir, ca)
    caPem = ca.certPem
    certDir = path.join(rootDir, 'certs.d')
    await fs.mkdir(certDir)
    await fs.writeFile(path.join(certDir, 'ca.crt'), ca.certPem)
    http.tls = { certificate: server.certPath, key: server.keyPath }
  }

  let authType: Registry['authType'] = 'none'
  let users: Record<string, string> = {}
  let tokenIssuer: TokenIssuer | undefined
  let auth: Record<string, unknown> | undefined
  if (options.auth?.type === 'basic') {
    authType = 'basic'
    users = options.auth.users ?? { [TEST_USER.username]: TEST_USER.password }
    const htpasswd = path.join(rootDir, 'htpasswd')
    await writeHtpasswd(htpasswd, users)
    auth = { htpasswd: { realm: options.auth.realm ?? 'ctr-registry-harness', path: htpasswd } }
  } else if (options.auth?.type === 'token') {
    authType = 'token'
    const { type: _type, ...issuerOptions } = options.auth
    users = issuerOptions.users ?? { [TEST_USER.username]: TEST_USER.password }
    const tokenDir = path.join(rootDir, 'token')
    await fs.mkdir(tokenDir)
    tokenIssuer = await startTokenIssuer(tokenDir, { ...issuerOptions, users })
    auth = {
      token: {
        realm: tokenIssuer.realm,
        service: tokenIssuer.service,
        issuer: tokenIssuer.issuer,
        rootcertbundle: tokenIssuer.certPath,
      },
    }
  }

  const baseConfig = (port: number): Record<string, unknown> => {
    let config: Record<string, unknown> = {
      version: 0.1,
      log: { level: options.logLevel ?? 'warn', formatter: 'text', accesslog: { disabled: true } },
      storage: {
        filesystem: { rootdirectory: storageDir },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { ...http, addr: `${LOOPBACK}:${port}` },
      health: { storagedriver: { enabled: false } },
      validation: {
        manifests: {
          urls: { allow: options.allowedForeignUrls ?? ['^https?://(127\\.0\\.0\\.1|localhost)(:[0-9]+)?/'] },
        },
      },
    }
    if (auth !== undefined) config.auth = auth
    if (options.config !== undefined) config = deepMerge(config, options.config)
    return config
  }

  const configPath = path.join(rootDir, 'config.yml')
  const logPath = path.join(rootDir, 'registry.log')
  const timeoutMs = options.startTimeoutMs ?? 20_000
  let lastError: unknown
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = options.port ?? (await freePort())
    const config = baseConfig(port)
    await fs.writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`)
    const log = createWriteStream(logPath, { flags: 'a' })
    await new Promise((resolve) => log.once('open', resolve))
    const child = spawnManaged(Tools.registry, ['serve', configPath], {
      cwd: rootDir,
      env: cleanEnv(rootDir),
      stdio: ['ignore', log, log],
    })
    const url = `${scheme}://${LOOPBACK}:${port}`
    try {
      await waitReady(child, url, caPem, timeoutMs, logPath)
    } catch (err) {
      await stopChild(child)
      log.close()
      lastError = err
      const text = await fs.readFile(logPath, 'utf8').catch(() => '')
      if (options.port === undefined && /address already in use/.test(text)) {
        await fs.writeFile(logPath, '')
        continue
      }
      await tokenIssuer?.stop()
      throw err
    }
    const host = `${LOOPBACK}:${port}`
    const first = Object.entries(users)[0]
    let stopped: Promise<void> | undefined
    const registry: Registry = {
      host,
      url,
      port,
      tls,
      rootDir,
      storageDir,
      configPath,
      config,
      ...(caPem !== undefined ? { caPem } : {}),
      ...(certDir !== undefined ? { certDir } : {}),
      authType,
      users,
      ...(first !== undefined && authType !== 'none' ? { credentials: { username: first[0], password: first[1] } } : {}),
      ...(tokenIssuer !== undefined ? { tokenIssuer } : {}),
      pid: child.pid ?? -1,
      logs: () => fs.readFile(logPath, 'utf8').catch(() => ''),
      stop() {
        stopped ??= (async () => {
          await stopChild(child)
          log.close()
          await tokenIssuer?.stop()
          removeTempDir(rootDir)
        })()
        return stopped
      },
    }
    return registry
  }
  await tokenIssuer?.stop()
  throw lastError instanceof Error ? lastError : new HarnessError('registry did not start')
}

async function waitReady(child: ChildProcess, url: string, ca: string | undefined, timeoutMs: number, logPath: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let exited = false
  child.once('exit', () => {
    exited = true
  })
  for (;;) {
    if (exited || child.exitCode !== null) {
      const text = await fs.readFile(logPath, 'utf8').catch(() => '')
      throw new HarnessError(`docker-registry exited (${child.exitCode ?? child.signalCode}) before serving: ${text.trim().slice(-2000)}`)
    }
    try {
      const res = await httpRequest(`${url}/v2/`, { ...(ca !== undefined ? { ca } : {}), timeoutMs: 2000 })
      if (res.status === 200 || res.status === 401) return
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      const text = await fs.readFile(logPath, 'utf8').catch(() => '')
      throw new HarnessError(`docker-registry did not answer GET ${url}/v2/ within ${timeoutMs} ms: ${text.trim().slice(-2000)}`)
    }
    await sleep(50)
  }
}
