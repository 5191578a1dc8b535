/**
 * One pull of ours, as a command-line tool would ship it: `node child.bundle.mjs REF DIR HOST [sync|nosync]`
 * pulls REF from HOST (plain HTTP) into the OCI layout DIR.
 *
 * The build bundles this file with esbuild (tree-shaken, minified: `dist/pull/child.bundle.mjs`,
 * ~75 KB with the parts of zod it uses) — what an application that ships a CLI does, and what
 * bench/pull measures as "ours". Loading the workspace packages unbundled instead means
 * compiling ~130 ES modules (zod's core and all its locales among them) before the first
 * request: ~0.1 s more (bench/pull's "ours, unbundled" row). See bench/README.md, bench/pull.
 */
import { OciLayout, RegistryClient } from '@ctr/registry-client'

const [ref, dir, host, sync] = process.argv.slice(2)
if (!ref || !dir || !host) {
  console.error('usage: child.bundle.mjs REF DIR HOST [sync|nosync]')
  process.exit(2)
}
const client = new RegistryClient({ insecure: [host], dockerConfig: false })
await client.pull(ref, { into: await OciLayout.open(dir, { fsync: sync !== 'nosync' }), concurrency: 3 })
await client.close()
