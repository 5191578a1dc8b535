import { describe, expect, it } from 'vitest'
import {
  MANIFEST_ACCEPT,
  MANIFEST_MEDIA_TYPES,
  MediaType,
  isConfig,
  isIndex,
  isLayer,
  isManifest,
  isNondistributable,
  layerCompression,
  normalizeMediaType,
} from '../src/index.js'

describe('media types', () => {
  it('has the spec values', () => {
    expect(MediaType.OciManifest).toBe('application/vnd.oci.image.manifest.v1+json')
    expect(MediaType.OciIndex).toBe('application/vnd.oci.image.index.v1+json')
    expect(MediaType.OciConfig).toBe('application/vnd.oci.image.config.v1+json')
    expect(MediaType.OciLayerZstd).toBe('application/vnd.oci.image.layer.v1.tar+zstd')
    expect(MediaType.OciEmpty).toBe('application/vnd.oci.empty.v1+json')
    expect(MediaType.OciLayoutHeader).toBe('application/vnd.oci.layout.header.v1+json')
    expect(MediaType.DockerManifest).toBe('application/vnd.docker.distribution.manifest.v2+json')
    expect(MediaType.DockerManifestList).toBe('application/vnd.docker.distribution.manifest.list.v2+json')
    expect(MediaType.DockerConfig).toBe('application/vnd.docker.container.image.v1+json')
    expect(MediaType.DockerLayerGzip).toBe('application/vnd.docker.image.rootfs.diff.tar.gzip')
    expect(MediaType.DockerForeignLayerGzip).toBe('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip')
  })

  it('accepts all four manifest types', () => {
    expect(MANIFEST_MEDIA_TYPES).toHaveLength(4)
    expect(MANIFEST_ACCEPT.split(', ').sort()).toEqual(
      [MediaType.OciManifest, MediaType.OciIndex, MediaType.DockerManifest, MediaType.DockerManifestList].sort(),
    )
  })

  it('classifies manifests, indexes and configs', () => {
    expect(isManifest(MediaType.OciManifest)).toBe(true)
    expect(isManifest(`${MediaType.DockerManifest}; charset=utf-8`)).toBe(true)
    expect(isManifest(MediaType.OciIndex)).toBe(false)
    expect(isManifest(undefined)).toBe(false)
    expect(isIndex(MediaType.OciIndex)).toBe(true)
    expect(isIndex(MediaType.DockerManifestList)).toBe(true)
    expect(isIndex(MediaType.DockerManifest)).toBe(false)
    expect(isIndex(undefined)).toBe(false)
    expect(isConfig(MediaType.DockerConfig)).toBe(true)
    expect(isConfig(MediaType.OciEmpty)).toBe(false)
    expect(isConfig(undefined)).toBe(false)
  })

  it('tells layer compression', () => {
    const cases: [string, ReturnType<typeof layerCompression>][] = [
      [MediaType.OciLayer, 'none'],
      [MediaType.OciLayerGzip, 'gzip'],
      [MediaType.OciLayerZstd, 'zstd'],
      [MediaType.OciLayerNondistributable, 'none'],
      [MediaType.OciLayerNondistributableGzip, 'gzip'],
      [MediaType.OciLayerNondistributableZstd, 'zstd'],
      [MediaType.DockerLayer, 'none'],
      [MediaType.DockerLayerGzip, 'gzip'],
      [MediaType.DockerLayerZstd, 'zstd'],
      [MediaType.DockerForeignLayerGzip, 'gzip'],
      [MediaType.DockerForeignLayer, 'none'],
      ['APPLICATION/vnd.oci.image.layer.v1.tar+gzip ; foo=bar', 'gzip'],
      [MediaType.OciConfig, undefined],
      [MediaType.OciManifest, undefined],
      ['application/octet-stream', undefined],
    ]
    for (const [mt, want] of cases) {
      expect(layerCompression(mt), mt).toBe(want)
      expect(isLayer(mt), mt).toBe(want !== undefined)
    }
  })

  it('tells non-distributable layers', () => {
    expect(isNondistributable(MediaType.DockerForeignLayerGzip)).toBe(true)
    expect(isNondistributable(MediaType.OciLayerNondistributableZstd)).toBe(true)
    expect(isNondistributable(MediaType.OciLayerGzip)).toBe(false)
  })

  it('normalises Content-Type values', () => {
    expect(normalizeMediaType(' Application/JSON ; charset=utf-8')).toBe('application/json')
  })
})
