/**
 * A token issuer implementing Docker's token authentication spec, for distribution's
 * `auth.token`: `GET realm?service=…&scope=…` (and the OAuth2 `POST` form), Basic credentials
 * or anonymous, and JWTs signed with ES256 or RS256 carrying the signing certificate in `x5c`.
 */
import { createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto'
import http from 'node:http'
import { closeServer, listenLoopback, LOOPBACK } from './net.js'
import { createSigningCert, type CertificateFiles } from './tls.js'

/** One access grant in a token: what a subject may do on a resource. */
export interface Access {
  /** The resource type: `repository`, `registry`, … */
  type: string
  /** The resource name: a repository name, or `catalog`. */
  name: string
  /** The granted actions: `pull`, `push`, `delete`, `*`. */
  actions: string[]
}

/** A scope as a client asked for it. */
export interface RequestedScope {
  /** The resource type (`repository`). */
  type: string
  /** The resource name (`library/busybox`). */
  name: string
  /** The actions asked for (`pull`, `push`). */
  actions: string[]
}

/**
 * Decides what a subject gets for a requested scope; returns the granted actions (a subset of
 * `scope.actions`, or `[]`). `subject` is `undefined` for anonymous requests.
 */
export type Authorizer = (subject: string | undefined, scope: RequestedScope) => string[]

/** Options of {@link startTokenIssuer}. */
export interface TokenIssuerOptions {
  /** The `service` (the registry's name, the token's `aud`). Default `ctr-registry-harness`. */
  service?: string
  /** The token's `iss`. Default `ctr-token-issuer`. */
  issuer?: string
  /** Accepted Basic credentials: username → password. */
  users?: Record<string, string>
  /**
   * What anonymous requests (no Authorization) get: `pull` (default, like a public registry) or
   * `none` (every grant empty: the registry then answers 401 to the token).
   */
  anonymous?: 'pull' | 'none'
  /**
   * Decides the grants. Default: an authenticated user gets every action asked for (`pull`,
   * `push`, `delete`, `*`) on any repository and `registry:catalog:*`; anonymous gets
   * `pull` on repositories when {@link TokenIssuerOptions.anonymous} is `pull`.
   */
  authorize?: Authorizer
  /** `expires_in` in the answer and the lifetime of the JWT, in seconds. Default 300. */
  expiresIn?: number
  /**
   * The JWT's own lifetime (its `exp` − `iat`) when it should differ from `expiresIn`. Note
   * distribution 2.8 accepts a JWT up to 60 s after its `exp` (leeway).
   */
  jwtLifetime?: number
  /** Whether to omit `expires_in` from answers (clients must then assume 60 s). */
  omitExpiresIn?: boolean
  /** Signing algorithm: `ES256` (P-256, default) or `RS256`. */
  algorithm?: 'ES256' | 'RS256'
  /** A fixed port (default: ephemeral). */
  port?: number
}

/** A token request the issuer saw. */
export interface TokenRequestRecord {
  /** `GET` (Docker's token spec) or `POST` (OAuth2 form). */
  method: string
  /** The path and query string, as sent. */
  url: string
  /** When it arrived (ms since the epoch). */
  time: number
  /** The authenticated user, or `undefined` for anonymous. */
  subject: string | undefined
  /** Whether an Authorization header was sent at all. */
  authorization: boolean
  /** The `service` parameter. */
  service: string | undefined
  /** The raw scope strings, one per scope (space-separated values split). */
  scopes: string[]
  /** The `account` parameter. */
  account: string | undefined
  /** The grant type of a POST (`password`, `refresh_token`). */
  grantType?: string
  /** What was granted (empty when the request failed). */
  granted: Access[]
  /** The HTTP status of the answer. */
  status: number
}

/** A running token issuer; see {@link startTokenIssuer}. */
export interface TokenIssuer {
  /** Base URL, `http://127.0.0.1:PORT`. */
  readonly url: string
  /** The realm to put in the registry config: `${url}/token`. */
  readonly realm: string
  /** The service name (`aud`). */
  readonly service: string
  /** The issuer name (`iss`). */
  readonly issuer: string
  /** The signing certificate (PEM): the registry's `rootcertbundle`. */
  readonly certPem: string
  /** The path of the signing certificate file. */
  readonly certPath: string
  /** Every request so far, oldest first. */
  readonly requests: TokenRequestRecord[]
  /** How many tokens were issued (successful answers). */
  readonly issued: number
  /** The current options (mutable: change `expiresIn`, `users`, `anonymous` between tests). */
  readonly options: Required<Pick<TokenIssuerOptions, 'expiresIn' | 'anonymous' | 'users'>> & TokenIssuerOptions
  /** Signs a token directly, without HTTP (e.g. to craft expired or under-scoped tokens). */
  sign(subject: string | undefined, access: Access[], lifetimeSeconds?: number): string
  /** Forgets the recorded requests and resets the count. */
  reset(): void
  /** Stops the server. */
  stop(): Promise<void>
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url')
}

/**
 * Signs a JWT the way distribution 2.8 verifies it: header `{typ, alg, x5c}` where `x5c` holds
 * the base64 (standard, padded) DER of the signing certificate; ES256 signatures in JOSE's raw
 * `r || s` form.
 * @internal
 */
export function signJwt(claims: Record<string, unknown>, key: KeyObject, certDer: Buffer, alg: 'ES256' | 'RS256'): string {
  const header = { typ: 'JWT', alg, x5c: [certDer.toString('base64')] }
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`
  const signature =
    alg === 'ES256' ? sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }) : sign('sha256', Buffer.from(input), key)
  return `${input}.${b64url(signature)}`
}

/**
 * Parses `type:name:actions` (the name may itself contain `:` in theory; type is before the
 * first, actions after the last).
 * @internal
 */
export function parseScope(scope: string): RequestedScope | undefined {
  const first = scope.indexOf(':')
  const last = scope.lastIndexOf(':')
  if (first <= 0 || last === first) return undefined
  const type = scope.slice(0, first)
  const name = scope.slice(first + 1, last)
  const actions = scope
    .slice(last + 1)
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean)
  return { type: type.replace(/\(.*\)$/, ''), name, actions }
}

const KNOWN_ACTIONS = new Set(['pull', 'push', 'delete', '*'])

function defaultAuthorizer(anonymous: () => 'pull' | 'none'): Authorizer {
  return (subject, scope) => {
    if (subject === undefined) {
      if (anonymous() === 'pull' && scope.type === 'repository') return scope.actions.filter((a) => a === 'pull')
      return []
    }
    if (scope.type === 'repository') return scope.actions.filter((a) => KNOWN_ACTIONS.has(a))
    if (scope.type === 'registry' && scope.name === 'catalog') return scope.actions.filter((a) => a === '*')
    return []
  }
}

function mergeAccess(list: Access[]): Access[] {
  const out = new Map<string, Access>()
  for (const a of list) {
    const key = `${a.type}\u0000${a.name}`
    const prev = out.get(key)
    if (prev === undefined) out.set(key, { type: a.type, name: a.name, actions: [...new Set(a.actions)] })
    else prev.actions = [...new Set([...prev.actions, ...a.actions])]
  }
  return [...out.values()]
}

/**
 * Starts a token issuer on 127.0.0.1 (an ephemeral port unless `port` is given) with a fresh
 * self-signed signing certificate written into `dir`.
 *
 * Answers `GET /token?service=S&scope=repository:NAME:pull,push&scope=…` with
 * `{ token, access_token, expires_in, issued_at }`, `POST /token` (form: `grant_type=password`
 * with `username`/`password`, or `refresh_token`) with `{ access_token, refresh_token?,
 * expires_in, issued_at, scope }`. Wrong credentials get 401; an unknown `service` gets 400.
 *
 * @example
 * ```ts
 * const issuer = await startTokenIssuer(dir, { users: { alice: 'pw' }, expiresIn: 2 })
 * // registry config: auth.token { realm: issuer.realm, service: issuer.service,
 * //   issuer: issuer.issuer, rootcertbundle: issuer.certPath }
 * issuer.issued // tokens handed out so far
 * ```
 */
export async function startTokenIssuer(dir: string, options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
  const alg = options.algorithm ?? 'ES256'
  const signer: CertificateFiles = await createSigningCert(dir, alg === 'ES256' ? 'ec' : 'rsa')
  const key = createPrivateKey(signer.keyPem)
  const certDer = new X509Certificate(signer.certPem).raw
  const opts = {
    ...options,
    expiresIn: options.expiresIn ?? 300,
    anonymous: options.anonymous ?? 'pull',
    users: options.users ?? {},
  } as TokenIssuer['options']
  const service = options.service ?? 'ctr-registry-harness'
  const issuerName = options.issuer ?? 'ctr-token-issuer'
  const requests: TokenRequestRecord[] = []
  let issued = 0
  const refreshTokens = new Map<string, string>()
  const fallbackAuthorizer = defaultAuthorizer(() => opts.anonymous)

  const signToken = (subject: string | undefined, access: Access[], lifetime = opts.jwtLifetime ?? opts.expiresIn): string => {
    const now = Math.floor(Date.now() / 1000)
    return signJwt(
      {
        iss: issuerName,
        sub: subject ?? '',
        aud: service,
        exp: now + lifetime,
        nbf: now - 1,
        iat: now,
        jti: randomUUID(),
        access,
      },
      key,
      certDer,
      alg,
    )
  }

  const grant = (subject: string | undefined, scopes: string[]): Access[] => {
    const authorize = opts.authorize ?? fallbackAuthorizer
    const out: Access[] = []
    for (const s of scopes) {
      const parsed = parseScope(s)
      if (parsed === undefined) continue
      const actions = authorize(subject, parsed)
      if (actions.length > 0) out.push({ type: parsed.type, name: parsed.name, actions })
    }
    return mergeAccess(out)
  }

  const basicUser = (header: string | undefined): { present: boolean; user?: string; ok: boolean } => {
    if (header === undefined) return { present: false, ok: true }
    const m = /^Basic\s+(.+)$/i.exec(header.trim())
    if (!m?.[1]) return { present: true, ok: false }
    const decoded = Buffer.from(m[1], 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon < 0) return { present: true, ok: false }
    const user = decoded.slice(0, colon)
    const pass = decoded.slice(colon + 1)
    return { present: true, user, ok: Object.hasOwn(opts.users, user) && opts.users[user] === pass }
  }

  const answer = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    const text = JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
    res.end(text)
  }
  const unauthorized = (res: http.ServerResponse, message: string): void =>
    answer(res, 401, { errors: [{ code: 'UNAUTHORIZED', message }] }, { 'www-authenticate': `Basic realm="${service}"` })

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token.invalid')
    const record: TokenRequestRecord = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      time: Date.now(),
      subject: undefined,
      authorization: req.headers.authorization !== undefined,
      service: undefined,
      scopes: [],
      account: undefined,
      granted: [],
      status: 0,
    }
    requests.push(record)
    const finish = (status: number): void => {
      record.status = status
    }
    if (url.pathname !== '/token') {
      finish(404)
      answer(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'not found' }] })
      return
    }
    const issuedAt = new Date().toISOString()
    if (req.method === 'GET') {
      const q = url.searchParams
      record.service = q.get('service') ?? undefined
      record.account = q.get('account') ?? undefined
      record.scopes = q.getAll('scope').flatMap((s) => s.split(' ').filter(Boolean))
      const auth = basicUser(req.headers.authorization)
      if (!auth.ok) {
        finish(401)
        unauthorized(res, 'invalid username or password')
        return
      }
      if (record.service !== undefined && record.service !== service) {
        finish(400)
        answer(res, 400, { errors: [{ code: 'INVALID_SERVICE', message: `unknown service ${record.service}` }] })
        return
      }
      record.subject = auth.user
      record.granted = grant(auth.user, record.scopes)
      const token = signToken(auth.user, record.granted)
      issued++
      finish(200)
      const body: Record<string, unknown> = { token, access_token: token, issued_at: issuedAt }
      if (!opts.omitExpiresIn) body.expires_in = opts.expiresIn
      if (q.get('offline_token') === 'true' && auth.user !== undefined) {
        const refresh = randomUUID()
        refreshTokens.set(refresh, auth.user)
        body.refresh_token = refresh
      }
      answer(res, 200, body)
      return
    }
    if (req.method === 'POST') {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
        record.service = form.get('service') ?? undefined
        record.grantType = form.get('grant_type') ?? undefined
        record.scopes = form.getAll('scope').flatMap((s) => s.split(' ').filter(Boolean))
        let subject: string | undefined
        let refresh: string | undefined
        if (record.grantType === 'password') {
          const user = form.get('username') ?? ''
          if (!(Object.hasOwn(opts.users, user) && opts.users[user] === form.get('password'))) {
            finish(401)
            unauthorized(res, 'invalid username or password')
            return
          }
          subject = user
          if (form.get('access_type') === 'offline') {
            refresh = randomUUID()
            refreshTokens.set(refresh, user)
          }
        } else if (record.grantType === 'refresh_token') {
          subject = refreshTokens.get(form.get('refresh_token') ?? '')
          if (subject === undefined) {
            finish(401)
            unauthorized(res, 'invalid refresh token')
            return
          }
        } else {
          finish(400)
          answer(res, 400, { error: 'unsupported_grant_type' })
          return
        }
        if (record.service !== undefined && record.service !== service) {
          finish(400)
          answer(res, 400, { error: 'invalid_request', error_description: `unknown service ${record.service}` })
          return
        }
        record.subject = subject
        record.granted = grant(subject, record.scopes)
        const token = signToken(subject, record.granted)
        issued++
        finish(200)
        const body: Record<string, unknown> = { access_token: token, issued_at: issuedAt, scope: record.scopes.join(' ') }
        if (!opts.omitExpiresIn) body.expires_in = opts.expiresIn
        if (refresh !== undefined) body.refresh_token = refresh
        answer(res, 200, body)
      })
      return
    }
    finish(405)
    answer(res, 405, { errors: [{ code: 'UNSUPPORTED', message: 'method not allowed' }] })
  })
  const port = await listenLoopback(server, options.port ?? 0)
  const url = `http://${LOOPBACK}:${port}`
  return {
    url,
    realm: `${url}/token`,
    service,
    issuer: issuerName,
    certPem: signer.certPem,
    certPath: signer.certPath,
    requests,
    get issued() {
      return issued
    },
    options: opts,
    sign: (subject, access, lifetime) => signToken(subject, access, lifetime),
    reset() {
      requests.length = 0
      issued = 0
    },
    stop: () => closeServer(server),
  }
}
