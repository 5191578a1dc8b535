/** Commit: a snapshot's upper directory → a deterministic layer tar → a new image. */
export { commitSnapshot, type CommitArgs, type CommitResult, type CommitChanges, type CommitContent, type CommitProgress } from './commit.js'
export { diffUpper, WHITEOUT_PREFIX, OPAQUE_MARKER, type DiffOptions } from './diff.js'
export { tarStream, entryHeader, paxRecord, type TarEntry, type TarEntryType, type TarWriterOptions } from './tar-writer.js'
