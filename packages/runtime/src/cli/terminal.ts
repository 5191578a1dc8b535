/**
 * The host terminal side of `-it`: raw mode while a container's TTY is attached (keys such as
 * ^C go to the container, not to `ctr`), window size forwarded on SIGWINCH, and the terminal
 * restored on every way out — normal exit, error, or a signal that ends `ctr`.
 */
import type { Writable } from 'node:stream'

export interface AttachOptions {
  /** Where keystrokes go (the pty master); null for `-t` without `-i`. */
  input: Writable | null
  /** Sets the container terminal's size. */
  resize: (columns: number, rows: number) => void
}

/** Attaches the host terminal; returns a function that detaches it and restores the terminal. */
export function attachTerminal(o: AttachOptions): () => void {
  const stdin = process.stdin
  const stdout = process.stdout
  const resize = () => {
    if (!stdout.isTTY) return
    const [columns, rows] = stdout.getWindowSize()
    if (columns && rows) {
      try {
        o.resize(columns, rows)
      } catch {
        /* the container is gone */
      }
    }
  }
  resize()
  const onWinch = () => resize()
  process.on('SIGWINCH', onWinch)
  let raw = false
  const onData = (d: Buffer) => o.input?.write(d)
  if (o.input) {
    if (stdin.isTTY) {
      stdin.setRawMode(true)
      raw = true
    }
    stdin.on('data', onData)
    stdin.resume()
  }
  const restore = () => {
    if (raw && stdin.isTTY) {
      try {
        stdin.setRawMode(false)
      } catch {
        /* stdin closed */
      }
    }
    raw = false
  }
  // A crash or process.exit() must not leave the user's terminal raw.
  process.once('exit', restore)
  let detached = false
  return () => {
    if (detached) return
    detached = true
    process.off('SIGWINCH', onWinch)
    stdin.off('data', onData)
    stdin.pause()
    restore()
    process.off('exit', restore)
  }
}
