/**
 * A child Node process that unpacks a layer with the package's own code, so a test can kill
 * it with SIGKILL half-way. Node 20 cannot run TypeScript: the few source files the unpacker
 * needs are transpiled (no type check) into a /tmp/ctr-layers-child-* directory whose
 * `node_modules` is a link to the package's own.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const PKG = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** Transpiles `src/errors.ts`, `src/paths.ts` and `src/layers/*`; returns the directory of `src` and a cleanup. */
export function transpileLayers(): { src: string; cleanup: () => void } {
  const out = mkdtempSync('/tmp/ctr-layers-child-')
  const files = ['src/errors.ts', 'src/paths.ts', ...readdirSync(join(PKG, 'src/layers')).filter((f) => f.endsWith('.ts')).map((f) => `src/layers/${f}`)]
  for (const rel of files) {
    const js = ts.transpileModule(readFileSync(join(PKG, rel), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
      fileName: rel,
    }).outputText
    const dest = join(out, rel.replace(/\.ts$/, '.js'))
    mkdirSync(dirname(dest), { recursive: true })
    writeFileSync(dest, js)
  }
  writeFileSync(join(out, 'package.json'), '{"type":"module"}\n')
  symlinkSync(join(PKG, 'node_modules'), join(out, 'node_modules'))
  return { src: join(out, 'src'), cleanup: () => rmSync(out, { recursive: true, force: true }) }
}

/**
 * Starts `node` on an unpack of one layer; it prints `progress <bytes>` lines as the blob is
 * read and `done <json>` at the end. `onLine` sees every stdout line.
 */
export function unpackInChild(
  src: string,
  args: { root: string; blob: { blobPath: string; mediaType: string; digest: string; size: number }; diffId: string },
  onLine: (line: string, child: ChildProcess) => void,
): { child: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> } {
  const script = `
import { StorePaths } from ${JSON.stringify(join(src, 'paths.js'))}
import { unpackLayer } from ${JSON.stringify(join(src, 'layers', 'unpack.js'))}
const a = JSON.parse(process.argv[2])
const r = await unpackLayer(new StorePaths(a.root), a.blob, a.diffId, undefined, {
  fsync: false,
  onProgress: (p) => process.stdout.write('progress ' + p.bytes + '\\n'),
})
process.stdout.write('done ' + JSON.stringify(r) + '\\n')
`
  const file = join(dirname(src), `unpack-${Math.random().toString(36).slice(2)}.mjs`)
  writeFileSync(file, script)
  const child = spawn(process.execPath, [file, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let buf = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      onLine(line, child)
    }
  })
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stderr })),
  )
  return { child, exited }
}

/** Where `file` is relative to the package (for messages). */
export const fromPackage = (file: string): string => relative(PKG, file)
