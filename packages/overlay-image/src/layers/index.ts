/**
 * Layers: compression, chain ids and safe unpacking of layer blobs into the store.
 * @packageDocumentation
 */
export { compress, compressionOf, decompress, sniffCompression, type Compression, type CompressOptions } from './compression.js'
export { chainId, chainIds } from './chain-id.js'
export { readLayerRecord, LayerRecordSchema, type LayerRecord } from './record.js'
export {
  cleanLayerTemporaries,
  unpackImageLayers,
  unpackLayer,
  type LayerBlob,
  type UnpackImageOptions,
  type UnpackOptions,
  type UnpackProgress,
} from './unpack.js'
