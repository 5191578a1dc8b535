/**
 * Steps that shape the process itself after its filesystem: names, limits, identity,
 * capabilities, session. Order matters and is the one runc uses: limits and the bounding set
 * while still privileged, then groups, gid, uid (keeping capabilities across the switch when
 * asked to set them), then the capability sets, then no_new_privs last.
 */
import { Op } from '@ctr/native'
import { capabilityNumber, capabilityWords, lastCapability } from './capabilities.js'
import type { StepList } from './plan-builder.js'
import { rlimitNumber, type RlimitName } from './rlimits.js'
import type { CapabilitySets, ProcessOptions, Rlimits } from './types.js'

const UNLIMITED = -1

function limit(v: number | 'unlimited'): number {
  return v === 'unlimited' ? UNLIMITED : v
}

function capNumbers(names: string[] | undefined): number[] {
  return (names ?? []).map((n) => capabilityNumber(n)!)
}

export function addHostnameSteps(list: StepList, hostname: string | undefined, domainname: string | undefined): void {
  if (hostname !== undefined) list.add({ op: Op.SetHostname, s: [hostname] }, { step: `sethostname ${hostname}`, syscall: 'sethostname' })
  if (domainname !== undefined) list.add({ op: Op.SetDomainname, s: [domainname] }, { step: `setdomainname ${domainname}`, syscall: 'setdomainname' })
}

function addRlimitSteps(list: StepList, rlimits: Rlimits): void {
  for (const [name, l] of Object.entries(rlimits) as [RlimitName, { soft: number | 'unlimited'; hard: number | 'unlimited' }][]) {
    list.add(
      { op: Op.SetRlimit, n: [rlimitNumber(name), limit(l.soft), limit(l.hard)] },
      {
        step: `setrlimit ${name} soft=${l.soft} hard=${l.hard} (raising a hard limit needs CAP_SYS_RESOURCE, and nofile cannot pass fs.nr_open)`,
        syscall: 'prlimit64',
      },
    )
  }
}

function addCapabilitySteps(list: StepList, caps: CapabilitySets, phase: 'before-user' | 'after-user'): void {
  if (phase === 'before-user') {
    if (caps.bounding) {
      const keep = new Set(capNumbers(caps.bounding))
      for (let c = 0; c <= lastCapability(); c++) {
        if (!keep.has(c)) list.add({ op: Op.CapBsetDrop, n: [c] }, { step: `drop capability ${c} from the bounding set`, syscall: 'prctl' })
      }
    }
    return
  }
  if (caps.effective || caps.permitted || caps.inheritable) {
    const e = capabilityWords(capNumbers(caps.effective))
    const p = capabilityWords(capNumbers(caps.permitted))
    const i = capabilityWords(capNumbers(caps.inheritable))
    const blob = Buffer.alloc(24)
    ;[e[0], e[1], p[0], p[1], i[0], i[1]].forEach((w, k) => blob.writeUInt32LE(w, k * 4))
    list.add({ op: Op.CapSet, blob }, { step: 'capset (effective, permitted, inheritable)', syscall: 'capset' })
  }
  for (const c of capNumbers(caps.ambient)) {
    list.add({ op: Op.AmbientRaise, n: [c] }, { step: `raise ambient capability ${c} (it must be permitted and inheritable)`, syscall: 'prctl' })
  }
}

/**
 * Appends rlimits, identity, capabilities, session and no_new_privs. `user` is the identity
 * to switch to (undefined: keep ours); `setgroupsAllowed` is false in a user namespace whose
 * setgroups file says deny.
 */
export function addProcessSteps(
  list: StepList,
  o: ProcessOptions,
  user: { uid: number; gid: number; groups?: number[] } | undefined,
  setgroupsAllowed: boolean,
): void {
  if (o.rlimits) addRlimitSteps(list, o.rlimits)
  const caps = o.capabilities
  const setsCaps = caps !== undefined && (caps.effective || caps.permitted || caps.inheritable || caps.ambient)
  if (caps) addCapabilitySteps(list, caps, 'before-user')
  if (user) {
    // Without keepcaps a switch away from uid 0 clears the permitted set before capset runs.
    if (setsCaps) list.add({ op: Op.KeepCaps, n: [1] }, { step: 'keep capabilities across the uid change', syscall: 'prctl' })
    if (setgroupsAllowed) {
      const groups = user.groups ?? []
      const blob = Buffer.alloc(groups.length * 4)
      groups.forEach((g, k) => blob.writeUInt32LE(g, k * 4))
      list.add({ op: Op.SetGroups, blob }, { step: `setgroups [${groups.join(', ')}]`, syscall: 'setgroups' })
    }
    list.add({ op: Op.SetResgid, n: [user.gid] }, { step: `setresgid ${user.gid} (is it mapped in the user namespace?)`, syscall: 'setresgid' })
    list.add({ op: Op.SetResuid, n: [user.uid] }, { step: `setresuid ${user.uid} (is it mapped in the user namespace?)`, syscall: 'setresuid' })
    if (setsCaps) list.add({ op: Op.KeepCaps, n: [0] }, { step: 'stop keeping capabilities', syscall: 'prctl' })
  }
  if (caps) addCapabilitySteps(list, caps, 'after-user')
  if (o.setsid || o.controllingTerminal !== undefined) list.add({ op: Op.Setsid }, { step: 'setsid', syscall: 'setsid' })
  if (o.controllingTerminal !== undefined) {
    list.add({ op: Op.SetCtty, n: [o.controllingTerminal] }, { step: `make fd ${o.controllingTerminal} the controlling terminal`, syscall: 'ioctl' })
  }
  if (o.umask !== undefined) list.add({ op: Op.Umask, n: [o.umask] }, { step: `umask ${o.umask.toString(8)}`, syscall: 'umask' })
  if (o.noNewPrivileges) list.add({ op: Op.NoNewPrivs }, { step: 'set no_new_privs', syscall: 'prctl' })
  // Last, so that every step before it runs unfiltered; only execve follows.
  if (o.seccomp) {
    list.add(
      { op: Op.Seccomp, blob: Buffer.from(o.seccomp.filter.buffer, o.seccomp.filter.byteOffset, o.seccomp.filter.byteLength), n: [o.seccomp.flags ?? 0] },
      { step: 'load the seccomp filter (without CAP_SYS_ADMIN it needs noNewPrivileges)', syscall: 'seccomp' },
    )
  }
}
