/**
 * Proves each piece of the harness against the real tools: Debian's docker-registry in its
 * three modes, skopeo pulling every fixture back with the pushed digests, and each fault
 * server answering as specified.
 */
import { createHash } from 'node:crypto'
import { existsSync, promises as fs } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { gunzipSync } from 'node:zlib'
import { list as tarList } from 'tar'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { MANIFEST_ACCEPT, MediaType } from '@ctr/oci'
import {
  blobPath,
  buildFixtures,
  FIXTURE_NAMES,
  httpRequest,
  makeImage,
  makeTempDir,
  parseScope,
  pushFixtures,
  pushImage,
  run,
  skopeo,
  skopeoFlags,
  startFaultServer,
  startRegistry,
  startTokenIssuer,
  TEST_USER,
  Tools,
  Uploader,
  type FaultServer,
  type Fixtures,
  type PushedFixtures,
  type Registry,
} from '../src/index.js'

const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`
const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`

/** A GET that never throws on a cut connection: returns what arrived and whether it was whole. */
function rawGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      let done = false
      const finish = (): void => {
        if (done) return
        done = true
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete })
      }
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', finish)
      res.on('error', finish)
      res.on('close', finish)
    })
    req.on('error', reject)
  })
}

async function inspectRaw(registry: Registry | FaultServer, ref: string): Promise<string> {
  const target = 'tls' in registry ? registry : { url: registry.url }
  const { stdout } = await skopeo(['inspect', '--raw', ...skopeoFlags(target, 'plain'), `docker://${ref}`])
  return stdout
}

/** Every blob in a pulled OCI layout (or dir: copy) hashes to its name. */
async function verifyBlobs(dir: string): Promise<number> {
  const blobsDir = existsSync(path.join(dir, 'blobs', 'sha256')) ? path.join(dir, 'blobs', 'sha256') : dir
  let n = 0
  for (const name of await fs.readdir(blobsDir)) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue
    expect(sha256(await fs.readFile(path.join(blobsDir, name)))).toBe(`sha256:${name}`)
    n++
  }
  return n
}

let fixtures: Fixtures
let work: string

beforeAll(async () => {
  work = makeTempDir('test-')
  fixtures = await buildFixtures(path.join(work, 'fixtures'))
})

afterAll(async () => {
  await fixtures?.close()
})

describe('fixtures', () => {
  test('are deterministic: a second build gives the same digests', async () => {
    const again = await buildFixtures(path.join(work, 'fixtures-again'), { foreignBaseUrl: fixtures.foreignServer?.url ?? '' })
    for (const name of FIXTURE_NAMES) expect(again.images[name].digest, name).toBe(fixtures.images[name].digest)
  })

  test('busybox: gzip, zstd and uncompressed layers hold the same tar', async () => {
    const { busybox, busyboxZstd, busyboxUncompressed } = fixtures.images
    expect(busybox.layers?.[0]?.mediaType).toBe(MediaType.OciLayerGzip)
    expect(busyboxZstd.layers?.[0]?.mediaType).toBe(MediaType.OciLayerZstd)
    expect(busyboxUncompressed.layers?.[0]?.mediaType).toBe(MediaType.OciLayer)
    const tar = await fs.readFile(fixtures.blobPath(busyboxUncompressed.layers?.[0]?.digest ?? ''))
    expect(gunzipSync(await fs.readFile(fixtures.blobPath(busybox.layers?.[0]?.digest ?? ''))).equals(tar)).toBe(true)
    const zstd = fixtures.blobPath(busyboxZstd.layers?.[0]?.digest ?? '')
    const out = path.join(work, 'unzstd.tar')
    await run(Tools.zstd, ['-d', '-q', '-f', zstd, '-o', out])
    expect((await fs.readFile(out)).equals(tar)).toBe(true)
    // The config's diff_id is the tar's digest, for all three.
    const config = JSON.parse(await fs.readFile(fixtures.blobPath(busybox.config?.digest ?? ''), 'utf8')) as { rootfs: { diff_ids: string[] } }
    expect(config.rootfs.diff_ids).toEqual([sha256(tar)])
    expect(busyboxZstd.config?.digest).toBe(busybox.config?.digest)
    // bin/busybox, applet symlinks, /etc/passwd.
    const entries = new Map<string, { type: string; linkpath?: string }>()
    await tarList({ file: out, onReadEntry: (e) => void entries.set(e.path, { type: e.type, linkpath: e.linkpath }) })
    expect(entries.get('bin/busybox')?.type).toBe('File')
    expect(entries.get('bin/sh')).toEqual({ type: 'SymbolicLink', linkpath: 'busybox' })
    expect(entries.get('etc/passwd')?.type).toBe('File')
  })

  test('layers: whiteout, opaque directory, hardlink and absolute symlinks in the second layer', async () => {
    const upper = fixtures.images.layers.layers?.[1]
    expect(fixtures.images.layers.layers).toHaveLength(2)
    const entries = new Map<string, { type: string; linkpath?: string }>()
    await tarList({ file: fixtures.blobPath(upper?.digest ?? ''), onReadEntry: (e) => void entries.set(e.path, { type: e.type, linkpath: e.linkpath }) })
    expect(entries.get('.wh.gone')?.type).toBe('File')
    expect(entries.get('etc/.wh.motd')?.type).toBe('File')
    expect(entries.get('opq/.wh..wh..opq')?.type).toBe('File')
    expect(entries.get('links/hard')).toEqual({ type: 'Link', linkpath: 'links/target' })
    expect(entries.get('links/abs')).toEqual({ type: 'SymbolicLink', linkpath: '/links/target' })
    expect(entries.get('links/busybox')).toEqual({ type: 'SymbolicLink', linkpath: '/bin/busybox' })
  })

  test('multi: three platforms and an attestation; list: Docker manifest list', () => {
    const multi = fixtures.images.multi
    expect(multi.mediaType).toBe(MediaType.OciIndex)
    const platforms = multi.manifests?.map((m) => [m.platform?.os, m.platform?.architecture, m.platform?.variant].filter(Boolean).join('/'))
    expect(platforms).toEqual(['linux/amd64', 'linux/arm64/v8', 'linux/arm/v7', 'unknown/unknown'])
    const att = multi.manifests?.[3]
    expect(att?.annotations?.['vnd.docker.reference.type']).toBe('attestation-manifest')
    expect(att?.annotations?.['vnd.docker.reference.digest']).toBe(fixtures.images.busybox.digest)
    expect(fixtures.images.dockerList.mediaType).toBe(MediaType.DockerManifestList)
    expect(new Set(fixtures.images.dockerList.manifests?.map((m) => m.digest)).size).toBe(3)
    expect(fixtures.images.dockerImage.mediaType).toBe(MediaType.DockerManifest)
    expect(fixtures.images.manyTags.tags).toHaveLength(120)
    expect(fixtures.images.foreign.layers?.[1]?.urls?.[0]).toBe(`${fixtures.foreignServer?.url}/blobs/${fixtures.foreignLayer.digest}`)
  })

  test('makeImage: deterministic random layers, streamed, reused when cached', async () => {
    const dir = path.join(work, 'random')
    const a = await makeImage({ layers: [3 << 20, 1 << 20], dir, seed: 's' })
    const stat = await fs.stat(blobPath(dir, a.digest))
    const b = await makeImage({ layers: [3 << 20, 1 << 20], dir, seed: 's' })
    expect(b.digest).toBe(a.digest)
    expect((await fs.stat(blobPath(dir, a.digest))).mtimeMs).toBe(stat.mtimeMs) // reused
    const c = await makeImage({ layers: [3 << 20, 1 << 20], dir: path.join(work, 'random2'), seed: 's' })
    expect(c.digest).toBe(a.digest)
    const d = await makeImage({ layers: [3 << 20, 1 << 20], dir: path.join(work, 'random3'), seed: 'other' })
    expect(d.digest).not.toBe(a.digest)
    expect(a.layers?.[0]?.size).toBeGreaterThan(3 << 20) // incompressible
    expect(await verifyBlobs(dir)).toBe(4)
  })
})

describe('plain HTTP registry', () => {
  let registry: Registry
  let pushed: PushedFixtures

  beforeAll(async () => {
    registry = await startRegistry()
    pushed = await pushFixtures(registry, fixtures)
  })
  afterAll(async () => {
    await registry?.stop()
  })

  test('listens on 127.0.0.1, answers /v2/, cleans its environment', async () => {
    expect(registry.host).toMatch(/^127\.0\.0\.1:\d+$/)
    const res = await httpRequest(`${registry.url}/v2/`)
    expect(res.status).toBe(200)
    expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0')
    const environ = await fs.readFile(`/proc/${registry.pid}/environ`, 'utf8')
    expect(environ.split('\0').filter((v) => v.startsWith('REGISTRY_'))).toEqual([])
    const cmdline = (await fs.readFile(`/proc/${registry.pid}/cmdline`, 'utf8')).split('\0')
    expect(cmdline.slice(0, 2)).toEqual([Tools.registry, 'serve'])
  })

  test('skopeo inspect --raw gives every pushed manifest byte for byte', async () => {
    for (const name of FIXTURE_NAMES) {
      const img = pushed.images[name]
      expect(sha256(await inspectRaw(registry, img.reference)), name).toBe(img.digest)
    }
  })

  test('skopeo copy --all pulls every fixture back with the same digests', async () => {
    for (const name of FIXTURE_NAMES) {
      const img = pushed.images[name]
      // skopeo 1.9 must convert a Docker manifest list for an OCI layout, which would change
      // its digest: pull that one into a dir: copy instead.
      const oci = name !== 'dockerList'
      const dest = path.join(work, 'pull-plain', name)
      await fs.mkdir(path.dirname(dest), { recursive: true })
      await skopeo([
        'copy', '--all', '--preserve-digests', ...skopeoFlags(registry, 'src'),
        `docker://${img.reference}`, oci ? `oci:${dest}:${img.tag}` : `dir:${dest}`,
      ])
      if (oci) {
        const index = JSON.parse(await fs.readFile(path.join(dest, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; mediaType: string }> }
        expect(index.manifests[0]?.digest, name).toBe(img.digest)
        expect(index.manifests[0]?.mediaType, name).toBe(img.mediaType)
      } else {
        expect(sha256(await fs.readFile(path.join(dest, 'manifest.json')))).toBe(img.digest)
      }
      expect(await verifyBlobs(dest)).toBeGreaterThan(0)
    }
  })

  test('the foreign layer is not in the registry and skopeo fetches it from its URL without credentials', async () => {
    const { foreign } = pushed.images
    const head = await httpRequest(`${registry.url}/v2/${foreign.repository}/blobs/${fixtures.foreignLayer.digest}`, { method: 'HEAD' })
    expect(head.status).toBe(404)
    fixtures.foreignServer?.reset()
    const dest = path.join(work, 'pull-foreign-dir')
    await skopeo(['copy', ...skopeoFlags(registry, 'src'), `docker://${foreign.reference}`, `dir:${dest}`])
    expect(existsSync(path.join(dest, fixtures.foreignLayer.digest.slice(7)))).toBe(true)
    const got = fixtures.foreignServer?.requests.filter((r) => r.route === 'raw-blob') ?? []
    expect(got).toHaveLength(1)
    expect(got[0]?.headers.authorization).toBeUndefined()
    expect(got[0]?.status).toBe(200)
  })

  test('many tags, catalog pagination, and the 2.8 quirks the client must live with', async () => {
    const { stdout } = await skopeo(['list-tags', ...skopeoFlags(registry, 'plain'), `docker://${registry.host}/test/tags`])
    expect((JSON.parse(stdout) as { Tags: string[] }).Tags).toHaveLength(120)
    // Quirk: tags/list ignores n and last, and sends no Link.
    const tags = await httpRequest(`${registry.url}/v2/test/tags/tags/list?n=10&last=t050`)
    expect((JSON.parse(tags.body.toString()) as { tags: string[] }).tags).toHaveLength(120)
    expect(tags.headers.link).toBeUndefined()
    // The catalog does paginate with Link.
    const cat = await httpRequest(`${registry.url}/v2/_catalog?n=2`)
    expect(JSON.parse(cat.body.toString())).toEqual({ repositories: ['library/busybox', 'test/foreign'] })
    expect(cat.headers.link).toBe('</v2/_catalog?last=test%2Fforeign&n=2>; rel="next"')
    // Quirk: no referrers API.
    expect((await httpRequest(`${registry.url}/v2/library/busybox/referrers/${pushed.images.busybox.digest}`)).status).toBe(404)
    // Quirk: an OCI index asked for without its media type in Accept is a 404.
    const noAccept = await httpRequest(`${registry.url}/v2/library/busybox/manifests/multi`)
    expect(noAccept.status).toBe(404)
    const withAccept = await httpRequest(`${registry.url}/v2/library/busybox/manifests/multi`, { headers: { accept: MANIFEST_ACCEPT } })
    expect(withAccept.headers['docker-content-digest']).toBe(pushed.images.multi.digest)
    expect(withAccept.headers['content-type']).toBe(MediaType.OciIndex)
    // Range on blobs is honoured.
    const layer = pushed.images.busybox.layers?.[0]
    const ranged = await httpRequest(`${registry.url}/v2/library/busybox/blobs/${layer?.digest}`, { headers: { range: 'bytes=100-' } })
    expect(ranged.status).toBe(206)
    expect(ranged.headers['content-range']).toBe(`bytes 100-${(layer?.size ?? 0) - 1}/${layer?.size}`)
  })

  test('quirk: a single POST with a body is accepted (202) and the body dropped', async () => {
    const body = Buffer.from('monolithic body in the POST')
    const res = await httpRequest(`${registry.url}/v2/quirk/post/blobs/uploads/?digest=${sha256(body)}`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/octet-stream', 'content-length': body.length },
    })
    expect(res.status).toBe(202)
    expect((await httpRequest(`${registry.url}/v2/quirk/post/blobs/${sha256(body)}`, { method: 'HEAD' })).status).toBe(404)
  })

  test('quirk: deleting by tag is refused; by digest it drops every tag (tags: null)', async () => {
    const img = await pushImage(registry, fixtures.images.manyTags, { repository: 'quirk/delete', tags: ['a', 'b'] })
    const byTag = await httpRequest(`${registry.url}/v2/quirk/delete/manifests/a`, { method: 'DELETE' })
    expect(byTag.status).toBe(400)
    const byDigest = await httpRequest(`${registry.url}/v2/quirk/delete/manifests/${img.digest}`, { method: 'DELETE' })
    expect(byDigest.status).toBe(202)
    const tags = await httpRequest(`${registry.url}/v2/quirk/delete/tags/list`)
    expect(JSON.parse(tags.body.toString())).toEqual({ name: 'quirk/delete', tags: null })
  })

  test('a random image pushes and pulls back intact', async () => {
    const img = await makeImage({ layers: [2 << 20, 1 << 20, 512 << 10], dir: path.join(work, 'bench-small') })
    const ref = await pushImage(registry, img)
    expect(ref.reference).toBe(`${registry.host}/bench/random:latest`)
    const dest = path.join(work, 'pull-random')
    await skopeo(['copy', '--preserve-digests', ...skopeoFlags(registry, 'src'), `docker://${ref.reference}`, `oci:${dest}:latest`])
    expect(await verifyBlobs(dest)).toBe(5)
  })

  test('stop() ends the process and removes the root', async () => {
    const r = await startRegistry()
    await r.stop()
    expect(existsSync(r.rootDir)).toBe(false)
    expect(existsSync(`/proc/${r.pid}`)).toBe(false)
    await expect(httpRequest(`${r.url}/v2/`, { timeoutMs: 2000 })).rejects.toThrow()
  })
})

describe('TLS + htpasswd Basic registry', () => {
  let registry: Registry
  let pushed: PushedFixtures

  beforeAll(async () => {
    registry = await startRegistry({ tls: true, auth: { type: 'basic', users: { alice: 'wonderland', bob: 'builder' } } })
    pushed = await pushFixtures(registry, fixtures, ['busybox', 'dockerImage', 'dockerList', 'multi', 'layers'])
  })
  afterAll(async () => {
    await registry?.stop()
  })

  test('serves HTTPS trusted only through the test CA, and asks for Basic credentials', async () => {
    expect(registry.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
    expect(registry.caPem).toContain('BEGIN CERTIFICATE')
    expect(registry.credentials).toEqual({ username: 'alice', password: 'wonderland' })
    await expect(httpRequest(`${registry.url}/v2/`)).rejects.toThrow(/certificate/)
    const anon = await httpRequest(`${registry.url}/v2/`, { ca: registry.caPem ?? '' })
    expect(anon.status).toBe(401)
    expect(anon.headers['www-authenticate']).toBe('Basic realm="ctr-registry-harness"')
    expect((await httpRequest(`${registry.url}/v2/`, { ca: registry.caPem ?? '', headers: { authorization: basic('bob', 'builder') } })).status).toBe(200)
    expect((await httpRequest(`${registry.url}/v2/`, { ca: registry.caPem ?? '', headers: { authorization: basic('bob', 'nope') } })).status).toBe(401)
    // localhost is in the certificate too.
    const byName = await httpRequest(`https://localhost:${registry.port}/v2/`, { ca: registry.caPem ?? '', headers: { authorization: basic('alice', 'wonderland') } })
    expect(byName.status).toBe(200)
  })

  test('skopeo with --cert-dir and --creds inspects and pulls with the pushed digests', async () => {
    for (const name of ['busybox', 'dockerImage', 'multi', 'layers'] as const) {
      const img = pushed.images[name]
      expect(sha256(await inspectRaw(registry, img.reference))).toBe(img.digest)
      const dest = path.join(work, 'pull-tls', name)
      await fs.mkdir(path.dirname(dest), { recursive: true })
      await skopeo(['copy', '--all', '--preserve-digests', ...skopeoFlags(registry, 'src'), `docker://${img.reference}`, `oci:${dest}:x`])
      const index = JSON.parse(await fs.readFile(path.join(dest, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> }
      expect(index.manifests[0]?.digest).toBe(img.digest)
      await verifyBlobs(dest)
    }
  })

  test('skopeo without credentials is refused', async () => {
    const { credentials: _c, ...anonymous } = registry
    await expect(skopeo(['inspect', '--raw', ...skopeoFlags(anonymous, 'plain'), `docker://${pushed.images.busybox.reference}`])).rejects.toThrow(/unauthorized|authentication required/i)
  })
})

describe('Bearer token registry', () => {
  let registry: Registry
  let pushed: PushedFixtures

  beforeAll(async () => {
    registry = await startRegistry({
      auth: {
        type: 'token',
        users: { [TEST_USER.username]: TEST_USER.password, reader: 'only-reads' },
        anonymous: 'pull',
        authorize: (subject, scope) => {
          if (subject === 'reader') return scope.actions.filter((a) => a === 'pull')
          if (subject === undefined) return scope.type === 'repository' && !scope.name.startsWith('private/') ? scope.actions.filter((a) => a === 'pull') : []
          return scope.actions
        },
      },
    })
    pushed = await pushFixtures(registry, fixtures, ['busybox', 'multi', 'foreign'])
    await pushImage(registry, fixtures.images.busybox, { repository: 'private/busybox', tags: ['latest'] })
  })
  afterAll(async () => {
    await registry?.stop()
  })

  test('the registry challenges with the issuer realm; the uploader got push tokens', () => {
    const issuer = registry.tokenIssuer
    expect(issuer).toBeDefined()
    const pushes = issuer?.requests.filter((r) => r.scopes.includes('repository:library/busybox:pull,push')) ?? []
    expect(pushes.length).toBeGreaterThan(0)
    expect(pushes[0]?.subject).toBe(TEST_USER.username)
    expect(pushes[0]?.granted).toEqual([{ type: 'repository', name: 'library/busybox', actions: ['pull', 'push'] }])
  })

  test('tokens are ES256 JWTs with x5c and the spec claims; expires_in as configured', async () => {
    const issuer = registry.tokenIssuer!
    const u = `${issuer.realm}?service=${issuer.service}&scope=repository:library/busybox:pull&scope=${encodeURIComponent('repository:a/b:pull,push registry:catalog:*')}`
    const res = await httpRequest(u, { headers: { authorization: basic(TEST_USER.username, TEST_USER.password) } })
    expect(res.status).toBe(200)
    const body = JSON.parse(res.body.toString()) as { token: string; access_token: string; expires_in: number; issued_at: string }
    expect(body.access_token).toBe(body.token)
    expect(body.expires_in).toBe(300)
    expect(Number.isNaN(Date.parse(body.issued_at))).toBe(false)
    const [h, c] = body.token.split('.')
    const header = JSON.parse(Buffer.from(h ?? '', 'base64url').toString()) as { alg: string; x5c: string[] }
    const claims = JSON.parse(Buffer.from(c ?? '', 'base64url').toString()) as Record<string, unknown>
    expect(header.alg).toBe('ES256')
    expect(header.x5c).toHaveLength(1)
    expect(claims).toMatchObject({ iss: issuer.issuer, sub: TEST_USER.username, aud: issuer.service })
    expect(claims.access).toEqual([
      { type: 'repository', name: 'library/busybox', actions: ['pull'] },
      { type: 'repository', name: 'a/b', actions: ['pull', 'push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ])
    for (const k of ['exp', 'nbf', 'iat', 'jti']) expect(claims[k]).toBeDefined()
    // The registry accepts it.
    const cat = await httpRequest(`${registry.url}/v2/_catalog`, { headers: { authorization: `Bearer ${body.token}` } })
    expect(cat.status).toBe(200)
    expect(JSON.parse(cat.body.toString())).toEqual({ repositories: ['library/busybox', 'private/busybox', 'test/foreign'] })
  })

  test('wrong credentials get 401 from the issuer; unknown service 400', async () => {
    const issuer = registry.tokenIssuer!
    const bad = await httpRequest(`${issuer.realm}?service=${issuer.service}&scope=repository:x:pull`, { headers: { authorization: basic('tester', 'wrong') } })
    expect(bad.status).toBe(401)
    const svc = await httpRequest(`${issuer.realm}?service=elsewhere&scope=repository:x:pull`)
    expect(svc.status).toBe(400)
  })

  test('anonymous skopeo pulls public repositories, not private ones, and never pushes', async () => {
    const issuer = registry.tokenIssuer!
    issuer.reset()
    const anon = { url: registry.url }
    const dest = path.join(work, 'pull-bearer-multi')
    await skopeo(['copy', '--all', '--preserve-digests', ...skopeoFlags(anon, 'src'), `docker://${pushed.images.multi.reference}`, `oci:${dest}:multi`])
    const index = JSON.parse(await fs.readFile(path.join(dest, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> }
    expect(index.manifests[0]?.digest).toBe(pushed.images.multi.digest)
    expect(issuer.requests.some((r) => r.subject === undefined && r.scopes.includes('repository:library/busybox:pull'))).toBe(true)
    expect(issuer.issued).toBeGreaterThan(0)
    await expect(skopeo(['inspect', '--raw', ...skopeoFlags(anon, 'plain'), `docker://${registry.host}/private/busybox:latest`])).rejects.toThrow(/unauthorized|authentication required|denied/i)
    const up = new Uploader({ url: registry.url })
    try {
      await expect(up.pushBlob('library/busybox', { digest: sha256('x'), size: 1 }, () => {
        throw new Error('never opened')
      })).rejects.toThrow(/401/)
    } finally {
      up.close()
    }
  })

  test('a read-only user pulls with skopeo but cannot push', async () => {
    const reader = { url: registry.url, credentials: { username: 'reader', password: 'only-reads' } }
    expect(sha256(await skopeo(['inspect', '--raw', ...skopeoFlags(reader, 'plain'), `docker://${registry.host}/private/busybox:latest`]).then((r) => r.stdout))).toBe(
      fixtures.images.busybox.digest,
    )
    const up = new Uploader(reader)
    try {
      const res = await up.request('private/busybox', 'POST', '/v2/private/busybox/blobs/uploads/', { 'content-length': 0 })
      expect(res.status).toBe(401)
      expect(res.headers['www-authenticate']).toContain('error="insufficient_scope"')
    } finally {
      up.close()
    }
  })

  test('a token for another repository is refused with insufficient_scope', async () => {
    const token = registry.tokenIssuer!.sign(TEST_USER.username, [{ type: 'repository', name: 'other/repo', actions: ['pull'] }])
    const res = await httpRequest(`${registry.url}/v2/library/busybox/manifests/latest`, { headers: { authorization: `Bearer ${token}`, accept: MANIFEST_ACCEPT } })
    expect(res.status).toBe(401)
    expect(res.headers['www-authenticate']).toContain('scope="repository:library/busybox:pull"')
    expect(res.headers['www-authenticate']).toContain('error="insufficient_scope"')
  })

  test('quirk: distribution accepts a JWT up to 60 s past its exp, then says invalid_token', async () => {
    const issuer = registry.tokenIssuer!
    const catalog = [{ type: 'registry', name: 'catalog', actions: ['*'] }]
    const within = await httpRequest(`${registry.url}/v2/_catalog`, { headers: { authorization: `Bearer ${issuer.sign(TEST_USER.username, catalog, -30)}` } })
    expect(within.status).toBe(200)
    const past = await httpRequest(`${registry.url}/v2/_catalog`, { headers: { authorization: `Bearer ${issuer.sign(TEST_USER.username, catalog, -90)}` } })
    expect(past.status).toBe(401)
    expect(past.headers['www-authenticate']).toContain('error="invalid_token"')
  })

  test('OAuth2 POST form with refresh tokens', async () => {
    const issuer = registry.tokenIssuer!
    const form = new URLSearchParams({ grant_type: 'password', username: TEST_USER.username, password: TEST_USER.password, service: issuer.service, scope: 'repository:library/busybox:pull', access_type: 'offline', client_id: 'test' })
    const res = await httpRequest(issuer.realm, { method: 'POST', body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } })
    expect(res.status).toBe(200)
    const body = JSON.parse(res.body.toString()) as { access_token: string; refresh_token: string }
    const again = await httpRequest(issuer.realm, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: body.refresh_token, service: issuer.service, scope: 'repository:library/busybox:pull' }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    })
    expect(again.status).toBe(200)
    const m = await httpRequest(`${registry.url}/v2/library/busybox/manifests/latest`, {
      headers: { authorization: `Bearer ${(JSON.parse(again.body.toString()) as { access_token: string }).access_token}`, accept: MANIFEST_ACCEPT },
    })
    expect(m.headers['docker-content-digest']).toBe(fixtures.images.busybox.digest)
  })

  test('RS256 issuer, short expiry, and scope parsing', async () => {
    const r = await startRegistry({ auth: { type: 'token', algorithm: 'RS256', expiresIn: 1 } })
    try {
      const p = await pushFixtures(r, fixtures, ['busybox'])
      expect(sha256(await inspectRaw(r, p.images.busybox.reference))).toBe(p.images.busybox.digest)
      const issuer = r.tokenIssuer!
      const res = await httpRequest(`${issuer.realm}?service=${issuer.service}&scope=repository:library/busybox:pull`)
      const body = JSON.parse(res.body.toString()) as { token: string; expires_in: number }
      expect(body.expires_in).toBe(1)
      const claims = JSON.parse(Buffer.from(body.token.split('.')[1] ?? '', 'base64url').toString()) as { exp: number; iat: number }
      expect(claims.exp - claims.iat).toBe(1)
    } finally {
      await r.stop()
    }
    expect(parseScope('repository:library/busybox:pull,push')).toEqual({ type: 'repository', name: 'library/busybox', actions: ['pull', 'push'] })
    expect(parseScope('repository(plugin):a/b:pull')).toEqual({ type: 'repository', name: 'a/b', actions: ['pull'] })
    expect(parseScope('nonsense')).toBeUndefined()
  })

  test('a standalone issuer works without a registry', async () => {
    const issuer = await startTokenIssuer(makeTempDir('issuer-'), { anonymous: 'none', omitExpiresIn: true })
    try {
      const res = await httpRequest(`${issuer.realm}?service=${issuer.service}&scope=repository:x:pull`)
      const body = JSON.parse(res.body.toString()) as Record<string, unknown>
      expect(body.expires_in).toBeUndefined()
      const claims = JSON.parse(Buffer.from(String(body.token).split('.')[1] ?? '', 'base64url').toString()) as { access: unknown[] }
      expect(claims.access).toEqual([])
    } finally {
      await issuer.stop()
    }
  })
})

describe('fault servers', () => {
  let registry: Registry
  let pushed: PushedFixtures
  let layer: { digest: string; size: number }
  let blobPathOf: string
  const servers: FaultServer[] = []
  const start = async (...args: Parameters<typeof startFaultServer>): Promise<FaultServer> => {
    const s = await startFaultServer(...args)
    servers.push(s)
    return s
  }

  beforeAll(async () => {
    registry = await startRegistry()
    pushed = await pushFixtures(registry, fixtures, ['busybox', 'multi', 'manyTags'])
    const l = pushed.images.busybox.layers?.[0]
    layer = { digest: l?.digest ?? '', size: l?.size ?? 0 }
    blobPathOf = `/v2/library/busybox/blobs/${layer.digest}`
  })
  afterAll(async () => {
    for (const s of servers) await s.stop()
    await registry?.stop()
  })

  test('without faults it is a faithful proxy: skopeo pulls through it', async () => {
    const proxy = await start({ upstream: registry })
    const dest = path.join(work, 'pull-proxy')
    await skopeo(['copy', '--all', '--preserve-digests', '--src-tls-verify=false', `docker://${proxy.host}/library/busybox:multi`, `oci:${dest}:multi`])
    const index = JSON.parse(await fs.readFile(path.join(dest, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> }
    expect(index.manifests[0]?.digest).toBe(pushed.images.multi.digest)
    expect(proxy.requests.some((r) => r.route === 'blob' && r.status === 200 && r.completed)).toBe(true)
    // Pushing through it works too (Location URLs come back to the proxy).
    await pushImage({ url: proxy.url, host: proxy.host }, fixtures.images.layers, { repository: 'via/proxy' })
    expect(proxy.requests.filter((r) => r.route === 'upload' && r.method === 'PUT').length).toBeGreaterThan(0)
    expect(sha256(await inspectRaw(registry, `${registry.host}/via/proxy:latest`))).toBe(fixtures.images.layers.digest)
  })

  test('wrong digest: same size, different bytes, headers still claim the digest', async () => {
    const s = await start({ upstream: registry, fault: { kind: 'wrong-digest' } })
    const res = await rawGet(`${s.url}${blobPathOf}`)
    expect(res.status).toBe(200)
    expect(res.body.length).toBe(layer.size)
    expect(Number(res.headers['content-length'])).toBe(layer.size)
    expect(res.headers['docker-content-digest']).toBe(layer.digest)
    expect(sha256(res.body)).not.toBe(layer.digest)
    expect(s.applied('wrong-digest')).toBe(1)
  })

  test('wrong size: longer or shorter body with a matching Content-Length', async () => {
    const longer = await start({ upstream: registry, fault: { kind: 'wrong-size', delta: 7 } })
    const a = await rawGet(`${longer.url}${blobPathOf}`)
    expect(a.body.length).toBe(layer.size + 7)
    expect(a.complete).toBe(true)
    const shorter = await start({ upstream: registry, fault: { kind: 'wrong-size', delta: -100 } })
    const b = await rawGet(`${shorter.url}${blobPathOf}`)
    expect(b.body.length).toBe(layer.size - 100)
    expect(Number(b.headers['content-length'])).toBe(layer.size - 100)
  })

  test('429 with Retry-After (and rate-limit headers), then success', async () => {
    const s = await start({ upstream: registry, fault: { kind: 'rate-limit', retryAfter: 2, times: 2, match: 'manifest' } })
    const url = `${s.url}/v2/library/busybox/manifests/latest`
    const headers = { accept: MANIFEST_ACCEPT }
    for (let i = 0; i < 2; i++) {
      const r = await httpRequest(url, { headers })
      expect(r.status).toBe(429)
      expect(r.headers['retry-after']).toBe('2')
      expect(r.headers['ratelimit-remaining']).toBe('0;w=21600')
    }
    const ok = await httpRequest(url, { headers })
    expect(ok.status).toBe(200)
    expect(ok.headers['docker-content-digest']).toBe(pushed.images.busybox.digest)
    expect(s.applied('rate-limit')).toBe(2)
  })

  test('500 then success; any status on demand', async () => {
    const s = await start({ upstream: registry, fault: [{ kind: 'server-error' }, { kind: 'status', status: 503, match: 'manifest', times: 1 }] })
    expect((await rawGet(`${s.url}${blobPathOf}`)).status).toBe(500)
    const ok = await rawGet(`${s.url}${blobPathOf}`)
    expect(ok.status).toBe(200)
    expect(sha256(ok.body)).toBe(layer.digest)
    expect((await httpRequest(`${s.url}/v2/library/busybox/manifests/latest`, { headers: { accept: MANIFEST_ACCEPT } })).status).toBe(503)
    expect((await httpRequest(`${s.url}/v2/library/busybox/manifests/latest`, { headers: { accept: MANIFEST_ACCEPT } })).status).toBe(200)
  })

  test('connection dropped mid-blob, then Range resumes with 206 + Content-Range', async () => {
    const s = await start({ upstream: registry, fault: { kind: 'drop', afterBytes: 4096 } })
    const first = await rawGet(`${s.url}${blobPathOf}`)
    expect(first.status).toBe(200)
    expect(Number(first.headers['content-length'])).toBe(layer.size)
    expect(first.complete).toBe(false)
    expect(first.body.length).toBe(4096)
    const rest = await rawGet(`${s.url}${blobPathOf}`, { range: `bytes=${first.body.length}-` })
    expect(rest.status).toBe(206)
    expect(rest.headers['content-range']).toBe(`bytes 4096-${layer.size - 1}/${layer.size}`)
    expect(sha256(Buffer.concat([first.body, rest.body]))).toBe(layer.digest)
    expect(s.requests[0]?.aborted || s.requests[0]?.bytesSent === 4096).toBe(true)
  })

  test('drop variants: Range ignored (200 whole) or answered from the wrong start', async () => {
    const ignore = await start({ upstream: registry, fault: { kind: 'drop', range: 'ignore', reset: true } })
    const a = await rawGet(`${ignore.url}${blobPathOf}`)
    expect(a.complete).toBe(false)
    expect(a.body.length).toBe(Math.floor(layer.size / 2))
    const a2 = await rawGet(`${ignore.url}${blobPathOf}`, { range: `bytes=${a.body.length}-` })
    expect(a2.status).toBe(200)
    expect(a2.body.length).toBe(layer.size)
    const wrong = await start({ layout: fixtures.dir, fault: { kind: 'drop', range: 'wrong-start' } })
    const b = await rawGet(`${wrong.url}${blobPathOf}`, { range: 'bytes=1000-' })
    expect(b.complete).toBe(false) // the drop applies to the first request, ranged or not
    const b2 = await rawGet(`${wrong.url}${blobPathOf}`, { range: 'bytes=1000-' })
    expect(b2.status).toBe(206)
    expect(b2.headers['content-range']).toBe(`bytes 0-${layer.size - 1}/${layer.size}`)
    expect(b2.body.length).toBe(layer.size)
  })

  test('redirect of blob GETs to another host, which records Authorization', async () => {
    const bearer = await startRegistry({ auth: { type: 'token' } })
    try {
      await pushFixtures(bearer, fixtures, ['busybox'])
      const s = await start({ upstream: bearer, fault: { kind: 'redirect' } })
      const issuer = bearer.tokenIssuer!
      const tok = await httpRequest(`${issuer.realm}?service=${issuer.service}&scope=repository:library/busybox:pull`)
      const token = (JSON.parse(tok.body.toString()) as { token: string }).token
      const res = await rawGet(`${s.url}${blobPathOf}`, { authorization: `Bearer ${token}` })
      expect(res.status).toBe(307)
      const location = new URL(res.headers.location ?? '')
      expect(location.host).toBe(s.redirectTarget.host)
      expect(location.host).not.toBe(s.host)
      // A good client drops Authorization on the new host; the target still serves (presigned).
      const blob = await rawGet(location.toString())
      expect(blob.status).toBe(200)
      expect(sha256(blob.body)).toBe(layer.digest)
      expect(s.redirectTarget.requests[0]?.headers.authorization).toBeUndefined()
      // A leaky client is caught.
      const res2 = await rawGet(`${s.url}${blobPathOf}`, { authorization: `Bearer ${token}` })
      await rawGet(res2.headers.location ?? '', { authorization: `Bearer ${token}` })
      expect(s.redirectTarget.requests[1]?.headers.authorization).toBe(`Bearer ${token}`)
      // 'unauthorized': a valid token gets the upstream's challenge once (re-auth tests).
      s.setFaults({ kind: 'unauthorized', match: 'manifest' })
      const headers = { authorization: `Bearer ${token}`, accept: MANIFEST_ACCEPT }
      const expired = await rawGet(`${s.url}/v2/library/busybox/manifests/latest`, headers)
      expect(expired.status).toBe(401)
      expect(expired.headers['www-authenticate']).toBe(
        `Bearer realm="${issuer.realm}",service="${issuer.service}",scope="repository:library/busybox:pull",error="invalid_token"`,
      )
      expect((await rawGet(`${s.url}/v2/library/busybox/manifests/latest`, headers)).status).toBe(200)
      // Without a token the upstream's challenge comes through unchanged.
      const anon = await rawGet(`${s.url}/v2/library/busybox/manifests/latest`)
      expect(anon.status).toBe(401)
      expect(anon.headers['www-authenticate']).toContain(`realm="${issuer.realm}"`)
    } finally {
      await bearer.stop()
    }
  })

  test('slow body: the client aborts and the server records it', async () => {
    const s = await start({ upstream: registry, fault: { kind: 'slow', chunkSize: 1024, intervalMs: 50 } })
    const t0 = Date.now()
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${s.url}${blobPathOf}`, { agent: false }, (res) => {
        let got = 0
        res.on('data', (c: Buffer) => {
          got += c.length
          if (got >= 3 * 1024) req.destroy()
        })
        res.on('close', () => resolve())
      })
      req.on('error', (e) => (e.message.includes('aborted') || (e as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(e)))
    })
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100)
    await new Promise((r) => setTimeout(r, 200))
    const rec = s.requests.find((r) => r.route === 'blob')
    expect(rec?.aborted).toBe(true)
    expect(rec?.bytesSent).toBeLessThan(layer.size)
  })

  test('paginate: tag list in pages with Link, followable to all 120 tags', async () => {
    const s = await start({ upstream: registry, fault: { kind: 'paginate', pageSize: 50 } })
    const all: string[] = []
    let next: string | undefined = '/v2/test/tags/tags/list'
    let pages = 0
    while (next !== undefined) {
      const res = await httpRequest(`${s.url}${next}`)
      all.push(...(JSON.parse(res.body.toString()) as { tags: string[] }).tags)
      next = /<([^>]+)>;\s*rel="next"/.exec(String(res.headers.link ?? ''))?.[1]
      pages++
    }
    expect(pages).toBe(3)
    expect(all).toEqual(fixtures.images.manyTags.tags)
    const small = await httpRequest(`${s.url}/v2/test/tags/tags/list?n=7`)
    expect((JSON.parse(small.body.toString()) as { tags: string[] }).tags).toHaveLength(7)
    const cat = await httpRequest(`${s.url}/v2/_catalog?n=1`)
    expect(JSON.parse(cat.body.toString())).toEqual({ repositories: ['library/busybox'] })
    expect(cat.headers.link).toBe('</v2/_catalog?n=1&last=library%2Fbusybox>; rel="next"')
  })

  test('imitates a read-only registry from the OCI layout (skopeo pulls from it)', async () => {
    const s = await start({ layout: fixtures.dir, headers: { 'ratelimit-remaining': '99;w=21600' } })
    expect(sha256(await inspectRaw(s, `${s.host}/library/busybox:multi`))).toBe(fixtures.images.multi.digest)
    const dest = path.join(work, 'pull-layout')
    await skopeo(['copy', '--all', '--preserve-digests', '--src-tls-verify=false', `docker://${s.host}/test/layers:latest`, `oci:${dest}:x`])
    await verifyBlobs(dest)
    const tags = await httpRequest(`${s.url}/v2/test/tags/tags/list`)
    expect((JSON.parse(tags.body.toString()) as { tags: string[] }).tags).toHaveLength(120)
    expect(tags.headers['ratelimit-remaining']).toBe('99;w=21600')
    const put = await httpRequest(`${s.url}/v2/x/blobs/uploads/`, { method: 'POST' })
    expect(put.status).toBe(405)
    const ranged = await rawGet(`${s.url}${blobPathOf}`, { range: 'bytes=10-19' })
    expect(ranged.status).toBe(206)
    expect(ranged.body.length).toBe(10)
    expect(ranged.headers['content-range']).toBe(`bytes 10-19/${layer.size}`)
  })

  test('setFaults and reset change behaviour at run time', async () => {
    const s = await start({ upstream: registry })
    expect((await rawGet(`${s.url}${blobPathOf}`)).status).toBe(200)
    s.setFaults({ kind: 'server-error', status: 502, times: 1 })
    expect((await rawGet(`${s.url}${blobPathOf}`)).status).toBe(502)
    expect((await rawGet(`${s.url}${blobPathOf}`)).status).toBe(200)
    s.reset()
    expect(s.requests).toHaveLength(0)
    expect((await rawGet(`${s.url}${blobPathOf}`)).status).toBe(502)
  })
})
