/**
 * A tiny uploader so fixture digests are exactly the harness's: HEAD to skip blobs already
 * there, monolithic upload (`POST` without a body, then `PUT ?digest=` with the whole blob),
 * manifests `PUT` byte for byte (children before their index), then tags. Handles Basic and
 * Bearer challenges and a custom CA.
 */
import { createReadStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import type { Readable } from 'node:stream'
import { isNondistributable, type Digest } from '@ctr/oci'
import { blobPath, type Desc } from './layout.js'
import { httpRequest, type HttpResponse } from './net.js'
import { HarnessError } from './system.js'

/** Where to push: a {@link Registry} fits. */
export interface PushTarget {
  /** The registry's base URL (`http://127.0.0.1:PORT`). */
  url: string
  /** A CA to trust (PEM) for https. */
  caPem?: string
  /** Credentials for Basic auth or for the token issuer. */
  credentials?: { username: string; password: string }
}

/** A manifest or index in a layout, with its children. */
export interface ImageNode {
  /** The manifest's media type. */
  mediaType: string
  /** The manifest's digest. */
  digest: Digest
  /** The manifest's size. */
  size: number
  /** The platform (for index entries). */
  platform?: Desc['platform']
  /** Annotations of the index entry. */
  annotations?: Record<string, string>
  /** A manifest's config. */
  config?: Desc
  /** A manifest's layers. */
  layers?: Desc[]
  /** An index's entries. */
  manifests?: ImageNode[]
}

/**
 * Parses a `WWW-Authenticate` header into its scheme and parameters (enough for the
 * registry's own challenges).
 * @internal
 */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\S+)\s*(.*)$/.exec(header)
  const scheme = (m?.[1] ?? '').toLowerCase()
  const params: Record<string, string> = {}
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g
  for (let p = re.exec(m?.[2] ?? ''); p !== null; p = re.exec(m?.[2] ?? '')) {
    params[(p[1] ?? '').toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '')
  }
  return { scheme, params }
}

/**
 * Pushes blobs and manifests to a registry, authenticating as the registry asks.
 *
 * @example
 * ```ts
 * const up = new Uploader(registry)
 * await up.pushNode('library/busybox', image, layoutDir, ['latest'])
 * up.close()
 * ```
 */
export class Uploader {
  private readonly target: PushTarget
  private readonly agent: http.Agent
  private readonly auth = new Map<string, string>()
  /** How many HTTP requests were made. */
  requests = 0

  constructor(target: PushTarget) {
    this.target = target
    this.agent = target.url.startsWith('https:')
      ? new https.Agent({ keepAlive: true, maxSockets: 8, ...(target.caPem !== undefined ? { ca: target.caPem } : {}) })
      : new http.Agent({ keepAlive: true, maxSockets: 8 })
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent.destroy()
  }

  private basic(): string | undefined {
    const c = this.target.credentials
    return c === undefined ? undefined : `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`
  }

  private async authenticate(repo: string, header: string | undefined): Promise<boolean> {
    if (header === undefined) return false
    const { scheme, params } = parseChallenge(header)
    if (scheme === 'basic') {
      const b = this.basic()
      if (b === undefined) return false
      this.auth.set(repo, b)
      return true
    }
    if (scheme === 'bearer' && params.realm !== undefined) {
      const u = new URL(params.realm)
      if (params.service !== undefined) u.searchParams.set('service', params.service)
      u.searchParams.append('scope', `repository:${repo}:pull,push`)
      if (params.scope !== undefined && params.scope !== `repository:${repo}:pull,push`) u.searchParams.append('scope', params.scope)
      const b = this.basic()
      const res = await httpRequest(u.toString(), {
        ...(b !== undefined ? { headers: { authorization: b } } : {}),
        ...(this.target.caPem !== undefined ? { ca: this.target.caPem } : {}),
      })
      if (res.status !== 200) throw new HarnessError(`token request ${u.toString()} answered ${res.status}: ${res.body.toString()}`)
      const body = JSON.parse(res.body.toString('utf8')) as { token?: string; access_token?: string }
      const token = body.token ?? body.access_token
      if (token === undefined) throw new HarnessError('token issuer answered without a token')
      this.auth.set(repo, `Bearer ${token}`)
      return true
    }
    return false
  }

  /** One request with auth; retries once after a 401 challenge. */
  async request(
    repo: string,
    method: string,
    url: string,
    headers: Record<string, string | number> = {},
    body?: Buffer | (() => Readable),
  ): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      const authz = this.auth.get(repo)
      this.requests++
      const res = await httpRequest(new URL(url, this.target.url).toString(), {
        method,
        headers: { ...headers, ...(authz !== undefined ? { authorization: authz } : {}) },
        ...(body !== undefined ? { body } : {}),
        ...(this.target.caPem !== undefined ? { ca: this.target.caPem } : {}),
        agent: this.agent,
      })
      if (res.status === 401 && attempt === 0 && (await this.authenticate(repo, res.headers['www-authenticate']))) continue
      return res
    }
  }

  /** Whether a blob is already in `repo`. */
  async hasBlob(repo: string, digest: string): Promise<boolean> {
    const res = await this.request(repo, 'HEAD', `/v2/${repo}/blobs/${digest}`)
    if (res.status === 200) return true
    if (res.status === 404) return false
    throw new HarnessError(`HEAD blob ${repo}@${digest}: ${res.status}`)
  }

  /** Uploads a blob monolithically unless it is there already. */
  async pushBlob(repo: string, desc: { digest: string; size: number }, open: () => Readable): Promise<void> {
    if (await this.hasBlob(repo, desc.digest)) return
    // POST with no body: distribution 2.8 accepts a body on the POST and silently drops it.
    const start = await this.request(repo, 'POST', `/v2/${repo}/blobs/uploads/`, { 'content-length': 0 })
    if (start.status !== 202 || start.headers.location === undefined) {
      throw new HarnessError(`POST upload ${repo}: ${start.status} ${start.body.toString()}`)
    }
    const loc = new URL(start.headers.location, this.target.url)
    loc.searchParams.set('digest', desc.digest)
    const put = await this.request(
      repo,
      'PUT',
      loc.toString(),
      { 'content-type': 'application/octet-stream', 'content-length': desc.size },
      open,
    )
    if (put.status !== 201) throw new HarnessError(`PUT blob ${repo}@${desc.digest}: ${put.status} ${put.body.toString()}`)
  }

  /** Puts a manifest under a tag or its digest; checks the digest the registry computed. */
  async pushManifest(repo: string, reference: string, mediaType: string, bytes: Buffer, digest: string): Promise<void> {
    const res = await this.request(repo, 'PUT', `/v2/${repo}/manifests/${reference}`, { 'content-type': mediaType, 'content-length': bytes.length }, bytes)
    if (res.status !== 201) throw new HarnessError(`PUT manifest ${repo}:${reference}: ${res.status} ${res.body.toString()}`)
    const got = res.headers['docker-content-digest']
    if (got !== digest) throw new HarnessError(`PUT manifest ${repo}:${reference}: registry computed ${String(got)}, expected ${digest}`)
  }

  /**
   * Pushes a manifest or index from an OCI layout with everything it references (children
   * before the index, blobs before their manifest; foreign layers with `urls` are skipped),
   * then tags it.
   */
  async pushNode(repo: string, node: ImageNode, layoutDir: string, tags: readonly string[] = []): Promise<void> {
    for (const child of node.manifests ?? []) await this.pushNode(repo, child, layoutDir)
    const blobs = [...(node.config !== undefined ? [node.config] : []), ...(node.layers ?? [])]
    for (const b of blobs) {
      if (b.urls !== undefined && b.urls.length > 0 && isNondistributable(b.mediaType)) continue
      await this.pushBlob(repo, b, () => createReadStream(blobPath(layoutDir, b.digest)))
    }
    const bytes = await readFile(blobPath(layoutDir, node.digest))
    const refs = tags.length > 0 ? tags : [node.digest]
    for (const ref of refs) await this.pushManifest(repo, ref, node.mediaType, bytes, node.digest)
  }
}
