/**
 * Pull an image into an OCI image layout directory, with progress.
 *
 *   node examples/dist/pull.js REFERENCE [DIR] [--platform os/arch[/variant]] [--insecure host:port]
 *   node examples/dist/pull.js 127.0.0.1:5000/library/busybox:latest /tmp/busybox-oci --insecure 127.0.0.1:5000
 *
 * Credentials come from Docker's config.json (`docker login`, credential helpers).
 */
import { OciLayout, RegistryClient, RegistryError } from '@ctr/registry-client'

function option(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i > 0 ? process.argv[i + 1] : undefined
}

const [reference, dir = './image-oci'] = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--'))
if (!reference) {
  console.error('usage: node examples/dist/pull.js REFERENCE [DIR] [--platform os/arch[/variant]] [--insecure host:port]')
  process.exit(2)
}

const insecure = option('--insecure')
const client = new RegistryClient(insecure ? { insecure: [insecure] } : {})
const controller = new AbortController()
process.once('SIGINT', () => controller.abort())

let lastLine = 0
try {
  const platform = option('--platform')
  const image = await client.pull(reference, {
    into: await OciLayout.open(dir),
    ...(platform ? { platform } : {}),
    signal: controller.signal,
    onProgress: (p) => {
      const now = Date.now()
      if (now - lastLine < 200 && p.bytes !== p.size) return // a line every 200 ms is plenty
      lastLine = now
      const pct = p.totalSize ? Math.floor((100 * p.totalBytes) / p.totalSize) : 100
      console.log(`${String(pct).padStart(3)}%  ${p.kind.padEnd(8)} ${p.digest.slice(0, 19)}  ${p.bytes}/${p.size}${p.skipped ? ' (already there)' : ''}`)
    },
  })
  console.log(`\npulled ${image.reference.toString()} -> ${dir}`)
  console.log(`manifest ${image.digest}${image.indexDigest ? ` (from index ${image.indexDigest})` : ''}`)
  console.log(`platform ${image.config.os}/${image.config.architecture}${image.config.variant ? '/' + image.config.variant : ''}, ${image.manifest.layers.length} layer(s)`)
} catch (err) {
  if (err instanceof RegistryError) {
    console.error(`pull failed: ${err.message} [${err.code}]`)
    process.exit(1)
  }
  throw err
} finally {
  await client.close()
}
