import { closeSync, openSync } from 'node:fs'
import net from 'node:net'
import type { Readable, Writable } from 'node:stream'
import { close, pipe } from '@ctr/native'
import type { Stdio } from './types.js'

/**
 * The fds a spawn hands to its child and what the parent keeps. Until {@link StdioSet.commit}
 * or {@link StdioSet.dispose} it owns every fd it opened, so a failed spawn closes them all.
 */
export class StdioSet {
  /** `source` fds (ours) that become `target` fds in the child. */
  readonly moves: { source: number; target: number }[] = []
  private readonly childEnds: number[] = []
  private readonly parentEnds: (number | null)[] = [null, null, null]

  constructor(stdio: [Stdio, Stdio, Stdio], extra: number[]) {
    try {
      stdio.forEach((s, target) => this.prepare(s, target))
      extra.forEach((fd, i) => this.moves.push({ source: fd, target: 3 + i }))
    } catch (err) {
      this.dispose()
      throw err
    }
  }

  private prepare(s: Stdio, target: number): void {
    if (s === 'inherit') {
      this.moves.push({ source: target, target })
    } else if (typeof s === 'number') {
      this.moves.push({ source: s, target })
    } else if (s === 'ignore') {
      const fd = openSync('/dev/null', target === 0 ? 'r' : 'w')
      this.childEnds.push(fd)
      this.moves.push({ source: fd, target })
    } else {
      const [r, w] = pipe()
      const [mine, theirs] = target === 0 ? [w, r] : [r, w]
      this.childEnds.push(theirs)
      this.parentEnds[target] = mine
      this.moves.push({ source: theirs, target })
    }
  }

  /** The child has its copies: close ours of its ends and wrap the parent ends in streams. */
  commit(): { stdin: Writable | null; stdout: Readable | null; stderr: Readable | null } {
    this.closeChildEnds()
    const [i, o, e] = this.parentEnds
    this.parentEnds.fill(null)
    return {
      stdin: i === null || i === undefined ? null : new net.Socket({ fd: i, readable: false, writable: true }),
      stdout: o === null || o === undefined ? null : new net.Socket({ fd: o, readable: true, writable: false }),
      stderr: e === null || e === undefined ? null : new net.Socket({ fd: e, readable: true, writable: false }),
    }
  }

  /** The spawn failed: close everything we opened. */
  dispose(): void {
    this.closeChildEnds()
    for (const fd of this.parentEnds) if (fd !== null) close(fd)
    this.parentEnds.fill(null)
  }

  private closeChildEnds(): void {
    for (const fd of this.childEnds.splice(0)) closeSync(fd)
  }
}

/**
 * Reads a piped stream to its end as UTF-8 text.
 *
 * @example
 * ```ts
 * const child = await spawn({ argv: ['echo', 'hi'], stdio: ['ignore', 'pipe', 'inherit'] })
 * const out = await readText(child.stdout) // 'hi\n'
 * ```
 */
export async function readText(stream: Readable | null): Promise<string> {
  if (!stream) return ''
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer))
  return Buffer.concat(chunks).toString('utf8')
}
