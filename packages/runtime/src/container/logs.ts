/**
 * The container log, in Docker's json-file format: one JSON object per chunk of output,
 * `{"log": "...", "stream": "stdout", "time": "2026-11-30T07:00:00.000Z"}`, so tools that read
 * Docker logs read ours.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs'
import { createInterface } from 'node:readline'

export interface LogEntry {
  stream: 'stdout' | 'stderr'
  time: Date
  /** The text as the program wrote it (UTF-8; a line may arrive in several entries). */
  text: string
}

/** Appends output chunks to a log file. */
export class LogWriter {
  #out: WriteStream
  constructor(readonly file: string) {
    this.#out = createWriteStream(file, { flags: 'a', mode: 0o640 })
    this.#out.on('error', () => {}) // a full disk must not crash the host process
  }

  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    this.#out.write(JSON.stringify({ log: chunk.toString('utf8'), stream, time: new Date().toISOString() }) + '\n')
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#out.end(resolve))
  }
}

/** Reads every entry of a log file (a missing file is an empty log). */
export async function readLogs(file: string): Promise<LogEntry[]> {
  const out: LogEntry[] = []
  let input
  try {
    input = createReadStream(file, 'utf8')
    for await (const line of createInterface({ input, crlfDelay: Infinity })) {
      if (!line) continue
      try {
        const o = JSON.parse(line) as { log?: unknown; stream?: unknown; time?: unknown }
        if (typeof o.log === 'string' && (o.stream === 'stdout' || o.stream === 'stderr')) {
          out.push({ stream: o.stream, time: new Date(String(o.time)), text: o.log })
        }
      } catch {
        /* a torn last line after a crash */
      }
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  return out
}
