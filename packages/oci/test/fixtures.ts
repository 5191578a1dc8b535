// Small documents shaped like what registries and build tools really produce.
import { digestOf, type Digest } from '../src/index.js'

/** A stable, valid digest for a name. */
export const dg = (name: string): Digest => digestOf(name)

/** An OCI index as BuildKit pushes it: two images and an attestation manifest per image. */
export const ociIndexWithAttestations = {
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.index.v1+json',
  manifests: [
    {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: dg('amd64'),
      size: 673,
      platform: { architecture: 'amd64', os: 'linux' },
    },
    {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: dg('arm64'),
      size: 673,
      platform: { architecture: 'arm64', os: 'linux', variant: 'v8' },
    },
    {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: dg('att-amd64'),
      size: 566,
      annotations: {
        'vnd.docker.reference.digest': dg('amd64'),
        'vnd.docker.reference.type': 'attestation-manifest',
      },
      platform: { architecture: 'unknown', os: 'unknown' },
    },
    {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: dg('att-arm64'),
      size: 566,
      annotations: {
        'vnd.docker.reference.digest': dg('arm64'),
        'vnd.docker.reference.type': 'attestation-manifest',
      },
      platform: { architecture: 'unknown', os: 'unknown' },
    },
  ],
  annotations: { 'org.opencontainers.image.created': '2024-06-01T00:00:00Z' },
}

/** A Docker manifest list like busybox's on Docker Hub (arm v5, v6, v7, arm64 v8, …). */
export const dockerManifestList = {
  manifests: [
    {
      digest: dg('list-amd64'),
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      platform: { architecture: 'amd64', os: 'linux' },
      size: 528,
    },
    {
      digest: dg('list-armv5'),
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      platform: { architecture: 'arm', os: 'linux', variant: 'v5' },
      size: 528,
    },
    {
      digest: dg('list-armv6'),
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      platform: { architecture: 'arm', os: 'linux', variant: 'v6' },
      size: 528,
    },
    {
      digest: dg('list-armv7'),
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      platform: { architecture: 'arm', os: 'linux', variant: 'v7' },
      size: 528,
    },
    {
      digest: dg('list-arm64'),
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      platform: { architecture: 'arm64', os: 'linux', variant: 'v8' },
      size: 528,
    },
    {
      digest: dg('list-386'),
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      platform: { architecture: '386', os: 'linux' },
      size: 528,
    },
    {
      digest: dg('list-ppc64le'),
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      platform: { architecture: 'ppc64le', os: 'linux' },
      size: 528,
    },
    {
      digest: dg('list-s390x'),
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      platform: { architecture: 's390x', os: 'linux' },
      size: 528,
    },
  ],
  mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
  schemaVersion: 2,
}

/** A Docker schema 2 manifest, as `docker push` writes it. */
export const dockerManifest = {
  schemaVersion: 2,
  mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
  config: {
    mediaType: 'application/vnd.docker.container.image.v1+json',
    size: 1457,
    digest: dg('config'),
  },
  layers: [
    {
      mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
      size: 2152262,
      digest: dg('layer0'),
    },
  ],
}

/** An OCI manifest with a zstd layer, a foreign-style layer and annotations. */
export const ociManifest = {
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: {
    mediaType: 'application/vnd.oci.image.config.v1+json',
    digest: dg('oci-config'),
    size: 581,
  },
  layers: [
    {
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: dg('oci-layer0'),
      size: 3623807,
    },
    {
      mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd',
      digest: dg('oci-layer1'),
      size: 1024,
      annotations: { 'org.opencontainers.image.title': 'app.tar.zst' },
    },
    {
      mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
      digest: dg('oci-layer2'),
      size: 5,
      urls: ['https://mcr.microsoft.com/v2/windows/blobs/sha256:1234'],
    },
  ],
  annotations: {
    'org.opencontainers.image.base.name': 'docker.io/library/alpine:3.20',
  },
}

/** An image config as Docker writes it: many extra fields, nulls, history with empty layers. */
export const dockerImageConfig = {
  architecture: 'arm',
  variant: 'v7',
  config: {
    Hostname: '',
    Domainname: '',
    User: '',
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    ExposedPorts: { '80/tcp': {} },
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'NGINX_VERSION=1.27.0'],
    Cmd: ['nginx', '-g', 'daemon off;'],
    Image: dg('parent'),
    Volumes: null,
    WorkingDir: '',
    Entrypoint: ['/docker-entrypoint.sh'],
    OnBuild: null,
    Labels: { maintainer: 'NGINX Docker Maintainers <docker-maint@nginx.com>' },
    StopSignal: 'SIGQUIT',
    Healthcheck: { Test: ['CMD-SHELL', 'curl -f http://localhost/ || exit 1'], Interval: 30000000000, Retries: 3 },
  },
  container: 'b2a4c9f',
  container_config: { Cmd: ['/bin/sh', '-c', '#(nop) ', 'CMD ["nginx" "-g" "daemon off;"]'] },
  created: '2024-05-29T21:09:04.405163498Z',
  docker_version: '20.10.23',
  history: [
    { created: '2024-05-22T18:18:12.052034407Z', created_by: '/bin/sh -c #(nop) ADD file:e3abcd in / ' },
    { created: '2024-05-22T18:18:12.374463045Z', created_by: '/bin/sh -c #(nop)  CMD ["bash"]', empty_layer: true },
    { created: '2024-05-29T21:09:03.912Z', created_by: 'RUN /bin/sh -c set -x && apt-get update # buildkit', comment: 'buildkit.dockerfile.v0' },
    { created: '2024-05-29T21:09:04.405Z', created_by: 'STOPSIGNAL SIGQUIT', comment: 'buildkit.dockerfile.v0', empty_layer: true },
  ],
  os: 'linux',
  rootfs: { type: 'layers', diff_ids: [dg('diff0'), dg('diff1')] },
}

/** A minimal OCI config as a daemonless builder writes it. */
export const ociImageConfig = {
  created: '2024-06-01T00:00:00Z',
  author: 'ctr tests',
  architecture: 'amd64',
  os: 'linux',
  config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'], WorkingDir: '/', User: '1000:1000' },
  rootfs: { type: 'layers', diff_ids: [dg('busybox')] },
  history: [{ created: '2024-06-01T00:00:00Z', created_by: 'busybox-static', author: 'ctr' }],
}
