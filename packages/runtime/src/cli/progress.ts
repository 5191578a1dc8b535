/**
 * Pull progress as `docker pull` shows it: on a terminal one bar per layer (bytes of total),
 * redrawn in place; elsewhere one plain line per layer as it completes, so logs stay readable.
 */
import type { PullProgress } from '@ctr/registry-client'
import { humanSize, shortId } from './format.js'

interface Layer {
  id: string
  bytes: number
  size: number
  skipped: boolean
  done: boolean
  reported: boolean
}

export class PullProgressView {
  #out: NodeJS.WriteStream
  #tty: boolean
  #layers = new Map<string, Layer>()
  #drawn = 0
  #timer: NodeJS.Timeout | undefined
  #dirty = false

  constructor(out: NodeJS.WriteStream) {
    this.#out = out
    this.#tty = out.isTTY === true && process.env['TERM'] !== 'dumb'
  }

  /** Feed it the registry client's `onProgress` events. */
  update(p: PullProgress): void {
    if (p.kind !== 'layer') return
    let l = this.#layers.get(p.digest)
    if (!l) {
      l = { id: shortId(p.digest), bytes: 0, size: p.size, skipped: false, done: false, reported: false }
      this.#layers.set(p.digest, l)
    }
    l.bytes = p.bytes
    l.size = p.size
    if (p.skipped) l.skipped = true
    if (p.skipped || p.bytes >= p.size) l.done = true
    if (this.#tty) {
      this.#dirty = true
      this.#timer ??= setInterval(() => this.#draw(), 100)
    } else if (l.done && !l.reported) {
      l.reported = true
      this.#out.write(`${l.id}: ${l.skipped ? 'Already exists' : `Pull complete (${humanSize(l.size)})`}\n`)
    }
  }

  /** A line of its own (`latest: Pulling from library/busybox`). */
  line(text: string): void {
    this.#out.write(`${text}\n`)
  }

  /** Final redraw; stops the timer. */
  finish(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
    if (this.#tty && this.#layers.size > 0) {
      this.#dirty = true
      this.#draw()
    }
  }

  #bar(l: Layer): string {
    if (l.skipped) return `${l.id}: Already exists`
    if (l.done) return `${l.id}: Pull complete`
    const width = 40
    const frac = l.size > 0 ? Math.min(1, l.bytes / l.size) : 0
    const filled = Math.floor(frac * width)
    const bar = '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? '>' : '') + ' '.repeat(width - filled)
    return `${l.id}: Downloading [${bar}]  ${humanSize(l.bytes)}/${humanSize(l.size)}`
  }

  #draw(): void {
    if (!this.#dirty) return
    this.#dirty = false
    let text = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : ''
    for (const l of this.#layers.values()) text += `\x1b[2K${this.#bar(l)}\n`
    this.#drawn = this.#layers.size
    this.#out.write(text)
  }
}
