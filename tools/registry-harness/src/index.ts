/**
 * `@ctr/registry-harness`: what `@ctr/registry-client` is tested with.
 *
 * - {@link startRegistry}: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 with a
 *   temporary root: plain HTTP, TLS from a test CA with htpasswd Basic auth, or Bearer tokens
 *   from a token issuer written here ({@link startTokenIssuer});
 * - {@link buildFixtures} / {@link pushFixtures}: fixture images built without Docker, as an
 *   OCI layout, pushed byte for byte so digests are known; {@link makeImage} for large random
 *   images;
 * - {@link startFaultServer}: misbehaving registries (wrong digest or size, 429, 5xx, dropped
 *   connections with Range resume, redirects to another host, slow bodies, pagination);
 * - {@link skopeo}: Debian's skopeo with the flags each registry mode needs.
 *
 * @example
 * ```ts
 * import { startRegistry, pushFixtures, startFaultServer } from '@ctr/registry-harness'
 * const registry = await startRegistry()
 * const { images } = await pushFixtures(registry)
 * const flaky = await startFaultServer({ upstream: registry, fault: { kind: 'drop' } })
 * ```
 * @packageDocumentation
 */
export { ensureTools, run, makeTempDir, removeTempDir, Tools, HarnessError, type ToolName } from './system.js'
export { freePort, httpRequest, LOOPBACK, type HttpResponse, type HttpRequestOptions } from './net.js'
export { createCa, createServerCert, createSigningCert, type CertificateFiles, type KeyType } from './tls.js'
export {
  startTokenIssuer,
  parseScope,
  type TokenIssuer,
  type TokenIssuerOptions,
  type TokenRequestRecord,
  type Access,
  type RequestedScope,
  type Authorizer,
} from './token-issuer.js'
export {
  startRegistry,
  TEST_USER,
  type Registry,
  type RegistryOptions,
  type BasicAuthOptions,
  type TokenAuthOptions,
  type Credentials,
} from './registry.js'
export { tarBuffer, writeLayer, FIXED_MTIME, type TarEntry, type Compression, type LayerInfo } from './tarball.js'
export { blobPath, readLayoutIndex, type Desc, type LayoutIndex } from './layout.js'
export { Uploader, parseChallenge, type PushTarget, type ImageNode } from './push.js'
export {
  buildFixtures,
  sharedFixtures,
  pushFixtures,
  pushImage,
  makeImage,
  randomBytesStream,
  hostOciPlatform,
  FIXTURE_NAMES,
  type FixtureName,
  type Fixtures,
  type BuiltImage,
  type PushedImage,
  type PushedFixtures,
  type BuildFixturesOptions,
  type MakeImageOptions,
} from './fixtures.js'
export {
  startFaultServer,
  type Fault,
  type FaultBase,
  type FaultKind,
  type FaultMatch,
  type FaultServer,
  type FaultServerOptions,
  type RecordedRequest,
} from './fault.js'
export { skopeo, skopeoFlags, type SkopeoTarget } from './skopeo.js'
