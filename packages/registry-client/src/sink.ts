import type { Descriptor } from '@ctr/oci'

/**
 * Where pulled content goes: a content store (`@ctr/overlay-image` implements this) or an
 * OCI image layout directory ({@link OciLayout}). A sink must let content in only once it is
 * verified, and must leave nothing behind when the stream errors.
 *
 * Who verifies: a stream that checks itself carries {@link VERIFIED} (the client's blob
 * streams do: they hash while downloading, and error at their end if the digest or size is
 * wrong). A sink given such a stream for the very digest and size it is writing need not hash
 * it again — one hash per byte is a large share of a pull's CPU. Any other stream it must
 * verify itself ({@link isVerifiedFor} tells which is which).
 */
export interface ContentSink {
  /** Whether the blob is already there (it is then not downloaded). */
  has(desc: Descriptor): Promise<boolean>
  /** Stores a blob from a stream; commits it only if the stream ends without error. */
  write(desc: Descriptor, data: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<void>
  /** Names a manifest (or index): `ref` is the full reference that was pulled. */
  tag(ref: string, desc: Descriptor): Promise<void>
}

/** Where pushed content comes from ({@link OciLayout} implements it). */
export interface ContentSource {
  /** The descriptor a name (a ref name in the source) stands for. */
  resolve(name: string): Promise<Descriptor | undefined>
  /** A blob's bytes. */
  read(desc: Descriptor): AsyncIterable<Uint8Array>
}

/**
 * Marks a stream that verifies itself: `stream[VERIFIED]` is the digest and size it checks,
 * and it errors at its end, before finishing, if its bytes do not match them.
 */
export const VERIFIED: unique symbol = Symbol.for('@ctr/registry-client.verified')

/** A stream that verifies itself (see {@link VERIFIED}). */
export interface VerifiedStream<T = Uint8Array> extends AsyncIterable<T> {
  readonly [VERIFIED]: { readonly digest: string; readonly size: number }
}

/** Whether a stream verifies itself against exactly this descriptor's digest and size. */
export function isVerifiedFor(data: AsyncIterable<Uint8Array>, desc: Descriptor): boolean {
  const claim = (data as Partial<VerifiedStream>)[VERIFIED]
  return claim !== undefined && claim.digest === desc.digest && claim.size === desc.size
}
