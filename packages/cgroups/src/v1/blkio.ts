/** cgroup v1 blkio: weight (BFQ or CFQ), blkio.throttle.*_device, and service counters. */
import path from 'node:path'
import { CgroupError } from '../errors.js'
import { exists, readOptional, writeValue } from '../files.js'
import { blkioToIoWeight, ioWeightToBlkio, type IoLimits } from '../limits.js'
import type { CgroupStats } from '../stats.js'

/** The weight file this kernel has: BFQ's, CFQ's, or none. */
async function weightFile(dir: string): Promise<string | undefined> {
  for (const f of ['blkio.bfq.weight', 'blkio.weight']) if (await exists(path.join(dir, f))) return path.join(dir, f)
  return undefined
}

export async function applyBlkio(dir: string, io: IoLimits): Promise<void> {
  if (io.weight !== undefined) {
    const file = await weightFile(dir)
    if (!file) {
      throw new CgroupError('ERR_CGROUP_UNSUPPORTED', `no blkio weight file in ${dir}`, {
        path: dir,
        hint: 'I/O weights on cgroup v1 need the BFQ (or CFQ) I/O scheduler on the devices',
      })
    }
    await writeValue(file, String(ioWeightToBlkio(io.weight)))
  }
  for (const d of io.devices ?? []) {
    const dev = `${d.major}:${d.minor}`
    const set: [string, number | undefined][] = [
      ['blkio.throttle.read_bps_device', d.readBps],
      ['blkio.throttle.write_bps_device', d.writeBps],
      ['blkio.throttle.read_iops_device', d.readIops],
      ['blkio.throttle.write_iops_device', d.writeIops],
    ]
    for (const [file, v] of set) if (v !== undefined) await writeValue(path.join(dir, file), `${dev} ${v}`)
  }
}

function perDevice(text: string | undefined): Map<string, number> {
  const m = new Map<string, number>()
  for (const line of (text ?? '').split('\n')) {
    const [dev, v] = line.trim().split(/\s+/)
    if (dev && v) m.set(dev, Number(v))
  }
  return m
}

export async function readBlkio(dir: string): Promise<IoLimits> {
  const out: IoLimits = {}
  const file = await weightFile(dir)
  if (file) {
    const raw = (await readOptional(file)) ?? ''
    const m = raw.match(/(?:default\s+)?(\d+)/)
    if (m) out.weight = blkioToIoWeight(Number(m[1]))
  }
  const [rb, wb, ri, wi] = await Promise.all(
    ['read_bps_device', 'write_bps_device', 'read_iops_device', 'write_iops_device'].map(async (f) => perDevice(await readOptional(path.join(dir, `blkio.throttle.${f}`)))),
  )
  const devs = new Set([...rb!.keys(), ...wb!.keys(), ...ri!.keys(), ...wi!.keys()])
  if (devs.size > 0) {
    out.devices = [...devs].map((dev) => {
      const [major, minor] = dev.split(':').map(Number)
      return { major: major!, minor: minor!, readBps: rb!.get(dev), writeBps: wb!.get(dev), readIops: ri!.get(dev), writeIops: wi!.get(dev) }
    })
  }
  return out
}

/** "8:0 Read 4096" lines of the recursive throttle counters, per device. */
function serviceCounters(text: string | undefined): Map<string, { read: number; write: number }> {
  const m = new Map<string, { read: number; write: number }>()
  for (const line of (text ?? '').split('\n')) {
    const [dev, op, v] = line.trim().split(/\s+/)
    if (!dev || !v || !dev.includes(':')) continue
    const e = m.get(dev) ?? { read: 0, write: 0 }
    if (op === 'Read') e.read = Number(v)
    if (op === 'Write') e.write = Number(v)
    m.set(dev, e)
  }
  return m
}

export async function blkioStats(dir: string): Promise<CgroupStats['io']> {
  const bytes = serviceCounters(await readOptional(path.join(dir, 'blkio.throttle.io_service_bytes_recursive')))
  const ops = serviceCounters(await readOptional(path.join(dir, 'blkio.throttle.io_serviced_recursive')))
  return [...new Set([...bytes.keys(), ...ops.keys()])].map((dev) => {
    const [major, minor] = dev.split(':').map(Number)
    const b = bytes.get(dev) ?? { read: 0, write: 0 }
    const o = ops.get(dev) ?? { read: 0, write: 0 }
    return { major: major!, minor: minor!, readBytes: b.read, writeBytes: b.write, readOps: o.read, writeOps: o.write }
  })
}
