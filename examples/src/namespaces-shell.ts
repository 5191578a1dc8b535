/**
 * A shell in its own little world: new pid, mount, uts, ipc and net namespaces, on a busybox
 * root filesystem, with its own hostname.
 *
 * Run it as root from the repository root:
 *
 *     npm run example                        # installs, builds, then runs this file
 *     node examples/dist/namespaces-shell.js # once built
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { busyboxRootfs } from '@ctr/fixtures'
import { namespaceIds, readText, spawn, SpawnError, type NamespaceType } from '@ctr/namespaces'

// What the shell runs inside, each command under a "--- command" heading:
//   hostname     ctr-demo: a new uts namespace
//   id           root
//   ps           the shell is pid 1: a new pid namespace, with its own /proc
//   ip link      only a loopback, down: a new network namespace
//   ls -C /dev   a minimal /dev, not the host's
// then a short sleep, so the parent can still read the child's /proc/<pid>/ns/* before it exits.
const commands = ['hostname', 'id', 'ps', 'ip link', 'ls -C /dev']
const script = `for c in ${commands.map((c) => `'${c}'`).join(' ')}; do echo "--- $c"; $c; done; sleep 0.5`

async function main(): Promise<void> {
  // 1. A root filesystem: busybox and a link per applet, in a temporary directory.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ctr-example-'))
  try {
    const rootfs = await busyboxRootfs(path.join(dir, 'rootfs'))

    // 2. Start the shell. spawn() resolves once /bin/sh really runs inside the new namespaces
    //    (after pivot_root into rootfs, /proc, /dev and /sys mounted) or rejects with a
    //    SpawnError that names the step that failed.
    const child = await spawn({
      argv: ['/bin/sh', '-c', script],
      namespaces: ['pid', 'mnt', 'uts', 'ipc', 'net'],
      hostname: 'ctr-demo',
      rootfs: { path: rootfs },
      stdio: ['ignore', 'pipe', 'inherit'],
    })

    // 3. Compare namespace ids (inode numbers of /proc/<pid>/ns/*) while the child still runs.
    const hostIds = await namespaceIds('self')
    const childIds = await namespaceIds(child.pid)

    // 4. Collect what the shell printed, and wait for it to exit.
    const output = await readText(child.stdout)
    const { code, signal } = await child.exited

    console.log(`Started /bin/sh in new namespaces, host pid ${child.pid}\n`)
    console.log(output.trimEnd())
    console.log(`\n--- exit: code ${code}, signal ${signal}\n`)

    console.log('Namespaces, host vs child (ids are the inode numbers of /proc/<pid>/ns/<type>):\n')
    printNamespaceTable(hostIds, childIds)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function printNamespaceTable(
  host: Partial<Record<NamespaceType, number>>,
  child: Partial<Record<NamespaceType, number>>,
): void {
  const types = Object.keys(host) as NamespaceType[]
  const rows = types.map((type) => {
    const [h, c] = [host[type], child[type]]
    return [type, String(h ?? '-'), String(c ?? '-'), h !== undefined && c !== undefined && h !== c ? 'yes' : 'no']
  })
  const header = ['type', 'host id', 'child id', 'new?']
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: string[]): string => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()
  console.log(line(header))
  console.log(line(widths.map((w) => '-'.repeat(w))))
  for (const row of rows) console.log(line(row))
}

main().catch((err: unknown) => {
  if (err instanceof SpawnError) {
    // The child failed before exec, e.g. "mount proc on /proc: EPERM" when not run as root.
    console.error(`spawn failed at step "${err.step}": ${err.code}`)
  } else {
    console.error(err)
  }
  process.exitCode = 1
})
