/** Overlay snapshots: prepare, mount, unmount, remove; mount specs for spawn plans. */
export { Snapshots, recoverSnapshots, type Snapshot, type SnapshotsOptions, type PrepareInput } from './snapshots.js'
export { overlayMountSpec, overlayMountSteps, OVERLAY_OPTIONS, MOUNT_DATA_MAX, type OverlayMountSpec } from './mount-spec.js'
export { ensureShortLink, SHORT_ID_LENGTH } from './links.js'
export { ensureInitLayer, initLayerKey, type MountTarget } from './init-layer.js'
export { readMountinfo, parseMountinfo, mountsUnder, unmountAllUnder, type MountEntry } from './mountinfo.js'
export { SNAPSHOT_ID_RE, checkId as checkSnapshotId } from './record.js'
