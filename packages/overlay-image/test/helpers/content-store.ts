/**
 * Test helpers for the content store and image index: temporary stores under /tmp/ctr-*,
 * content streams, and checks that a store holds only verified blobs and no temporaries.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { promises as fs } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { expect } from 'vitest'
import { ContentStore } from '../../src/content/store.js'
import { ImageIndex } from '../../src/images/index-file.js'
import { StorePaths } from '../../src/paths.js'

const PKG = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** A fresh directory /tmp/ctr-<prefix>XXXXXX. */
export function tempDir(prefix: string): string {
  return mkdtempSync(`/tmp/ctr-${prefix}`)
}

/** A store in a fresh temporary directory: content store wired to an image index. */
export interface TestStore {
  root: string
  paths: StorePaths
  content: ContentStore
  index: ImageIndex
}

/** Opens a store under `root` (default: a new temporary directory). fsync off unless asked: tests are about logic, not power loss. */
export async function openStore(root?: string, options: { fsync?: boolean } = {}): Promise<TestStore> {
  const dir = root ?? tempDir('ovl-store-')
  const paths = new StorePaths(dir)
  const index = await ImageIndex.load(paths, { fsync: options.fsync ?? false })
  const content = await ContentStore.open(paths, { fsync: options.fsync ?? false, refs: index })
  return { root: dir, paths, content, index }
}

/** The SHA-256 digest of bytes. */
export function sha256(data: Uint8Array | string): `sha256:${string}` {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

/** Yields `bytes` in chunks of `chunk` bytes. */
export async function* chunks(bytes: Uint8Array, chunk = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += chunk) yield bytes.subarray(i, i + chunk)
}

/** Names in a directory ([] when it does not exist). */
export function names(dir: string): string[] {
  try {
    return readdirSync(dir).sort()
  } catch {
    return []
  }
}

/** Every blob in the store hashes to its name; no temporaries in `blobs/` or `tmp/`. Returns the digests. */
export async function checkStore(paths: StorePaths): Promise<string[]> {
  expect(names(paths.tmp)).toEqual([])
  const out: string[] = []
  for (const alg of names(paths.blobs)) {
    for (const n of names(join(paths.blobs, alg))) {
      expect(n.startsWith('.tmp-')).toBe(false)
      const hash = createHash(alg).update(await fs.readFile(join(paths.blobs, alg, n))).digest('hex')
      expect(hash).toBe(n)
      out.push(`${alg}:${n}`)
    }
  }
  return out.sort()
}

// ---------------------------------------------------------------------------------------------
// Child processes running the package's code (to be killed with SIGKILL half-way through).

/**
 * Transpiles `src/**\/*.ts` (no type check) into /tmp/ctr-ovl-child-*\/src with `node_modules`
 * linked to the package's own, so a plain `node` child can import it. Node 20 cannot run TS.
 */
export function transpileSrc(): { dir: string; cleanup: () => void } {
  const out = tempDir('ovl-child-')
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        const js = ts.transpileModule(readFileSync(p, 'utf8'), {
          compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
          fileName: p,
        }).outputText
        const dest = join(out, relative(PKG, p)).replace(/\.ts$/, '.js')
        mkdirSync(dirname(dest), { recursive: true })
        writeFileSync(dest, js)
      }
    }
  }
  walk(join(PKG, 'src'))
  writeFileSync(join(out, 'package.json'), '{"type":"module"}\n')
  symlinkSync(join(PKG, 'node_modules'), join(out, 'node_modules'))
  return { dir: out, cleanup: () => rmSync(out, { recursive: true, force: true }) }
}

/** Runs an ES module script (text) with `node` in `dir`; stdout lines go to `onLine`. */
export function runChild(dir: string, script: string, onLine: (line: string, child: ChildProcess) => void): { child: ChildProcess; exited: Promise<{ code: number | null; signal: string | null; stderr: string }> } {
  const file = join(dir, `child-${process.pid}-${Date.now()}.mjs`)
  writeFileSync(file, script)
  const child = spawn(process.execPath, [file], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  let buf = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      onLine(buf.slice(0, i), child)
      buf = buf.slice(i + 1)
    }
  })
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const exited = new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stderr })),
  )
  return { child, exited }
}
