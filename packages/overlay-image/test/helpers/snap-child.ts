/**
 * Child processes that run the package's own code (to be killed with SIGKILL half-way through
 * something). Node 20 cannot run TypeScript, so `src/` is transpiled file by file (no type
 * check) into a temporary directory whose `node_modules` is a link to the package's own.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const PKG = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** Transpiles `src/**\/*.ts` into /tmp/ctr-child-*\/src; returns that directory and a cleanup. */
export function transpiledSrc(): { dir: string; cleanup: () => void } {
  const out = mkdtempSync('/tmp/ctr-child-')
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
  return { dir: join(out, 'src'), cleanup: () => rmSync(out, { recursive: true, force: true }) }
}

/**
 * Runs an ES module script (text) with node; `stdout` lines are delivered to `onLine`.
 * Resolves with the exit once it ends.
 */
export function runScript(
  cwd: string,
  script: string,
  onLine: (line: string, child: ChildProcess) => void = () => {},
): { child: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> } {
  const file = join(cwd, `script-${process.pid}-${Math.random().toString(36).slice(2)}.mjs`)
  writeFileSync(file, script)
  const child = spawn(process.execPath, [file], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  let buf = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d
    let i: number
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      onLine(line, child)
    }
  })
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((res) =>
    child.on('exit', (code, signal) => {
      rmSync(file, { force: true })
      res({ code, signal, stderr })
    }),
  )
  return { child, exited }
}
