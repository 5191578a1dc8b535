import { describe, expect, it } from 'vitest'
import {
  MediaType,
  OciError,
  PlatformNotFoundError,
  formatPlatform,
  hostPlatform,
  indexPlatforms,
  isAttestation,
  matchPlatform,
  matchingManifests,
  nodePlatform,
  normalizePlatform,
  parseManifest,
  parsePlatform,
  selectManifest,
  type Descriptor,
  type Platform,
} from '../src/index.js'
import { dg, dockerManifestList, ociIndexWithAttestations } from './fixtures.js'

const list = parseManifest(JSON.stringify(dockerManifestList)).value as { manifests: Descriptor[] }
const ociIndex = parseManifest(JSON.stringify(ociIndexWithAttestations)).value as { manifests: Descriptor[] }

const entry = (name: string, platform?: Platform, annotations?: Record<string, string>): Descriptor => ({
  mediaType: MediaType.OciManifest,
  digest: dg(name),
  size: 100,
  ...(platform === undefined ? {} : { platform }),
  ...(annotations === undefined ? {} : { annotations }),
})

describe('parsePlatform', () => {
  const cases: [string, Platform][] = [
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['linux/arm64', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['linux/arm', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux/arm/v6', { os: 'linux', architecture: 'arm', variant: 'v6' }],
    ['linux/arm/7', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux/aarch64', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['linux/aarch64/8', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['linux/arm64/v8.0', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['linux/arm64/v8.2', { os: 'linux', architecture: 'arm64', variant: 'v8.2' }],
    ['linux/x86_64', { os: 'linux', architecture: 'amd64' }],
    ['linux/x86-64', { os: 'linux', architecture: 'amd64' }],
    ['linux/amd64/v3', { os: 'linux', architecture: 'amd64', variant: 'v3' }],
    ['linux/armhf', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux/armel', { os: 'linux', architecture: 'arm', variant: 'v6' }],
    ['linux/armv7l', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux/i686', { os: 'linux', architecture: '386' }],
    ['Linux/AMD64', { os: 'linux', architecture: 'amd64' }],
    ['linux/ppc64le', { os: 'linux', architecture: 'ppc64le' }],
    ['linux/riscv64', { os: 'linux', architecture: 'riscv64' }],
    ['arm64', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['s390x', { os: 'linux', architecture: 's390x' }],
    ['windows(10.0.17763)/amd64', { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763' }],
    ['macos/arm64', { os: 'darwin', architecture: 'arm64', variant: 'v8' }],
    [' linux/amd64 ', { os: 'linux', architecture: 'amd64' }],
  ]
  it.each(cases)('%j', (input, want) => {
    expect(parsePlatform(input)).toEqual(want)
  })

  it('takes the host architecture for an OS alone', () => {
    expect(parsePlatform('linux')).toEqual({ ...hostPlatform(), os: 'linux' })
  })

  const invalid: [string, RegExp][] = [
    ['', /it is empty; expected os\/arch\[\/variant\]/],
    ['linux/', /component 2 is empty/],
    ['/amd64', /component 1 is empty/],
    ['linux/arm/v7/extra', /it has 4 components; expected os\/arch\[\/variant\]/],
    ['linux/am d64', /component "am d64" has invalid characters/],
    ['linux/arm64/v8!', /component "v8!" has invalid characters/],
  ]
  it.each(invalid)('rejects %j', (input, message) => {
    let err: unknown
    try {
      parsePlatform(input)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(OciError)
    expect((err as OciError).code).toBe('ERR_OCI_INVALID_PLATFORM')
    expect((err as OciError).message).toMatch(/^invalid platform /)
    expect((err as OciError).message).toMatch(message)
  })
})

describe('normalizePlatform and formatPlatform', () => {
  it('normalises and keeps extra fields', () => {
    expect(normalizePlatform({ os: 'Linux', architecture: 'aarch64', 'os.features': ['x'] })).toEqual({
      os: 'linux',
      architecture: 'arm64',
      variant: 'v8',
      'os.features': ['x'],
    })
    expect(normalizePlatform({ os: 'linux', architecture: 'arm', variant: '' })).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' })
    expect(normalizePlatform({ os: 'linux', architecture: 'amd64', variant: undefined })).toEqual({ os: 'linux', architecture: 'amd64' })
    // An explicit variant is not overridden by an alias's implied one.
    expect(normalizePlatform({ os: 'linux', architecture: 'armhf', variant: 'v6' }).variant).toBe('v6')
  })

  it('formats', () => {
    expect(formatPlatform({ os: 'linux', architecture: 'amd64' })).toBe('linux/amd64')
    expect(formatPlatform({ os: 'linux', architecture: 'arm', variant: 'v7' })).toBe('linux/arm/v7')
  })
})

describe('nodePlatform and hostPlatform', () => {
  it('maps Node names to OCI names', () => {
    expect(nodePlatform('linux', 'x64')).toEqual({ os: 'linux', architecture: 'amd64' })
    expect(nodePlatform('linux', 'arm64')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' })
    expect(nodePlatform('linux', 'arm', '6')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v6' })
    expect(nodePlatform('linux', 'arm', 7)).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' })
    expect(nodePlatform('linux', 'arm')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' })
    expect(nodePlatform('linux', 'ia32')).toEqual({ os: 'linux', architecture: '386' })
    expect(nodePlatform('linux', 'ppc64')).toEqual({ os: 'linux', architecture: 'ppc64le' })
    expect(nodePlatform('aix', 'ppc64', undefined, false)).toEqual({ os: 'aix', architecture: 'ppc64' })
    expect(nodePlatform('linux', 's390x')).toEqual({ os: 'linux', architecture: 's390x' })
    expect(nodePlatform('linux', 'riscv64')).toEqual({ os: 'linux', architecture: 'riscv64' })
    expect(nodePlatform('linux', 'loong64')).toEqual({ os: 'linux', architecture: 'loong64' })
    expect(nodePlatform('linux', 'mipsel')).toEqual({ os: 'linux', architecture: 'mipsle' })
    expect(nodePlatform('win32', 'x64')).toEqual({ os: 'windows', architecture: 'amd64' })
    expect(nodePlatform('darwin', 'arm64')).toEqual({ os: 'darwin', architecture: 'arm64', variant: 'v8' })
    expect(nodePlatform('sunos', 'x64')).toEqual({ os: 'solaris', architecture: 'amd64' })
  })

  it('describes this host', () => {
    const p = hostPlatform()
    expect(p.os).toBe(process.platform === 'win32' ? 'windows' : process.platform)
    if (process.arch === 'x64') expect(p).toEqual({ os: p.os, architecture: 'amd64' })
    if (process.arch === 'arm64') expect(p.variant).toBe('v8')
  })
})

describe('matchPlatform', () => {
  const cases: [string, string | Platform, string | Platform, boolean][] = [
    ['exact', 'linux/amd64', 'linux/amd64', true],
    ['other arch', 'linux/amd64', 'linux/arm64', false],
    ['other os', 'linux/amd64', 'windows/amd64', false],
    ['arm v7 runs v6', 'linux/arm/v7', 'linux/arm/v6', true],
    ['arm v7 runs v5', 'linux/arm/v7', 'linux/arm/v5', true],
    ['arm v6 does not run v7', 'linux/arm/v6', 'linux/arm/v7', false],
    ['arm without variant is v7', 'linux/arm', { os: 'linux', architecture: 'arm' }, true],
    ['arm default v7 does not run v8', 'linux/arm', 'linux/arm/v8', false],
    ['arm64 without variant = v8', 'linux/arm64', { os: 'linux', architecture: 'arm64' }, true],
    ['arm64 v8 vs image without variant', 'linux/arm64/v8', { os: 'linux', architecture: 'arm64' }, true],
    ['arm64 without variant vs image v8', { os: 'linux', architecture: 'arm64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }, true],
    ['arm64 v8 does not run v9', 'linux/arm64/v8', 'linux/arm64/v9', false],
    ['arm64 v9 runs v8', 'linux/arm64/v9', 'linux/arm64/v8', true],
    ['arm64 v8.2 runs v8', 'linux/arm64/v8.2', 'linux/arm64', true],
    ['aarch64 alias', { os: 'linux', architecture: 'aarch64' }, 'linux/arm64', true],
    ['x86_64 alias', { os: 'linux', architecture: 'x86_64' }, 'linux/amd64', true],
    ['amd64 does not run amd64/v3', 'linux/amd64', 'linux/amd64/v3', false],
    ['amd64/v3 runs amd64', 'linux/amd64/v3', 'linux/amd64', true],
    ['amd64/v3 runs amd64/v2', 'linux/amd64/v3', 'linux/amd64/v2', true],
    ['arm64 does not run arm', 'linux/arm64', 'linux/arm/v7', false],
    ['other variants must be equal', { os: 'linux', architecture: 'mips64le', variant: 'r6' }, { os: 'linux', architecture: 'mips64le', variant: 'r2' }, false],
    ['no variant wanted', 'linux/ppc64le', { os: 'linux', architecture: 'ppc64le', variant: 'power9' }, true],
    ['windows build must agree', 'windows(10.0.17763)/amd64', { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.5329' }, true],
    ['windows other build', 'windows(10.0.17763)/amd64', { os: 'windows', architecture: 'amd64', 'os.version': '10.0.20348.2227' }, false],
  ]
  it.each(cases)('%s', (_name, want, have, expected) => {
    expect(matchPlatform(want, have)).toBe(expected)
  })
})

describe('selectManifest', () => {
  it('picks each platform from a Docker manifest list', () => {
    expect(selectManifest(list, 'linux/amd64').digest).toBe(dg('list-amd64'))
    expect(selectManifest(list, 'linux/arm64').digest).toBe(dg('list-arm64'))
    expect(selectManifest(list, 'linux/arm64/v8').digest).toBe(dg('list-arm64'))
    expect(selectManifest(list, 'linux/arm/v7').digest).toBe(dg('list-armv7'))
    expect(selectManifest(list, 'linux/arm/v6').digest).toBe(dg('list-armv6'))
    expect(selectManifest(list, 'linux/arm/v5').digest).toBe(dg('list-armv5'))
    expect(selectManifest(list, 'linux/386').digest).toBe(dg('list-386'))
    expect(selectManifest(list, 'linux/s390x').digest).toBe(dg('list-s390x'))
  })

  it('a v7 host takes v6 when there is no v7, then v5', () => {
    const withoutV7 = { manifests: list.manifests.filter((m) => m.platform?.variant !== 'v7') }
    expect(selectManifest(withoutV7, 'linux/arm/v7').digest).toBe(dg('list-armv6'))
    const onlyV5 = { manifests: list.manifests.filter((m) => m.platform?.variant !== 'v7' && m.platform?.variant !== 'v6') }
    expect(selectManifest(onlyV5, 'linux/arm/v7').digest).toBe(dg('list-armv5'))
    expect(matchingManifests(list, 'linux/arm/v7').map((m) => m.platform?.variant)).toEqual(['v7', 'v6', 'v5'])
    expect(matchingManifests(list, 'linux/arm/v6').map((m) => m.platform?.variant)).toEqual(['v6', 'v5'])
  })

  it('prefers the exact variant over index order', () => {
    const index = {
      manifests: [
        entry('v5', { os: 'linux', architecture: 'arm', variant: 'v5' }),
        entry('v6', { os: 'linux', architecture: 'arm', variant: 'v6' }),
        entry('v7', { os: 'linux', architecture: 'arm', variant: 'v7' }),
      ],
    }
    expect(selectManifest(index, 'linux/arm/v7').digest).toBe(dg('v7'))
    expect(selectManifest(index, 'linux/arm/v6').digest).toBe(dg('v6'))
  })

  it('matches arm64 entries with and without a variant', () => {
    const noVariant = { manifests: [entry('amd64', { os: 'linux', architecture: 'amd64' }), entry('arm64', { os: 'linux', architecture: 'arm64' })] }
    expect(selectManifest(noVariant, 'linux/arm64/v8').digest).toBe(dg('arm64'))
    expect(selectManifest(noVariant, 'linux/arm64').digest).toBe(dg('arm64'))
    expect(selectManifest(noVariant, { os: 'linux', architecture: 'aarch64' }).digest).toBe(dg('arm64'))
    const withVariant = { manifests: [entry('arm64v8', { os: 'linux', architecture: 'arm64', variant: 'v8' })] }
    expect(selectManifest(withVariant, 'linux/arm64').digest).toBe(dg('arm64v8'))
    expect(selectManifest(withVariant, { os: 'linux', architecture: 'arm64' }).digest).toBe(dg('arm64v8'))
  })

  it('skips attestation entries', () => {
    expect(isAttestation(ociIndex.manifests[2]!)).toBe(true)
    expect(isAttestation(ociIndex.manifests[0]!)).toBe(false)
    expect(indexPlatforms(ociIndex).map(formatPlatform)).toEqual(['linux/amd64', 'linux/arm64/v8'])
    expect(selectManifest(ociIndex, 'linux/amd64').digest).toBe(dg('amd64'))
    expect(selectManifest(ociIndex, 'linux/arm64').digest).toBe(dg('arm64'))
    // unknown/unknown never matches, even when asked for literally.
    expect(() => selectManifest(ociIndex, 'unknown/unknown')).toThrow(PlatformNotFoundError)
    // The annotation alone marks an attestation, whatever its platform says.
    const annotated = {
      manifests: [entry('att', { os: 'linux', architecture: 'amd64' }, { 'vnd.docker.reference.type': 'attestation-manifest' }), entry('img', { os: 'linux', architecture: 'amd64' })],
    }
    expect(selectManifest(annotated, 'linux/amd64').digest).toBe(dg('img'))
  })

  it('falls back to entries without a platform, after any match', () => {
    const index = { manifests: [entry('anything'), entry('amd64', { os: 'linux', architecture: 'amd64' })] }
    expect(selectManifest(index, 'linux/amd64').digest).toBe(dg('amd64'))
    expect(selectManifest(index, 'linux/arm64').digest).toBe(dg('anything'))
  })

  it('defaults to the host platform', () => {
    const host = hostPlatform()
    const index = { manifests: [entry('other', { os: 'plan9', architecture: 'mips' }), entry('host', host)] }
    expect(selectManifest(index).digest).toBe(dg('host'))
  })

  it('lists the available platforms when none matches', () => {
    let err: unknown
    try {
      selectManifest(ociIndex, 'linux/s390x')
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(PlatformNotFoundError)
    const e = err as PlatformNotFoundError
    expect(e.code).toBe('ERR_OCI_PLATFORM_NOT_FOUND')
    expect(e.message).toBe('no image for platform linux/s390x in the index (available: linux/amd64, linux/arm64/v8)')
    expect(e.wanted).toEqual({ os: 'linux', architecture: 's390x' })
    expect(e.available.map(formatPlatform)).toEqual(['linux/amd64', 'linux/arm64/v8'])

    // A 32-bit arm/v8 CPU runs v7 code.
    expect(selectManifest(list, 'linux/arm/v8').digest).toBe(dg('list-armv7'))
    expect(() => selectManifest(list, 'linux/mips64le')).toThrow(/no image for platform linux\/mips64le/)
    expect(() => selectManifest(list, 'windows/amd64')).toThrow(
      'no image for platform windows/amd64 in the index (available: linux/amd64, linux/arm/v5, linux/arm/v6, linux/arm/v7, linux/arm64/v8, linux/386, linux/ppc64le, linux/s390x)',
    )
    expect(() => selectManifest({ manifests: [] }, 'linux/amd64')).toThrow('no image for platform linux/amd64 in the index (the index lists no platforms)')
  })

  it('rejects an invalid wanted platform', () => {
    expect(() => selectManifest(list, 'linux//v7')).toThrow(/invalid platform "linux\/\/v7": component 2 is empty/)
  })
})
