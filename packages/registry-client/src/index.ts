/**
 * `@ctr/registry-client`: the OCI distribution API for Node.js. Resolve references, pull
 * verified and resumable blobs into any content sink (an OCI layout directory ships here),
 * authenticate as Docker does, retry as a careful client should. No native code, no root.
 *
 * @example
 * ```ts
 * import { RegistryClient, OciLayout } from '@ctr/registry-client'
 * const client = new RegistryClient({ insecure: ['127.0.0.1:5000'] })
 * const img = await client.pull('127.0.0.1:5000/library/busybox:multi', {
 *   into: await OciLayout.open('/tmp/busybox-oci'),
 *   platform: 'linux/arm64/v8',
 *   onProgress: (p) => console.log(p),
 * })
 * ```
 * @packageDocumentation
 */
export { RegistryClient, type RegistryClientOptions, type FetchedManifest, type ResolvedImage, type PullOptions, type PullProgress, type PulledImage } from './client.js'
export { OciLayout } from './oci-layout.js'
export { VERIFIED, isVerifiedFor, type ContentSink, type ContentSource, type VerifiedStream } from './sink.js'
export type { PushOptions, PushedImage as PushResult } from './push.js'
export { RegistryError, type RegistryErrorCode, type RateLimit } from './errors.js'
export { parseChallenges, type Challenge } from './auth/challenge.js'
export { credentialsFromDockerConfig, dockerConfigPath, type Credentials } from './auth/credentials.js'
export { mergeScopes } from './auth/authenticator.js'
export type { TransportOptions, RetryOptions } from './transport.js'
