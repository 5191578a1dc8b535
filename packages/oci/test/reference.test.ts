import { describe, expect, it } from 'vitest'
import { OciError, Reference, apiHost, digestOf, isValidReference, parseReference } from '../src/index.js'

const D = digestOf('reference test')
const D512 = digestOf('reference test', 'sha512')

describe('parseReference: valid forms', () => {
  const cases: [string, { registry: string; repository: string; tag?: string; digest?: string; canonical: string; familiar: string }][] = [
    ['alpine', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest', canonical: 'docker.io/library/alpine:latest', familiar: 'alpine:latest' }],
    ['alpine:3.20', { registry: 'docker.io', repository: 'library/alpine', tag: '3.20', canonical: 'docker.io/library/alpine:3.20', familiar: 'alpine:3.20' }],
    ['user/repo', { registry: 'docker.io', repository: 'user/repo', tag: 'latest', canonical: 'docker.io/user/repo:latest', familiar: 'user/repo:latest' }],
    ['library/alpine', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest', canonical: 'docker.io/library/alpine:latest', familiar: 'alpine:latest' }],
    ['docker.io/alpine', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest', canonical: 'docker.io/library/alpine:latest', familiar: 'alpine:latest' }],
    ['docker.io/library/alpine:edge', { registry: 'docker.io', repository: 'library/alpine', tag: 'edge', canonical: 'docker.io/library/alpine:edge', familiar: 'alpine:edge' }],
    ['index.docker.io/alpine', { registry: 'docker.io', repository: 'library/alpine', tag: 'latest', canonical: 'docker.io/library/alpine:latest', familiar: 'alpine:latest' }],
    ['index.docker.io/user/repo:1', { registry: 'docker.io', repository: 'user/repo', tag: '1', canonical: 'docker.io/user/repo:1', familiar: 'user/repo:1' }],
    ['localhost/x', { registry: 'localhost', repository: 'x', tag: 'latest', canonical: 'localhost/x:latest', familiar: 'localhost/x:latest' }],
    ['localhost:5000/x', { registry: 'localhost:5000', repository: 'x', tag: 'latest', canonical: 'localhost:5000/x:latest', familiar: 'localhost:5000/x:latest' }],
    [
      '127.0.0.1:5000/library/busybox:multi',
      { registry: '127.0.0.1:5000', repository: 'library/busybox', tag: 'multi', canonical: '127.0.0.1:5000/library/busybox:multi', familiar: '127.0.0.1:5000/library/busybox:multi' },
    ],
    ['[::1]:5000/x', { registry: '[::1]:5000', repository: 'x', tag: 'latest', canonical: '[::1]:5000/x:latest', familiar: '[::1]:5000/x:latest' }],
    ['[::1]/x:t', { registry: '[::1]', repository: 'x', tag: 't', canonical: '[::1]/x:t', familiar: '[::1]/x:t' }],
    ['[fe80::1]/x', { registry: '[fe80::1]', repository: 'x', tag: 'latest', canonical: '[fe80::1]/x:latest', familiar: '[fe80::1]/x:latest' }],
    ['ghcr.io/o/r:tag', { registry: 'ghcr.io', repository: 'o/r', tag: 'tag', canonical: 'ghcr.io/o/r:tag', familiar: 'ghcr.io/o/r:tag' }],
    ['quay.io/a/b/c/d:v1.2.3-rc_1', { registry: 'quay.io', repository: 'a/b/c/d', tag: 'v1.2.3-rc_1', canonical: 'quay.io/a/b/c/d:v1.2.3-rc_1', familiar: 'quay.io/a/b/c/d:v1.2.3-rc_1' }],
    ['Registry.Example.COM:443/x', { registry: 'Registry.Example.COM:443', repository: 'x', tag: 'latest', canonical: 'Registry.Example.COM:443/x:latest', familiar: 'Registry.Example.COM:443/x:latest' }],
    ['my-registry.local:5000/team/app:Latest_1', { registry: 'my-registry.local:5000', repository: 'team/app', tag: 'Latest_1', canonical: 'my-registry.local:5000/team/app:Latest_1', familiar: 'my-registry.local:5000/team/app:Latest_1' }],
    ['a-b__c/d.e--f_g', { registry: 'docker.io', repository: 'a-b__c/d.e--f_g', tag: 'latest', canonical: 'docker.io/a-b__c/d.e--f_g:latest', familiar: 'a-b__c/d.e--f_g:latest' }],
    // A first component with a dot is a registry, so '_' there is an invalid host name.
    ['a.b/c', { registry: 'a.b', repository: 'c', tag: 'latest', canonical: 'a.b/c:latest', familiar: 'a.b/c:latest' }],
    [`repo@${D}`, { registry: 'docker.io', repository: 'library/repo', digest: D, canonical: `docker.io/library/repo@${D}`, familiar: `repo@${D}` }],
    [`repo:tag@${D}`, { registry: 'docker.io', repository: 'library/repo', tag: 'tag', digest: D, canonical: `docker.io/library/repo:tag@${D}`, familiar: `repo:tag@${D}` }],
    [`ghcr.io/o/r@${D512}`, { registry: 'ghcr.io', repository: 'o/r', digest: D512, canonical: `ghcr.io/o/r@${D512}`, familiar: `ghcr.io/o/r@${D512}` }],
    [`localhost:5000/x:1@${D}`, { registry: 'localhost:5000', repository: 'x', tag: '1', digest: D, canonical: `localhost:5000/x:1@${D}`, familiar: `localhost:5000/x:1@${D}` }],
    // Docker's rule: without a '/', a host:port is a name and a tag.
    ['localhost:5000', { registry: 'docker.io', repository: 'library/localhost', tag: '5000', canonical: 'docker.io/library/localhost:5000', familiar: 'localhost:5000' }],
    // 'localhost' is a domain only when a path follows it.
    ['localhost', { registry: 'docker.io', repository: 'library/localhost', tag: 'latest', canonical: 'docker.io/library/localhost:latest', familiar: 'localhost:latest' }],
    ['x/y.z', { registry: 'docker.io', repository: 'x/y.z', tag: 'latest', canonical: 'docker.io/x/y.z:latest', familiar: 'x/y.z:latest' }],
    ['0/1', { registry: 'docker.io', repository: '0/1', tag: 'latest', canonical: 'docker.io/0/1:latest', familiar: '0/1:latest' }],
  ]

  it.each(cases)('%s', (input, want) => {
    const ref = parseReference(input)
    expect(ref).toBeInstanceOf(Reference)
    expect(ref.registry).toBe(want.registry)
    expect(ref.repository).toBe(want.repository)
    expect(ref.tag).toBe(want.tag)
    expect(ref.digest).toBe(want.digest)
    expect(ref.toString()).toBe(want.canonical)
    expect(String(ref)).toBe(want.canonical)
    expect(ref.familiar).toBe(want.familiar)
    // The canonical form parses back to itself.
    expect(parseReference(ref.toString()).toString()).toBe(want.canonical)
    expect(isValidReference(input)).toBe(true)
  })

  it('the digest wins for fetching, the tag is kept for display', () => {
    const ref = parseReference(`alpine:3.20@${D}`)
    expect(ref.manifestReference).toBe(D)
    expect(ref.tag).toBe('3.20')
    expect(parseReference('alpine:3.20').manifestReference).toBe('3.20')
    expect(parseReference('alpine').manifestReference).toBe('latest')
  })

  it('exposes name and familiarName', () => {
    expect(parseReference('alpine').name).toBe('docker.io/library/alpine')
    expect(parseReference('alpine').familiarName).toBe('alpine')
    expect(parseReference('user/repo').familiarName).toBe('user/repo')
    expect(parseReference('docker.io/library/a/b').familiarName).toBe('library/a/b')
    expect(parseReference('ghcr.io/o/r').familiarName).toBe('ghcr.io/o/r')
  })

  it('withTag, withDigest, equals, toJSON', () => {
    const ref = parseReference('alpine:3.20')
    expect(ref.withTag('edge').toString()).toBe('docker.io/library/alpine:edge')
    expect(ref.withDigest(D).toString()).toBe(`docker.io/library/alpine:3.20@${D}`)
    expect(parseReference(`alpine@${D}`).withTag('x').toString()).toBe('docker.io/library/alpine:x')
    expect(ref.equals('docker.io/library/alpine:3.20')).toBe(true)
    expect(ref.equals(parseReference('index.docker.io/library/alpine:3.20'))).toBe(true)
    expect(ref.equals('alpine')).toBe(false)
    expect(JSON.stringify({ ref })).toBe('{"ref":"docker.io/library/alpine:3.20"}')
    expect(Reference.parse('busybox').toString()).toBe('docker.io/library/busybox:latest')
    expect(() => ref.withTag('-bad')).toThrow(/tag "-bad" is invalid/)
    expect(() => ref.withDigest('sha256:1234')).toThrow(/sha256 needs 64 hex digits/)
  })

  it('validates parts given to the constructor', () => {
    expect(new Reference({ registry: 'ghcr.io', repository: 'o/r', tag: 'v1' }).toString()).toBe('ghcr.io/o/r:v1')
    expect(() => new Reference({ registry: 'bad_host', repository: 'r' })).toThrow(/registry "bad_host" is not a valid host name/)
    expect(() => new Reference({ registry: 'ghcr.io', repository: 'O/r' })).toThrow(/must be lowercase/)
  })

  it('accepts a name of exactly 255 characters', () => {
    const repo = `a/${'b'.repeat(255 - 'docker.io/a/'.length)}`
    expect(parseReference(repo).name).toHaveLength(255)
  })

  it('accepts a 128-character tag', () => {
    expect(parseReference(`alpine:${'t'.repeat(128)}`).tag).toHaveLength(128)
  })
})

describe('parseReference: invalid references', () => {
  const cases: [string, RegExp][] = [
    ['', /"": it is empty/],
    ['Alpine', /repository name must be lowercase \("Alpine" has uppercase letters\)/],
    ['ghcr.io/Owner/repo', /repository name must be lowercase \("Owner"/],
    ['alpine:', /the tag after ':' is empty/],
    ['alpine:-tag', /the tag "-tag" is invalid/],
    ['alpine:.tag', /the tag ".tag" is invalid/],
    ['alpine:ta/g', /registry "alpine:ta" has an invalid port "ta"/],
    [`alpine:${'t'.repeat(129)}`, /the tag is 129 characters long; the limit is 128/],
    ['alpine@', /the digest after '@' is empty/],
    ['alpine@sha256:abc', /digest "sha256:abc": sha256 needs 64 hex digits, got 3/],
    [`alpine@md5:${'a'.repeat(32)}`, /unsupported algorithm "md5"/],
    [`alpine@sha256:${'A'.repeat(64)}`, /must use lowercase hex digits/],
    [`alpine@${D}@${D}`, /more than one '@'/],
    ['a//b', /empty path component/],
    ['a/', /ends with "\/"/],
    ['/a', /starts with "\/"/],
    ['ghcr.io/', /repository name after the registry "ghcr.io\/" is missing/],
    [':tag', /repository name is missing/],
    [`@${D}`, /repository name is missing/],
    ['a_/b', /path component "a_" is invalid/],
    ['a/b__', /path component "b__" is invalid/],
    ['a/_b', /path component "_b" is invalid/],
    ['a/b...c', /path component "b...c" is invalid/],
    ['a/b___c', /path component "b___c" is invalid/],
    ['-x.com/y', /registry "-x.com" is not a valid host name/],
    ['x_y.com/z', /registry "x_y.com" is not a valid host name/],
    ['a.b_c/d', /registry "a.b_c" is not a valid host name/],
    ['localhost:port/x', /registry "localhost:port" has an invalid port "port"/],
    ['localhost:99999/x', /port 99999, over 65535/],
    ['localhost:/x', /invalid port ""/],
    ['[::1/x', /unclosed '\['/],
    ['[::1]x/y', /characters after '\]' that are not a port/],
    ['[zz::1]:5000/x', /not a valid IPv6 address/],
    ['[::1]:5000', /looks like a registry but no repository follows it/],
    ['alpine latest', /contains whitespace/],
    [' alpine', /contains whitespace/],
    ['https://ghcr.io/o/r', /no scheme/],
    ['a'.repeat(64).replace(/a/g, 'f'), /64-character hex string is an image ID/],
    [`a/${'b'.repeat(300)}`, /the name is \d+ characters long; the limit is 255/],
    ['ghcr.io/o/r:v1:v2', /path component "r:v1" is invalid/],
  ]

  it.each(cases)('%j', (input, message) => {
    let caught: unknown
    try {
      parseReference(input)
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(OciError)
    const err = caught as OciError
    expect(err.code).toBe('ERR_OCI_INVALID_REFERENCE')
    expect(err.message).toMatch(/^invalid reference /)
    expect(err.message).toMatch(message)
    expect(isValidReference(input)).toBe(false)
  })

  it('rejects non-strings', () => {
    expect(() => parseReference(42 as unknown as string)).toThrow(/expected a string, got number/)
  })
})

describe('apiHost', () => {
  it('maps Docker Hub to registry-1.docker.io', () => {
    expect(apiHost(parseReference('alpine'))).toBe('registry-1.docker.io')
    expect(apiHost(parseReference('index.docker.io/user/repo'))).toBe('registry-1.docker.io')
    expect(apiHost('docker.io')).toBe('registry-1.docker.io')
    expect(apiHost('index.docker.io')).toBe('registry-1.docker.io')
  })

  it('keeps other registries as they are', () => {
    expect(apiHost(parseReference('127.0.0.1:5000/library/busybox:multi'))).toBe('127.0.0.1:5000')
    expect(apiHost(parseReference('[::1]:5000/x'))).toBe('[::1]:5000')
    expect(apiHost({ registry: 'ghcr.io', repository: 'o/r' })).toBe('ghcr.io')
  })
})
