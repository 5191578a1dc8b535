/**
 * Image commands end to end: images/tag/rmi/inspect on the store, pull and push against
 * Debian's docker-registry started on 127.0.0.1 (plain, and with Bearer tokens from the
 * harness's token issuer), login/logout writing Docker's config.json, and prune.
 */
import fs from 'node:fs'
import path from 'node:path'
import { pushFixtures, sharedFixtures, startRegistry, type Registry } from '@ctr/registry-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCliEnv, type CliEnv } from './helpers/cli-env.js'

let env: CliEnv
let plain: Registry
let secured: Registry
const USER = 'alice'
const PASSWORD = 'wonderland'

beforeAll(async () => {
  env = await makeCliEnv()
  plain = await startRegistry()
  secured = await startRegistry({ auth: { type: 'token', users: { [USER]: PASSWORD } } })
  await pushFixtures(plain, await sharedFixtures(), ['busybox'])
}, 120_000)

afterAll(async () => {
  await plain?.stop()
  await secured?.stop()
  if (!env) return
  const left = await env.dispose()
  expect(left, 'left behind by the image tests').toEqual({ states: [], monitors: [], cgroups: [], mounts: [] })
})

interface ImageJson {
  Id: string
  RepoTags: string[]
  Config: { Cmd: string[] | null; Env: string[] }
  RootFS: { Layers: string[] }
}

describe('images, tag, rmi, inspect', () => {
  it('images lists an imported image; -q its id', async () => {
    expect(await env.ok(['images'])).toBe('REPOSITORY   TAG   IMAGE ID   CREATED   SIZE\n')
    await env.ok(['pull', env.image])
    const out = await env.ok(['images'])
    expect(out).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/m)
    expect(out).toMatch(/^localhost\/oci\/oci\s+latest\s+[0-9a-f]{12}\s+\d+ years? ago\s+\d+(\.\d+)?[kM]B$/m)
    const q = (await env.ok(['images', '-q'])).trim().split('\n')
    expect(q).toHaveLength(1)
    expect(q[0]).toMatch(/^[0-9a-f]{12}$/)
  })

  it('tag adds a name for the same image; inspect shows both', async () => {
    expect(await env.ok(['tag', 'localhost/oci/oci:latest', 'mine/busybox:v1'])).toBe('')
    const out = await env.ok(['images'])
    const ids = [...out.matchAll(/^(\S+)\s+(\S+)\s+([0-9a-f]{12})\s/gm)].map((m) => [m[1], m[2], m[3]])
    expect(ids).toContainEqual(['mine/busybox', 'v1', ids[0]![2]])
    expect(new Set(ids.map((x) => x[2])).size).toBe(1)
    const [img] = JSON.parse(await env.ok(['inspect', 'mine/busybox:v1'])) as ImageJson[]
    expect(img!.RepoTags.sort()).toEqual(['localhost/oci/oci:latest', 'mine/busybox:v1'])
    expect(img!.Id).toMatch(/^sha256:[0-9a-f]{64}$/)
    expect(img!.RootFS.Layers).toHaveLength(1)
    expect((await env.ctr(['tag', 'no/such:image', 'x:y'])).code).toBe(125)
  })

  it('rmi by id refuses an image with several names unless -f; by name it untags', async () => {
    const id = (await env.ok(['images', '-q'])).trim()
    const refused = await env.ctr(['rmi', id])
    expect(refused.code).toBe(125)
    expect(refused.stderr).toMatch(/must be forced/)
    expect(await env.ok(['rmi', 'mine/busybox:v1'])).toBe('Untagged: mine/busybox:v1\n')
    expect(await env.ok(['images'])).not.toMatch(/mine\/busybox/)
    const missing = await env.ctr(['rmi', 'mine/busybox:v1'])
    expect(missing.code).toBe(125)
    expect(missing.stderr).toMatch(/no such image/)
  })

  it('rmi refuses an image a container uses; the last name going deletes the data', async () => {
    await env.ok(['tag', 'localhost/oci/oci:latest', 'doomed:1'])
    await env.ok(['run', '--name', 'user', 'doomed:1', 'true'])
    await env.ok(['rmi', 'localhost/oci/oci:latest']) // another name keeps the image
    const inUse = await env.ctr(['rmi', 'doomed:1'])
    expect(inUse.code).toBe(125)
    expect(inUse.stderr).toMatch(/used by container/)
    await env.ok(['rm', 'user'])
    const blobs = () => fs.readdirSync(path.join(env.root, 'blobs', 'sha256')).length
    expect(blobs()).toBeGreaterThan(0)
    const out = await env.ok(['rmi', 'doomed:1'])
    expect(out).toMatch(/^Untagged: doomed:1\n/)
    expect(await env.ok(['images', '-q'])).toBe('')
    // The data of the last minute is kept (a pull elsewhere may not have named it yet); prune
    // with no grace collects it.
    const pruned = await env.ok(['prune', '--grace', '0'])
    expect(pruned).toMatch(/^Deleted Blobs:\n(sha256:[0-9a-f]{64}\n){3}/m)
    expect(blobs()).toBe(0)
    expect(fs.readdirSync(path.join(env.root, 'layers'))).toEqual([])
  })
})

describe('pull and push against a local registry', () => {
  it('pull shows one line per layer when not on a terminal, then runs the image', async () => {
    const ref = `${plain.host}/library/busybox:latest`
    const r = await env.ctr(['pull', ref], { globals: ['--insecure-registry', plain.host] })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^latest: Pulling from library\/busybox$/m)
    expect(r.stdout).toMatch(/^[0-9a-f]{12}: Pull complete \(\d+(\.\d+)?[kM]B\)$/m)
    expect(r.stdout).toMatch(/^Digest: sha256:[0-9a-f]{64}$/m)
    expect(r.stdout).toMatch(/^Status: Downloaded newer image for /m)
    expect(r.stdout.trim().split('\n').pop()).toBe(ref)
    expect(await env.ok(['images'])).toMatch(new RegExp(`^${plain.host.replace(/\./g, '\\.')}/library/busybox\\s+latest\\s`, 'm'))
    const again = await env.ok(['pull', ref], { globals: ['--insecure-registry', plain.host] })
    expect(again).toMatch(/: Already exists$/m)
    expect(again).toMatch(/Image is up to date/)
    const run = await env.ctr(['run', '--rm', '--pull', 'never', ref, 'echo', 'pulled'], { env: { CTR_INSECURE_REGISTRIES: plain.host } })
    expect(run.stdout).toBe('pulled\n')
  })

  it('a plain-HTTP registry not marked insecure fails (125); $CTR_INSECURE_REGISTRIES marks it', async () => {
    const ref = `${plain.host}/library/busybox:latest`
    const r = await env.ctr(['pull', ref])
    expect(r.code).toBe(125)
    expect(r.stderr).toMatch(/^ctr: pull /)
    const ok = await env.ctr(['pull', '-q', ref], { env: { CTR_INSECURE_REGISTRIES: `other:1,${plain.host}` } })
    expect(ok.code).toBe(0)
    expect(ok.stdout).toBe(`${ref}\n`)
  })

  it('run pulls a missing image (progress on stderr, output on stdout)', async () => {
    await env.ok(['rmi', `${plain.host}/library/busybox:latest`])
    const r = await env.ctr(['run', '--rm', `${plain.host}/library/busybox:latest`, 'echo', 'fresh'], { globals: ['--insecure-registry', plain.host] })
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('fresh\n')
    expect(r.stderr).toMatch(/^Unable to find image '.*' locally$/m)
    expect(r.stderr).toMatch(/^Status: Downloaded newer image for /m)
    const never = await env.ctr(['run', '--rm', '--pull', 'never', `${plain.host}/library/nothere:1`, 'true'], { globals: ['--insecure-registry', plain.host] })
    expect(never.code).toBe(125)
    expect(never.stderr).toMatch(/pull policy is "never"/)
  })

  it('push needs a login; login checks the password and writes config.json (0600, base64 auth); push then works', async () => {
    const target = `${secured.host}/mine/bb:v1`
    const g = { globals: ['--insecure-registry', secured.host] }
    await env.ok(['tag', `${plain.host}/library/busybox:latest`, target])
    const denied = await env.ctr(['push', target], g)
    expect(denied.code).toBe(125)
    expect(denied.stderr).toMatch(/^ctr: push .*(401|unauthorized|UNAUTHORIZED|token)/im)

    const config = path.join(env.dockerConfig, 'config.json')
    fs.mkdirSync(env.dockerConfig, { recursive: true })
    fs.writeFileSync(config, JSON.stringify({ auths: { 'other.example': { auth: Buffer.from('o:p').toString('base64') } }, psFormat: 'table {{.ID}}' }))
    const wrong = await env.ctr(['login', '-u', USER, '--password-stdin', secured.host], { ...g, input: 'not-the-password\n' })
    expect(wrong.code).toBe(125)
    expect(wrong.stderr).toMatch(/unauthorized: incorrect username or password/)
    expect(JSON.parse(fs.readFileSync(config, 'utf8')).auths[secured.host]).toBeUndefined()

    const ok = await env.ctr(['login', '-u', USER, '--password-stdin', secured.host], { ...g, input: `${PASSWORD}\n` })
    expect(ok.stderr).toBe('')
    expect(ok.stdout).toBe('Login Succeeded\n')
    const saved = JSON.parse(fs.readFileSync(config, 'utf8')) as { auths: Record<string, { auth: string }>; psFormat: string }
    expect(Buffer.from(saved.auths[secured.host]!.auth, 'base64').toString()).toBe(`${USER}:${PASSWORD}`)
    expect(saved.auths['other.example']).toBeDefined() // the rest of the file is kept
    expect(saved.psFormat).toBe('table {{.ID}}')
    expect(fs.statSync(config).mode & 0o777).toBe(0o600)
    expect(fs.readdirSync(env.dockerConfig).filter((f) => f.includes('tmp'))).toEqual([])

    const pushed = await env.ctr(['push', target], g)
    expect(pushed.stderr).toBe('')
    expect(pushed.code).toBe(0)
    expect(pushed.stdout).toMatch(new RegExp(`^The push refers to repository \\[${secured.host}/mine/bb\\]$`, 'm'))
    expect(pushed.stdout).toMatch(/^[0-9a-f]{12}: Pushed$/m)
    const digest = /^v1: digest: (sha256:[0-9a-f]{64})$/m.exec(pushed.stdout)?.[1]
    expect(digest).toBeDefined()

    // What the registry has is what we pushed: pull it back into another store.
    const other = await makeCliEnv()
    try {
      const back = await other.ctr(['pull', target], { ...g, env: { DOCKER_CONFIG: env.dockerConfig } })
      expect(back.stderr).toBe('')
      expect(back.stdout).toMatch(new RegExp(`^Digest: ${digest}$`, 'm'))
      expect((await other.ctr(['run', '--rm', target, 'echo', 'round-trip'])).stdout).toBe('round-trip\n')
    } finally {
      expect(await other.dispose()).toEqual({ states: [], monitors: [], cgroups: [], mounts: [] })
    }

    expect(await env.ok(['logout', secured.host])).toBe(`Removing login credentials for ${secured.host}\n`)
    expect(JSON.parse(fs.readFileSync(config, 'utf8')).auths[secured.host]).toBeUndefined()
    expect((await env.ctr(['push', target], g)).code).toBe(125)
  })

  it('login without a terminal needs --password-stdin', async () => {
    const r = await env.ctr(['login', '-u', USER, secured.host], { globals: ['--insecure-registry', secured.host], input: '' })
    expect(r.code).toBe(125)
    expect(r.stderr).toMatch(/non-TTY/)
  })
})

describe('prune', () => {
  it('removes stopped containers and unused data, not running containers or tagged images', async () => {
    await env.ok(['run', '--name', 'stopped1', env.image, 'true'])
    await env.ok(['run', '-d', '--name', 'running1', env.image, 'sleep', '60'])
    const stoppedId = JSON.parse(await env.ok(['inspect', '-f', '{{json .Id}}', 'stopped1'])) as string
    await env.ok(['rmi', `${plain.host}/library/busybox:latest`, `${secured.host}/mine/bb:v1`])
    const r = await env.ctr(['prune', '-f'])
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^Deleted Containers:\\n${stoppedId}\\n`, 'm'))
    expect(r.stdout).toMatch(/^Total reclaimed space: /m)
    expect(await env.ok(['ps', '-a', '--format', '{{.Names}}'])).toBe('running1\n')
    expect(await env.ok(['images', '-q'])).not.toBe('')
    expect((await env.ctr(['run', '--rm', '--pull', 'never', env.image, 'true'])).code).toBe(0)
    await env.ok(['rm', '-f', 'running1'])
  })
})
