/**
 * Authentication pieces that need no registry: WWW-Authenticate parsing (RFC 9110), scope
 * merging, and Docker config.json lookup with its precedence (credHelpers, credsStore,
 * auths) through real `docker-credential-*` programs on PATH.
 */
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { credentialsFromDockerConfig, mergeScopes, parseChallenges, RegistryError } from '../src/index.js'

describe('parseChallenges', () => {
  it('reads a Docker Hub Bearer challenge', () => {
    expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } },
    ])
  })

  it('reads several challenges, tokens and quoted strings with escapes and commas', () => {
    const c = parseChallenges('Basic realm="a \\"quoted\\" realm, with comma", Bearer realm=https://x/token , error=insufficient_scope,scope="a:b:pull b:c:push"')
    expect(c).toEqual([
      { scheme: 'basic', params: { realm: 'a "quoted" realm, with comma' } },
      { scheme: 'bearer', params: { realm: 'https://x/token', error: 'insufficient_scope', scope: 'a:b:pull b:c:push' } },
    ])
  })

  it('lower-cases schemes and parameter names, keeps values', () => {
    expect(parseChallenges('BEARER Realm="R",SERVICE="S"')).toEqual([{ scheme: 'bearer', params: { realm: 'R', service: 'S' } }])
  })

  it('reads a token68', () => {
    expect(parseChallenges('Negotiate abc==')[0]).toMatchObject({ scheme: 'negotiate', token68: 'abc==' })
  })

  it('never throws on garbage', () => {
    for (const h of ['', ',,,', '"', '=', 'Bearer realm="unterminated', 'Bearer ,,, realm=']) expect(() => parseChallenges(h)).not.toThrow()
    expect(parseChallenges('')).toEqual([])
  })
})

describe('mergeScopes', () => {
  it('merges actions per resource and sorts', () => {
    expect(mergeScopes(['repository:a:pull'], ['repository:a:push', 'repository:b:pull'], ['repository:a:pull'])).toEqual([
      'repository:a:pull,push',
      'repository:b:pull',
    ])
  })
  it('keeps resource names with colons (host:port in a name)', () => {
    expect(mergeScopes(['repository:host:5000/x:pull'])).toEqual(['repository:host:5000/x:pull'])
  })
})

describe('credentials from a Docker config.json', () => {
  let dir: string
  const savedPath = process.env.PATH
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ctr-creds-'))
    const bin = path.join(dir, 'bin')
    await fs.mkdir(bin)
    // Credential helpers as Docker runs them: `get`, the server URL on stdin, JSON out.
    const helper = (name: string, script: string) => fs.writeFile(path.join(bin, `docker-credential-${name}`), `#!/bin/sh\n${script}\n`, { mode: 0o755 })
    await helper('fake', 'read url; case "$url" in reg.example:5443) echo \'{"ServerURL":"reg.example:5443","Username":"helper-user","Secret":"helper-pass"}\';; *) echo "credentials not found in native keychain"; exit 1;; esac')
    await helper('store', 'read url; case "$url" in store.example) echo \'{"Username":"<token>","Secret":"id-token"}\';; *) echo "credentials not found in native keychain"; exit 1;; esac')
    await helper('broken', 'echo "boom" >&2; exit 3')
    process.env.PATH = `${bin}:${savedPath}`
  })
  afterAll(async () => {
    process.env.PATH = savedPath
    await fs.rm(dir, { recursive: true, force: true })
  })

  async function config(content: unknown): Promise<string> {
    const file = path.join(dir, `config-${Math.random().toString(36).slice(2)}.json`)
    await fs.writeFile(file, typeof content === 'string' ? content : JSON.stringify(content))
    return file
  }

  it('uses credHelpers before credsStore before auths', async () => {
    const file = await config({
      credHelpers: { 'reg.example:5443': 'fake' },
      credsStore: 'store',
      auths: { 'reg.example:5443': { auth: Buffer.from('auths-user:auths-pass').toString('base64') }, 'other.example': { auth: Buffer.from('o:p').toString('base64') } },
    })
    expect(await credentialsFromDockerConfig('reg.example:5443', file)).toEqual({ username: 'helper-user', password: 'helper-pass' })
    expect(await credentialsFromDockerConfig('store.example', file)).toEqual({ identityToken: 'id-token' })
    // the store has nothing for it: auths answers
    expect(await credentialsFromDockerConfig('other.example', file)).toEqual({ username: 'o', password: 'p' })
    expect(await credentialsFromDockerConfig('nowhere.example', file)).toBeUndefined()
  })

  it('knows Docker Hub by all its names', async () => {
    const file = await config({ auths: { 'https://index.docker.io/v1/': { auth: Buffer.from('hub:secret').toString('base64') } } })
    for (const r of ['docker.io', 'index.docker.io', 'registry-1.docker.io']) {
      expect(await credentialsFromDockerConfig(r, file)).toEqual({ username: 'hub', password: 'secret' })
    }
  })

  it('reads identity tokens and https:// keys', async () => {
    const file = await config({ auths: { 'https://ghcr.io': { identitytoken: 'tok' } } })
    expect(await credentialsFromDockerConfig('ghcr.io', file)).toEqual({ identityToken: 'tok' })
  })

  it('a missing file means no credentials', async () => {
    expect(await credentialsFromDockerConfig('x.example', path.join(dir, 'missing.json'))).toBeUndefined()
  })

  it('a malformed file, bad base64 auth, or a failing helper is ERR_REGISTRY_AUTH_CONFIG', async () => {
    const cases = [
      await config('{ not json'),
      await config({ auths: { 'x.example': { auth: Buffer.from('no-colon').toString('base64') } } }),
      await config({ credHelpers: { 'x.example': 'broken' } }),
      await config({ credHelpers: { 'x.example': 'not-installed' } }),
    ]
    for (const file of cases) {
      const err = await credentialsFromDockerConfig('x.example', file).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(RegistryError)
      expect((err as RegistryError).code).toBe('ERR_REGISTRY_AUTH_CONFIG')
    }
  })

  it('names the field of a config.json that does not fit the schema', async () => {
    const file = await config({ auths: { 'x.example': { auth: 1 } } })
    const err = (await credentialsFromDockerConfig('x.example', file).catch((e: unknown) => e)) as RegistryError
    expect(err.code).toBe('ERR_REGISTRY_AUTH_CONFIG')
    expect(err.message).toContain('config.json.auths["x.example"].auth: expected a string, got 1')
  })
})
