import type { Descriptor } from '@ctr/oci'

/**
 * Where pulled content goes: a content store (`@ctr/overlay-image` implements this) or an
 * OCI image layout directory ({@link OciLayout}). A sink must let content in only once it is
 * verified — `write` gets a stream that errors at its end if the digest or size is wrong, and
 * then must leave nothing behind.
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
