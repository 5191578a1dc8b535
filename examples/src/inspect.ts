/**
 * Inspect an image without pulling its layers: the platforms an index offers, the manifest,
 * and the config (entrypoint, command, environment, user, working directory, history).
 *
 *   node examples/dist/inspect.js REFERENCE [--platform os/arch[/variant]] [--insecure host:port]
 */
import { formatPlatform, isAttestation } from '@ctr/oci'
import { RegistryClient, RegistryError } from '@ctr/registry-client'

function option(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i > 0 ? process.argv[i + 1] : undefined
}

const reference = process.argv.slice(2).find((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--'))
if (!reference) {
  console.error('usage: node examples/dist/inspect.js REFERENCE [--platform os/arch[/variant]] [--insecure host:port]')
  process.exit(2)
}
const insecure = option('--insecure')
const client = new RegistryClient(insecure ? { insecure: [insecure] } : {})
try {
  const platform = option('--platform')
  const resolved = await client.resolve(reference, platform ? { platform } : {})
  if (resolved.index) {
    console.log(`index ${resolved.index.digest} (${resolved.index.mediaType})`)
    for (const m of resolved.index.parsed.value.manifests) {
      const what = isAttestation(m) ? 'attestation' : m.platform ? formatPlatform(m.platform) : 'no platform'
      console.log(`  ${m.digest}  ${what}${m.digest === resolved.digest ? '   <- picked' : ''}`)
    }
  }
  const manifest = resolved.manifest.parsed.value
  console.log(`manifest ${resolved.digest} (${resolved.manifest.mediaType})`)
  for (const l of manifest.layers) console.log(`  layer ${l.digest}  ${l.size} bytes  ${l.mediaType}`)
  const chunks: Buffer[] = []
  for await (const c of client.blob(resolved.reference, manifest.config)) chunks.push(c)
  const config = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { os?: string; architecture?: string; config?: Record<string, unknown>; history?: { created_by?: string }[] }
  console.log(`config ${manifest.config.digest}: ${config.os}/${config.architecture}`)
  for (const key of ['Entrypoint', 'Cmd', 'Env', 'User', 'WorkingDir', 'ExposedPorts', 'Volumes', 'Labels']) {
    const v = config.config?.[key]
    if (v !== undefined && v !== null) console.log(`  ${key}: ${JSON.stringify(v)}`)
  }
  for (const h of config.history ?? []) console.log(`  history: ${h.created_by ?? ''}`)
} catch (err) {
  if (err instanceof RegistryError) {
    console.error(`inspect failed: ${err.message} [${err.code}]`)
    process.exit(1)
  }
  throw err
} finally {
  await client.close()
}
