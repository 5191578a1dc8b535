/**
 * Authentication against a registry: Docker's token flow (RFC 6750 Bearer tokens from the
 * realm a 401's WWW-Authenticate names, with Basic credentials or an OAuth2 refresh token
 * when we have them), or plain Basic. Tokens are cached per realm, service and scope set and
 * reused until `expires_in` runs out; a 401 with `insufficient_scope` fetches a token for the
 * scopes the registry asked for.
 */
import { checkDocument } from '@ctr/oci'
import * as z from 'zod/mini'
import { RegistryError } from '../errors.js'
import type { Transport } from '../transport.js'
import { parseChallenges, type Challenge } from './challenge.js'
import type { Credentials } from './credentials.js'

interface CachedToken {
  token: string
  expiresAt: number
}

/** How a registry asked us to authenticate (remembered after the first 401). */
interface RegistryAuth {
  scheme: 'bearer' | 'basic'
  realm?: string
  service?: string
}

/** A token server's answer (Docker's token spec; OAuth2 servers say `access_token`). */
const TokenResponseSchema = z.looseObject({
  token: z.optional(z.string()),
  access_token: z.optional(z.string()),
  expires_in: z.optional(z.number()),
  issued_at: z.optional(z.string()),
})

/** Seconds of `expires_in` when a token server omits it (the token spec's default). */
const DEFAULT_EXPIRES_IN = 60
/** Refresh this long before expiry, so a token does not lapse in flight. */
const MARGIN_MS = 5_000

export class Authenticator {
  private readonly tokens = new Map<string, CachedToken>()
  private readonly registries = new Map<string, RegistryAuth>()
  /** Token requests made (for tests and diagnostics). */
  tokenRequests = 0

  constructor(
    private readonly transport: Transport,
    private readonly credentials: (registry: string) => Promise<Credentials | undefined>,
  ) {}

  /** An Authorization header for these scopes from what we already know, without a round trip. */
  async headerFor(registry: string, scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    const auth = this.registries.get(registry)
    if (!auth) return undefined
    if (auth.scheme === 'basic') return this.basic(registry)
    return this.bearer(registry, auth, scopes, signal)
  }

  /**
   * Answers a 401: reads its challenge, authenticates, and returns the header to retry with,
   * or undefined when there is nothing more we can do (no credentials for Basic).
   */
  async onUnauthorized(registry: string, wwwAuthenticate: string | undefined, scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    const challenges = parseChallenges(wwwAuthenticate ?? '')
    const bearer = challenges.find((c) => c.scheme === 'bearer')
    const basic = challenges.find((c) => c.scheme === 'basic')
    if (bearer?.params.realm) {
      const auth: RegistryAuth = { scheme: 'bearer', realm: bearer.params.realm, ...(bearer.params.service ? { service: bearer.params.service } : {}) }
      this.registries.set(registry, auth)
      const wanted = mergeScopes(scopes, challengeScopes(bearer))
      // A cached token was refused: it was too narrow or has been revoked; get a fresh one.
      this.tokens.delete(tokenKey(auth, wanted))
      return this.bearer(registry, auth, wanted, signal)
    }
    if (basic) {
      this.registries.set(registry, { scheme: 'basic' })
      return this.basic(registry)
    }
    return undefined
  }

  private async basic(registry: string): Promise<string | undefined> {
    const creds = await this.credentials(registry)
    if (!creds || !('username' in creds)) return undefined
    return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`
  }

  private async bearer(registry: string, auth: RegistryAuth, scopes: string[], signal?: AbortSignal): Promise<string> {
    const key = tokenKey(auth, scopes)
    const cached = this.tokens.get(key)
    if (cached && cached.expiresAt - MARGIN_MS > Date.now()) return `Bearer ${cached.token}`
    const fresh = await this.fetchToken(registry, auth, scopes, signal)
    this.tokens.set(key, fresh)
    return `Bearer ${fresh.token}`
  }

  private async fetchToken(registry: string, auth: RegistryAuth, scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    const creds = await this.credentials(registry)
    this.tokenRequests++
    const realm = new URL(auth.realm!)
    let res
    if (creds && 'identityToken' in creds) {
      // OAuth2 refresh-token grant, as `docker login` identity tokens require.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'ctr', ...(auth.service ? { service: auth.service } : {}) })
      if (scopes.length > 0) form.set('scope', scopes.join(' '))
      res = await this.transport.send(realm.toString(), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
        retry: true,
        ...(signal ? { signal } : {}),
      })
    } else {
      if (auth.service) realm.searchParams.set('service', auth.service)
      for (const s of scopes) realm.searchParams.append('scope', s)
      const headers: Record<string, string> = {}
      if (creds) headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`
      res = await this.transport.send(realm.toString(), { headers, ...(signal ? { signal } : {}) })
    }
    const text = await res.body.text()
    if (res.statusCode !== 200) {
      throw new RegistryError(res.statusCode === 401 || res.statusCode === 403 ? 'ERR_REGISTRY_UNAUTHORIZED' : 'ERR_REGISTRY_PROTOCOL', `token server ${realm.origin}${realm.pathname} answered ${res.statusCode} for ${scopes.join(' ') || 'no scope'}${creds ? '' : ' (no credentials configured for ' + registry + ')'}: ${text.slice(0, 200)}`, {
        status: res.statusCode,
        url: realm.toString(),
      })
    }
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (err) {
      throw new RegistryError('ERR_REGISTRY_PROTOCOL', `token server ${realm.origin} did not answer JSON`, { url: realm.toString(), cause: err })
    }
    let body: z.output<typeof TokenResponseSchema>
    try {
      body = checkDocument(TokenResponseSchema, json, { name: 'token' })
    } catch (err) {
      throw new RegistryError('ERR_REGISTRY_PROTOCOL', `token server ${realm.origin}: ${(err as Error).message}`, { url: realm.toString(), cause: err })
    }
    const token = body.token ?? body.access_token
    if (!token) throw new RegistryError('ERR_REGISTRY_PROTOCOL', `token server ${realm.origin} answered without a token`, { url: realm.toString() })
    const issued = body.issued_at ? Date.parse(body.issued_at) : Date.now()
    const expiresIn = body.expires_in && body.expires_in > 0 ? body.expires_in : DEFAULT_EXPIRES_IN
    return { token, expiresAt: (Number.isNaN(issued) ? Date.now() : Math.min(issued, Date.now())) + expiresIn * 1000 }
  }
}

function tokenKey(auth: RegistryAuth, scopes: string[]): string {
  return `${auth.realm}|${auth.service ?? ''}|${[...scopes].sort().join(' ')}`
}

/** Scopes the challenge names (`scope="repository:a:pull repository:b:pull"`). */
function challengeScopes(c: Challenge): string[] {
  return (c.params.scope ?? '').split(' ').filter(Boolean)
}

/** Union of scope sets, merging actions of the same resource (`repository:x:pull` + `repository:x:push`). */
export function mergeScopes(...sets: string[][]): string[] {
  const byResource = new Map<string, Set<string>>()
  for (const s of sets.flat()) {
    const last = s.lastIndexOf(':')
    if (last < 0) continue
    const resource = s.slice(0, last)
    const actions = byResource.get(resource) ?? new Set<string>()
    for (const a of s.slice(last + 1).split(',')) if (a) actions.add(a)
    byResource.set(resource, actions)
  }
  return [...byResource].map(([r, a]) => `${r}:${[...a].sort().join(',')}`).sort()
}

