/**
 * update() writes each limit to the right file of the mode, and limits() reads back what is in
 * force: memory (max, high, swap, reservation), cpu (quota/period, weight/shares with the
 * standard conversion, cpus/mems), pids, io (weight, per-device throttles). What a mode lacks
 * is refused with ERR_CGROUP_UNSUPPORTED, never silently dropped.
 */
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import type { CgroupHost } from '../src/index.js'
import { cgroupError, controlFile, host, MiB, readFileTrim, withCgroup } from './helpers/util.js'

const h: CgroupHost = await host()
const v2 = h.mode === 'unified'
const has = (c: string) => h.controllers.includes(c as never)

/** The OCI / runc conversion of cpu.shares (v1) to cpu.weight (v2). */
const sharesToWeight = (s: number) => 1 + Math.floor(((s - 2) * 9999) / 262142)

describe.runIf(has('memory'))('memory', () => {
  it('a new cgroup has no memory limit: max reads back as "max"', async () => {
    await withCgroup(undefined, async (cg) => {
      expect((await cg.limits()).memory?.max).toBe('max')
    })
  })

  it('max is written to memory.max (v2) / memory.limit_in_bytes (v1) and read back', async () => {
    await withCgroup({ memory: { max: 48 * MiB } }, async (cg) => {
      const file = controlFile(h, cg, 'memory', v2 ? 'memory.max' : 'memory.limit_in_bytes')!
      expect(Number(readFileTrim(file))).toBe(48 * MiB)
      expect((await cg.limits()).memory?.max).toBe(48 * MiB)
      await cg.update({ memory: { max: 96 * MiB } })
      expect(Number(readFileTrim(file))).toBe(96 * MiB)
      expect((await cg.limits()).memory?.max).toBe(96 * MiB)
      await cg.update({ memory: { max: 'max' } })
      expect((await cg.limits()).memory?.max).toBe('max')
    })
  })

  it('reservation is memory.low (v2) / memory.soft_limit_in_bytes (v1), read back', async () => {
    await withCgroup({ memory: { max: 64 * MiB, reservation: 16 * MiB } }, async (cg) => {
      const file = controlFile(h, cg, 'memory', v2 ? 'memory.low' : 'memory.soft_limit_in_bytes')!
      expect(Number(readFileTrim(file))).toBe(16 * MiB)
      expect((await cg.limits()).memory?.reservation).toBe(16 * MiB)
    })
  })

  it.runIf(v2)('v2: high is memory.high, read back', async () => {
    await withCgroup({ memory: { high: 40 * MiB } }, async (cg) => {
      expect(Number(readFileTrim(controlFile(h, cg, 'memory', 'memory.high')!))).toBe(40 * MiB)
      expect((await cg.limits()).memory?.high).toBe(40 * MiB)
    })
  })

  it.runIf(!v2)('v1: high does not exist there: ERR_CGROUP_UNSUPPORTED, from create and from update', async () => {
    expect((await cgroupError(withCgroup({ memory: { high: 40 * MiB } }, async () => {}))).code).toBe('ERR_CGROUP_UNSUPPORTED')
    await withCgroup({ memory: { max: 64 * MiB } }, async (cg) => {
      expect((await cgroupError(cg.update({ memory: { high: 40 * MiB } }))).code).toBe('ERR_CGROUP_UNSUPPORTED')
      expect((await cg.limits()).memory?.max).toBe(64 * MiB)
    })
  })

  it('swap: memory.swap.max (v2) / memory.memsw.limit_in_bytes = max + swap (v1) where the kernel accounts swap, else ERR_CGROUP_UNSUPPORTED', async () => {
    await withCgroup({ memory: { max: 64 * MiB } }, async (cg) => {
      const file = controlFile(h, cg, 'memory', v2 ? 'memory.swap.max' : 'memory.memsw.limit_in_bytes')!
      if (!fs.existsSync(file)) {
        expect((await cgroupError(cg.update({ memory: { max: 64 * MiB, swap: 16 * MiB } }))).code).toBe('ERR_CGROUP_UNSUPPORTED')
        return
      }
      await cg.update({ memory: { max: 64 * MiB, swap: 16 * MiB } })
      expect(Number(readFileTrim(file))).toBe(v2 ? 16 * MiB : 80 * MiB)
      const l = await cg.limits()
      expect(l.memory?.max).toBe(64 * MiB)
      expect(l.memory?.swap).toBe(16 * MiB)
      await cg.update({ memory: { max: 64 * MiB, swap: 0 } })
      expect((await cg.limits()).memory?.swap).toBe(0)
      // raising max above the old max + swap (v1 orders the two writes)
      await cg.update({ memory: { max: 200 * MiB, swap: 8 * MiB } })
      expect((await cg.limits()).memory).toMatchObject({ max: 200 * MiB, swap: 8 * MiB })
    })
  })
})

describe.runIf(has('cpu'))('cpu', () => {
  it('a new cgroup has no quota: reads back as "max"', async () => {
    await withCgroup(undefined, async (cg) => {
      expect((await cg.limits()).cpu?.quota).toBe('max')
    })
  })

  it('quota and period: cpu.max (v2) / cpu.cfs_quota_us and cpu.cfs_period_us (v1), read back', async () => {
    await withCgroup({ cpu: { quota: 20_000, period: 100_000 } }, async (cg) => {
      if (v2) expect(readFileTrim(controlFile(h, cg, 'cpu', 'cpu.max')!)).toBe('20000 100000')
      else {
        expect(readFileTrim(controlFile(h, cg, 'cpu', 'cpu.cfs_quota_us')!)).toBe('20000')
        expect(readFileTrim(controlFile(h, cg, 'cpu', 'cpu.cfs_period_us')!)).toBe('100000')
      }
      expect((await cg.limits()).cpu).toMatchObject({ quota: 20_000, period: 100_000 })
      await cg.update({ cpu: { quota: 150_000, period: 50_000 } })
      expect((await cg.limits()).cpu).toMatchObject({ quota: 150_000, period: 50_000 })
      await cg.update({ cpu: { quota: 'max' } })
      expect((await cg.limits()).cpu?.quota).toBe('max')
    })
  })

  it.runIf(v2)('v2: weight is written as is, and read back', async () => {
    await withCgroup({ cpu: { weight: 250 } }, async (cg) => {
      expect(readFileTrim(controlFile(h, cg, 'cpu', 'cpu.weight')!)).toBe('250')
      expect((await cg.limits()).cpu?.weight).toBe(250)
    })
  })

  it.runIf(v2)('v2: shares are converted to cpu.weight with the standard formula (1024 → 39, 2 → 1, 262144 → 10000)', async () => {
    await withCgroup(undefined, async (cg) => {
      for (const shares of [1024, 2, 262144, 512]) {
        await cg.update({ cpu: { shares } })
        expect(Number(readFileTrim(controlFile(h, cg, 'cpu', 'cpu.weight')!)), `shares ${shares}`).toBe(sharesToWeight(shares))
        expect((await cg.limits()).cpu?.weight).toBe(sharesToWeight(shares))
      }
    })
  })

  it.runIf(!v2)('v1: shares are written as is, and read back', async () => {
    await withCgroup({ cpu: { shares: 512 } }, async (cg) => {
      expect(readFileTrim(controlFile(h, cg, 'cpu', 'cpu.shares')!)).toBe('512')
      expect((await cg.limits()).cpu?.shares).toBe(512)
    })
  })

  it.runIf(!v2)('v1: a weight is converted to cpu.shares, the inverse of the standard formula (1 → 2, 10000 → 262144, 100 → ≈2597)', async () => {
    await withCgroup(undefined, async (cg) => {
      const file = controlFile(h, cg, 'cpu', 'cpu.shares')!
      await cg.update({ cpu: { weight: 1 } })
      expect(Number(readFileTrim(file))).toBe(2)
      await cg.update({ cpu: { weight: 10000 } })
      expect(Number(readFileTrim(file))).toBe(262144)
      for (const weight of [100, 39, 5000]) {
        await cg.update({ cpu: { weight } })
        const shares = Number(readFileTrim(file))
        // converting back gives the weight (integer rounding: ±1)
        expect(Math.abs(sharesToWeight(shares) - weight), `weight ${weight} → shares ${shares}`).toBeLessThanOrEqual(1)
        expect((await cg.limits()).cpu?.shares).toBe(shares)
      }
    })
  })

  it.runIf(has('cpuset'))('cpus and mems: cpuset.cpus / cpuset.mems, read back', async () => {
    await withCgroup({ cpu: { cpus: '0', mems: '0' } }, async (cg) => {
      expect(readFileTrim(controlFile(h, cg, 'cpuset', 'cpuset.cpus')!)).toBe('0')
      expect(readFileTrim(controlFile(h, cg, 'cpuset', 'cpuset.mems')!)).toBe('0')
      expect((await cg.limits()).cpu).toMatchObject({ cpus: '0', mems: '0' })
    })
  })

  it.runIf(has('cpuset'))('cpus the host does not have are refused with ERR_CGROUP_INVALID', async () => {
    await withCgroup(undefined, async (cg) => {
      expect((await cgroupError(cg.update({ cpu: { cpus: '4095' } }))).code).toBe('ERR_CGROUP_INVALID')
    })
  })
})

describe.runIf(has('pids'))('pids', () => {
  it('max is pids.max, read back; "max" for unlimited', async () => {
    await withCgroup({ pids: { max: 16 } }, async (cg) => {
      expect(readFileTrim(controlFile(h, cg, 'pids', 'pids.max')!)).toBe('16')
      expect((await cg.limits()).pids?.max).toBe(16)
      await cg.update({ pids: { max: 'max' } })
      expect(readFileTrim(controlFile(h, cg, 'pids', 'pids.max')!)).toBe('max')
      expect((await cg.limits()).pids?.max).toBe('max')
    })
  })
})

describe('update', () => {
  it('changes only what it is given: other limits stay in force', async () => {
    const limits: Parameters<typeof withCgroup>[0] = {}
    if (has('memory')) limits.memory = { max: 64 * MiB }
    if (has('pids')) limits.pids = { max: 20 }
    await withCgroup(limits, async (cg) => {
      if (has('cpu')) await cg.update({ cpu: { quota: 30_000, period: 100_000 } })
      const l = await cg.limits()
      if (has('memory')) expect(l.memory?.max).toBe(64 * MiB)
      if (has('pids')) expect(l.pids?.max).toBe(20)
      if (has('cpu')) expect(l.cpu).toMatchObject({ quota: 30_000, period: 100_000 })
    })
  })
})

/** A whole disk (not a partition, loop or ram device) as major:minor, if the host has one. */
function wholeDisk(): { major: number; minor: number } | undefined {
  for (const dev of fs.readdirSync('/sys/block')) {
    if (/^(loop|ram|zram|nbd|sr)/.test(dev)) continue
    try {
      const [major, minor] = fs.readFileSync(path.join('/sys/block', dev, 'dev'), 'utf8').trim().split(':').map(Number)
      return { major: major!, minor: minor! }
    } catch {
      // no dev file
    }
  }
  return undefined
}

describe.runIf(has('io'))('io', () => {
  it('weight: io.weight / io.bfq.weight (v2), blkio.weight / blkio.bfq.weight (v1) where the kernel has it, else ERR_CGROUP_UNSUPPORTED', async () => {
    await withCgroup(undefined, async (cg) => {
      const candidates = v2 ? ['io.weight', 'io.bfq.weight'] : ['blkio.weight', 'blkio.bfq.weight']
      const present = candidates.map((f) => controlFile(h, cg, 'blkio', f)!).filter((f) => fs.existsSync(f))
      if (present.length === 0) {
        expect((await cgroupError(cg.update({ io: { weight: 200 } }))).code).toBe('ERR_CGROUP_UNSUPPORTED')
        return
      }
      await cg.update({ io: { weight: 200 } })
      const back = (await cg.limits()).io?.weight
      if (v2) expect(back).toBe(200)
      // v1 blkio weights are 10–1000: the 1–10000 scale maps onto them with steps of ~10
      else expect(Math.abs(back! - 200), `read back ${back}`).toBeLessThanOrEqual(11)
    })
  })

  const disk = wholeDisk()
  it.runIf(disk)('per-device bps and iops limits: io.max (v2) / blkio.throttle.* (v1), read back', async () => {
    await withCgroup(undefined, async (cg) => {
      const limit = { ...disk!, readBps: 4 * MiB, writeBps: 2 * MiB, readIops: 300, writeIops: 200 }
      await cg.update({ io: { devices: [limit] } })
      if (v2) {
        const line = readFileTrim(controlFile(h, cg, 'blkio', 'io.max')!)
        expect(line).toContain(`${disk!.major}:${disk!.minor} rbps=${4 * MiB} wbps=${2 * MiB} riops=300 wiops=200`)
      } else {
        expect(readFileTrim(controlFile(h, cg, 'blkio', 'blkio.throttle.write_bps_device')!)).toBe(`${disk!.major}:${disk!.minor} ${2 * MiB}`)
        expect(readFileTrim(controlFile(h, cg, 'blkio', 'blkio.throttle.read_iops_device')!)).toBe(`${disk!.major}:${disk!.minor} 300`)
      }
      const devices = (await cg.limits()).io?.devices ?? []
      expect(devices.find((d) => d.major === disk!.major && d.minor === disk!.minor)).toMatchObject(limit)
    })
  })
})
