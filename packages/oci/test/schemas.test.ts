import { describe, expect, it } from 'vitest'
import {
  DescriptorSchema,
  ImageIndexSchema,
  MAX_MANIFEST_SIZE,
  MediaType,
  OciError,
  PlatformSchema,
  checkDocument,
  digestOf,
  manifestMediaType,
  parseDocument,
  parseImageConfig,
  parseLayoutIndex,
  parseManifest,
  parseOciLayout,
  type ParsedManifest,
} from '../src/index.js'
import { dg, dockerImageConfig, dockerManifest, dockerManifestList, ociImageConfig, ociIndexWithAttestations, ociManifest } from './fixtures.js'

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v, null, 3))
const clone = <T>(v: T): T => structuredClone(v)

function thrown(fn: () => unknown): OciError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(OciError)
    return err as OciError
  }
  throw new Error('expected a throw')
}

describe('parseManifest: acceptance', () => {
  it('parses an OCI index with attestation entries', () => {
    const m = parseManifest(json(ociIndexWithAttestations), MediaType.OciIndex)
    expect(m.kind).toBe('index')
    expect(m.mediaType).toBe(MediaType.OciIndex)
    if (m.kind !== 'index') throw new Error('unreachable')
    expect(m.value.manifests).toHaveLength(4)
    expect(m.value.manifests[2]?.annotations?.['vnd.docker.reference.type']).toBe('attestation-manifest')
    expect(m.value.annotations?.['org.opencontainers.image.created']).toBe('2024-06-01T00:00:00Z')
  })

  it('parses a Docker manifest list', () => {
    const m = parseManifest(json(dockerManifestList), MediaType.DockerManifestList)
    expect(m).toMatchObject({ kind: 'index', mediaType: MediaType.DockerManifestList })
    if (m.kind !== 'index') throw new Error('unreachable')
    expect(m.value.manifests.map((d) => d.platform?.variant)).toEqual([undefined, 'v5', 'v6', 'v7', 'v8', undefined, undefined, undefined])
  })

  it('parses a Docker schema 2 manifest', () => {
    const m = parseManifest(json(dockerManifest), `${MediaType.DockerManifest}; charset=utf-8`)
    expect(m).toMatchObject({ kind: 'manifest', mediaType: MediaType.DockerManifest })
    if (m.kind !== 'manifest') throw new Error('unreachable')
    expect(m.value.config.mediaType).toBe(MediaType.DockerConfig)
    expect(m.value.layers[0]?.size).toBe(2152262)
  })

  it('parses an OCI manifest with zstd, non-distributable and annotated layers', () => {
    const m = parseManifest(json(ociManifest), MediaType.OciManifest)
    if (m.kind !== 'manifest') throw new Error('unreachable')
    expect(m.value.layers.map((l) => l.mediaType)).toEqual([MediaType.OciLayerGzip, MediaType.OciLayerZstd, MediaType.OciLayerNondistributableGzip])
    expect(m.value.layers[2]?.urls).toEqual(['https://mcr.microsoft.com/v2/windows/blobs/sha256:1234'])
  })

  it('accepts a string body', () => {
    expect(parseManifest(JSON.stringify(ociManifest)).kind).toBe('manifest')
  })

  it('keeps unknown fields (registries add their own)', () => {
    const doc = { ...clone(ociManifest), 'x-registry': { cached: true } }
    doc.layers[0] = { ...doc.layers[0]!, ...{ 'x-extra': 1 } }
    const m = parseManifest(json(doc))
    if (m.kind !== 'manifest') throw new Error('unreachable')
    expect(m.value['x-registry']).toEqual({ cached: true })
    expect(m.value.layers[0]?.['x-extra']).toBe(1)
  })

  it('accepts an artifact manifest with subject, artifactType, empty config and data', () => {
    const artifact = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      artifactType: 'application/vnd.example.sbom+json',
      config: { mediaType: MediaType.OciEmpty, digest: digestOf('{}'), size: 2, data: 'e30=' },
      layers: [{ mediaType: 'application/spdx+json', digest: dg('sbom'), size: 100 }],
      subject: { mediaType: MediaType.OciManifest, digest: dg('image'), size: 673 },
    }
    const m = parseManifest(json(artifact))
    if (m.kind !== 'manifest') throw new Error('unreachable')
    expect(m.value.subject?.digest).toBe(dg('image'))
    expect(m.value.config.data).toBe('e30=')
  })

  it('accepts a manifest with no layers (allowed, SHOULD have one)', () => {
    expect(parseManifest(json({ ...ociManifest, layers: [] })).kind).toBe('manifest')
  })

  describe('detects the media type when the header is missing or generic', () => {
    const cases: [string, unknown, string | undefined, ParsedManifest['mediaType']][] = [
      ['Docker list, no header', dockerManifestList, undefined, MediaType.DockerManifestList],
      ['Docker manifest, application/json', dockerManifest, 'application/json', MediaType.DockerManifest],
      ['OCI index with mediaType, octet-stream', ociIndexWithAttestations, 'application/octet-stream', MediaType.OciIndex],
      ['OCI index without mediaType', { ...ociIndexWithAttestations, mediaType: undefined }, undefined, MediaType.OciIndex],
      ['OCI manifest without mediaType', { ...ociManifest, mediaType: undefined }, '', MediaType.OciManifest],
      ['OCI manifest without mediaType, header given', { ...ociManifest, mediaType: undefined }, MediaType.OciManifest, MediaType.OciManifest],
      ['header in odd case', ociManifest, 'Application/VND.OCI.Image.Manifest.v1+JSON', MediaType.OciManifest],
    ]
    it.each(cases)('%s', (_name, doc, header, want) => {
      expect(parseManifest(json(doc), header).mediaType).toBe(want)
    })
  })

  it('manifestMediaType fills in the OCI type', () => {
    expect(manifestMediaType({ schemaVersion: 2, manifests: [] })).toBe(MediaType.OciIndex)
    expect(manifestMediaType({ schemaVersion: 2, config: ociManifest.config as never, layers: [] })).toBe(MediaType.OciManifest)
    expect(manifestMediaType(dockerManifestList as never)).toBe(MediaType.DockerManifestList)
  })
})

describe('parseManifest: rejection with field paths', () => {
  function invalid(doc: unknown, header?: string): OciError {
    const err = thrown(() => parseManifest(typeof doc === 'string' ? doc : json(doc), header))
    return err
  }

  it('names a bad layer digest', () => {
    const doc = clone(ociManifest)
    doc.layers[2]!.digest = 'sha256:abc' as never
    const err = invalid(doc)
    expect(err.code).toBe('ERR_OCI_INVALID_MANIFEST')
    expect(err.path).toBe('manifest.layers[2].digest')
    expect(err.message).toBe('manifest.layers[2].digest: digest "sha256:abc": sha256 needs 64 hex digits, got 3')
  })

  it('names a negative or fractional size', () => {
    const doc = clone(dockerManifest)
    doc.config.size = -1
    expect(invalid(doc).message).toBe('manifest.config.size: expected a non-negative integer, got -1')
    doc.config.size = 1.5
    expect(invalid(doc).message).toBe('manifest.config.size: expected a non-negative integer, got 1.5')
    doc.config.size = '12' as never
    expect(invalid(doc).message).toBe('manifest.config.size: expected a non-negative integer, got "12"')
  })

  it('requires schemaVersion 2', () => {
    expect(invalid({ ...ociManifest, schemaVersion: 1 }).message).toBe('manifest.schemaVersion: must be 2, got 1')
    expect(invalid({ ...ociManifest, schemaVersion: undefined }).message).toBe('manifest.schemaVersion: missing (must be 2)')
  })

  it('names missing fields and counts the other problems', () => {
    const err = invalid({ schemaVersion: 2, mediaType: MediaType.OciManifest, layers: [{ mediaType: 'x/y' }] })
    expect(err.message).toBe('manifest.config: missing (expected an object) (and 2 more problems)')
    expect(err.issues).toEqual([
      { path: 'manifest.config', message: 'missing (expected an object)' },
      { path: 'manifest.layers[0].digest', message: 'missing (expected a digest string)' },
      { path: 'manifest.layers[0].size', message: 'missing (expected a non-negative integer)' },
    ])
  })

  it('names problems inside an index entry, with quoted keys', () => {
    const doc = clone(ociIndexWithAttestations)
    ;(doc.manifests[1]!.platform as Record<string, unknown>)['os.version'] = 10
    const err = invalid(doc)
    expect(err.path).toBe('index.manifests[1].platform["os.version"]')
    expect(err.message).toBe('index.manifests[1].platform["os.version"]: expected a string, got 10')
  })

  it('checks media type syntax, annotations, urls and data', () => {
    const bad = (patch: Record<string, unknown>) => invalid({ ...ociManifest, config: { ...ociManifest.config, ...patch } }).message
    expect(bad({ mediaType: 'not a media type' })).toBe('manifest.config.mediaType: not a valid media type (RFC 6838 "type/subtype"): "not a media type"')
    expect(bad({ annotations: { a: 1 } })).toBe('manifest.config.annotations.a: expected a string, got 1')
    expect(bad({ urls: ['not a url'] })).toBe('manifest.config.urls[0]: not a valid URL: "not a url"')
    expect(bad({ data: 'e30' })).toBe('manifest.config.data: not valid base64 (RFC 4648, standard alphabet, padded)')
    expect(bad({ mediaType: undefined })).toBe('manifest.config.mediaType: missing (expected a string)')
    expect(bad({ platform: { os: 'linux' } })).toBe('manifest.config.platform.architecture: missing (expected a string)')
  })

  it('rejects a Docker manifest without its mediaType field when the header says Docker', () => {
    const err = invalid({ ...dockerManifest, mediaType: undefined }, MediaType.DockerManifest)
    expect(err.message).toBe(`manifest.mediaType: missing (must be "${MediaType.DockerManifest}")`)
  })

  it('rejects a body whose mediaType disagrees with the Content-Type', () => {
    const err = invalid(dockerManifest, MediaType.OciManifest)
    expect(err.code).toBe('ERR_OCI_INVALID_MANIFEST')
    expect(err.message).toBe(`manifest.mediaType: "${MediaType.DockerManifest}" does not match the Content-Type "${MediaType.OciManifest}"`)
  })

  it('rejects an index body sent as a manifest', () => {
    const err = invalid({ ...ociIndexWithAttestations, mediaType: undefined }, MediaType.OciManifest)
    expect(err.message).toMatch(/^manifest\.config: missing/)
  })

  it('rejects non-JSON, non-UTF-8, non-objects and undetectable bodies', () => {
    expect(invalid('{"schemaVersion": 2,').message).toMatch(/^manifest: not valid JSON/)
    expect(thrown(() => parseManifest(Buffer.from([0x7b, 0xff, 0x7d]))).message).toBe('manifest: not valid UTF-8')
    expect(invalid('[]').message).toBe('manifest: expected a JSON object, got an array')
    expect(invalid('null').message).toBe('manifest: expected a JSON object, got null')
    expect(invalid({ schemaVersion: 2 }).message).toMatch(/no media type in the Content-Type or the body/)
    expect(invalid({ ...ociManifest, mediaType: 42 }).message).toBe('manifest.mediaType: expected a string, got 42')
  })

  it('refuses unsupported media types', () => {
    const v1 = thrown(() => parseManifest(json({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }), MediaType.DockerManifestV1Signed))
    expect(v1.code).toBe('ERR_OCI_UNSUPPORTED_MEDIA_TYPE')
    expect(v1.message).toMatch(/Docker schema 1 manifests .* are not supported/)
    const other = thrown(() => parseManifest(json({ schemaVersion: 2 }), 'application/vnd.oci.artifact.manifest.v1+json'))
    expect(other.code).toBe('ERR_OCI_UNSUPPORTED_MEDIA_TYPE')
    expect(other.message).toMatch(/unsupported manifest media type "application\/vnd.oci.artifact.manifest.v1\+json"/)
  })

  it('refuses bodies over the manifest size limit', () => {
    const big = json({ ...ociManifest, annotations: { pad: 'x'.repeat(MAX_MANIFEST_SIZE) } })
    expect(thrown(() => parseManifest(big)).message).toMatch(/over the 4194304-byte limit/)
  })
})

describe('image config', () => {
  it('parses a Docker config with nulls, extra fields and history', () => {
    const c = parseImageConfig(json(dockerImageConfig))
    expect(c.architecture).toBe('arm')
    expect(c.variant).toBe('v7')
    expect(c.config?.Volumes).toBeNull()
    expect(c.config?.Entrypoint).toEqual(['/docker-entrypoint.sh'])
    expect(c.config?.ExposedPorts).toEqual({ '80/tcp': {} })
    expect(c.config?.Healthcheck?.Retries).toBe(3)
    expect(c.config?.['Hostname']).toBe('')
    expect(c['docker_version']).toBe('20.10.23')
    expect(c.history?.filter((h) => !h.empty_layer)).toHaveLength(2)
    expect(c.rootfs.diff_ids).toHaveLength(2)
  })

  it('parses an OCI config', () => {
    const c = parseImageConfig(JSON.stringify(ociImageConfig))
    expect(c.config?.User).toBe('1000:1000')
    expect(c.history?.[0]?.author).toBe('ctr')
  })

  it('names the offending field', () => {
    const bad = clone(dockerImageConfig)
    bad.rootfs.diff_ids[1] = 'sha256:XYZ' as never
    const err = thrown(() => parseImageConfig(json(bad)))
    expect(err.code).toBe('ERR_OCI_INVALID_CONFIG')
    expect(err.message).toBe('config.rootfs.diff_ids[1]: digest "sha256:XYZ" must be hex after \'sha256:\'')

    expect(thrown(() => parseImageConfig(json({ ...ociImageConfig, rootfs: { type: 'layer', diff_ids: [] } }))).message).toBe(
      'config.rootfs.type: must be "layers", got "layer"',
    )
    expect(thrown(() => parseImageConfig(json({ ...ociImageConfig, os: undefined }))).message).toBe('config.os: missing (expected a string)')
    expect(thrown(() => parseImageConfig(json({ ...ociImageConfig, config: { Cmd: 'sh' } }))).message).toBe(
      'config.config.Cmd: expected an array, got "sh"',
    )
    expect(thrown(() => parseImageConfig(json({ ...ociImageConfig, config: { ExposedPorts: { '80/tcp': {} }, Labels: { a: null } } }))).message).toBe(
      'config.config.Labels.a: expected a string, got null',
    )
    expect(thrown(() => parseImageConfig(json({ ...ociImageConfig, history: [{ empty_layer: 'yes' }] }))).message).toBe(
      'config.history[0].empty_layer: expected a boolean, got "yes"',
    )
  })
})

describe('OCI image layout', () => {
  it('parses oci-layout', () => {
    expect(parseOciLayout('{"imageLayoutVersion":"1.0.0"}')).toEqual({ imageLayoutVersion: '1.0.0' })
    const err = thrown(() => parseOciLayout('{"imageLayoutVersion":"2.0.0"}'))
    expect(err.code).toBe('ERR_OCI_INVALID_LAYOUT')
    expect(err.message).toBe('oci-layout.imageLayoutVersion: must be "1.0.0", got "2.0.0"')
    expect(thrown(() => parseOciLayout('{}')).message).toBe('oci-layout.imageLayoutVersion: missing (must be "1.0.0")')
  })

  it('parses index.json with ref names', () => {
    const index = {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        {
          mediaType: MediaType.OciManifest,
          digest: dg('layout-image'),
          size: 405,
          annotations: { 'org.opencontainers.image.ref.name': 'latest' },
        },
      ],
    }
    const parsed = parseLayoutIndex(json(index))
    expect(parsed.manifests[0]?.annotations?.['org.opencontainers.image.ref.name']).toBe('latest')
    const err = thrown(() => parseLayoutIndex(json({ ...index, manifests: [{ ...index.manifests[0], size: -5 }] })))
    expect(err.code).toBe('ERR_OCI_INVALID_LAYOUT')
    expect(err.message).toBe('index.json.manifests[0].size: expected a non-negative integer, got -5')
  })
})

describe('schemas used directly', () => {
  it('DescriptorSchema and PlatformSchema', () => {
    const d = DescriptorSchema.parse({ mediaType: MediaType.OciLayer, digest: dg('x'), size: 0 })
    expect(d.size).toBe(0)
    expect(PlatformSchema.safeParse({ os: 'linux', architecture: 'amd64', 'os.features': ['x'], features: ['sse4'] }).success).toBe(true)
    expect(DescriptorSchema.safeParse({ mediaType: MediaType.OciLayer, digest: dg('x'), size: Number.MAX_SAFE_INTEGER + 1 }).success).toBe(false)
  })

  it('checkDocument and parseDocument name the root and default code', () => {
    const err = thrown(() => checkDocument(DescriptorSchema, { mediaType: 'a/b', digest: dg('x') }, { name: 'descriptor' }))
    expect(err.code).toBe('ERR_OCI_INVALID_DOCUMENT')
    expect(err.message).toBe('descriptor.size: missing (expected a non-negative integer)')
    const idx = parseDocument(ImageIndexSchema, json({ schemaVersion: 2, manifests: [] }), { name: 'index' })
    expect(idx.manifests).toEqual([])
    expect(thrown(() => parseDocument(ImageIndexSchema, 'nope', { name: 'index', code: 'ERR_OCI_INVALID_LAYOUT' })).code).toBe('ERR_OCI_INVALID_LAYOUT')
  })
})
