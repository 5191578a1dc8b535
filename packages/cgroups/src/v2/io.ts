/** cgroup v2 io: io.weight, io.max per device, and io.stat. */
import path from 'node:path'
import { readOptional, readText, writeValue } from '../files.js'
import type { IoLimits } from '../limits.js'
import type { CgroupStats } from '../stats.js'

export async function applyIo(dir: string, io: IoLimits): Promise<void> {
  if (io.weight !== undefined) {
    await writeValue(path.join(dir, 'io.weight'), `default ${io.weight}`, 'io.weight needs an I/O scheduler with weights (BFQ) or the io.cost model')
  }
  for (const d of io.devices ?? []) {
    const parts = [
      ['rbps', d.readBps],
      ['wbps', d.writeBps],
      ['riops', d.readIops],
      ['wiops', d.writeIops],
    ]
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${v === 0 ? 'max' : v}`)
    if (parts.length > 0) await writeValue(path.join(dir, 'io.max'), `${d.major}:${d.minor} ${parts.join(' ')}`)
  }
}

export async function readIo(dir: string): Promise<IoLimits> {
  const out: IoLimits = {}
  const weight = await readOptional(path.join(dir, 'io.weight'))
  const m = weight?.match(/default (\d+)/)
  if (m) out.weight = Number(m[1])
  const max = await readOptional(path.join(dir, 'io.max'))
  const devices = (max ?? '')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [dev, ...kv] = line.split(/\s+/)
      const [major, minor] = dev!.split(':').map(Number)
      const v = Object.fromEntries(kv.map((p) => p.split('=')))
      const num = (x: string | undefined) => (x === undefined || x === 'max' ? undefined : Number(x))
      return { major: major!, minor: minor!, readBps: num(v.rbps), writeBps: num(v.wbps), readIops: num(v.riops), writeIops: num(v.wiops) }
    })
  if (devices.length > 0) out.devices = devices
  return out
}

export async function ioStats(dir: string): Promise<CgroupStats['io']> {
  const text = await readText(path.join(dir, 'io.stat')).catch(() => '')
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [dev, ...kv] = line.split(/\s+/)
      const [major, minor] = dev!.split(':').map(Number)
      const v = Object.fromEntries(kv.map((p) => p.split('=')).map(([k, n]) => [k, Number(n)]))
      return { major: major!, minor: minor!, readBytes: v.rbytes ?? 0, writeBytes: v.wbytes ?? 0, readOps: v.rios ?? 0, writeOps: v.wios ?? 0 }
    })
}
