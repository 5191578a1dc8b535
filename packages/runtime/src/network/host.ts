/**
 * What runs in the host netns besides netlink: `nft` (outbound NAT, isolation between
 * networks) and the ip_forward switch. Both run as child processes that join the host netns
 * (`/proc/sys/net` belongs to the opener's netns), so a test's "host" netns is honoured.
 */
import { existsSync } from 'node:fs'
import { readText, spawn } from '@ctr/namespaces'
import { RuntimeError } from '../errors.js'
import type { NetnsRef } from './netlink.js'

const NFT = ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].find((p) => existsSync(p))

/** Runs argv in `netns` (or ours); resolves with stdout, rejects with stderr. */
export async function runInNetns(netns: NetnsRef | undefined, argv: string[], input?: string): Promise<string> {
  const child = await spawn({
    argv,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    ...(netns !== undefined ? { join: { net: netns } } : {}),
    stdio: [input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  })
  if (input !== undefined) child.stdin!.end(input)
  const [out, err, status] = await Promise.all([readText(child.stdout), readText(child.stderr), child.exited])
  if (status.code !== 0) throw new RuntimeError('ERR_RUNTIME_STATE', `${argv.join(' ')}: ${err.trim() || `exit ${status.code ?? status.signal}`}`)
  return out
}

function nft(): string {
  if (!NFT) throw new RuntimeError('ERR_RUNTIME_STATE', 'bridge networking needs nft (Debian: apt-get install nftables)')
  return NFT
}

/** The nft table of one network: masquerade of its subnet, forwarding, isolation from other ctr bridges. */
export function natRuleset(table: string, bridge: string, subnet: string, family: 'ip' | 'ip6' = 'ip'): string {
  return [
    `table ${family} ${table} {`,
    '  chain forward {',
    '    type filter hook forward priority 0; policy accept;',
    `    iifname "${bridge}" oifname != "${bridge}" oifname "ctr-*" drop`,
    `    iifname "${bridge}" accept`,
    `    oifname "${bridge}" ct state established,related accept`,
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority 100; policy accept;',
    `    ${family} saddr ${subnet} oifname != "${bridge}" masquerade`,
    '  }',
    '}',
    '',
  ].join('\n')
}

/**
 * Installs (replacing) a network's tables — `ip`, and `ip6` with an IPv6 subnet — and turns on
 * forwarding, in the host netns.
 */
export async function installNat(netns: NetnsRef | undefined, table: string, bridge: string, subnet: string, subnet6?: string): Promise<void> {
  // `add table` + `delete table` first makes the load idempotent; one nft transaction.
  let script = `add table ip ${table}\ndelete table ip ${table}\n${natRuleset(table, bridge, subnet)}`
  let sysctl = 'echo 1 > /proc/sys/net/ipv4/ip_forward'
  if (subnet6) {
    script += `add table ip6 ${table}\ndelete table ip6 ${table}\n${natRuleset(table, bridge, subnet6, 'ip6')}`
    sysctl += ' && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding'
  }
  await runInNetns(netns, ['/bin/sh', '-c', `${sysctl} && exec ${nft()} -f -`], script)
}

/** Removes a network's tables (absent is fine). */
export async function removeNat(netns: NetnsRef | undefined, table: string): Promise<void> {
  await runInNetns(netns, [nft(), '-f', '-'], `add table ip ${table}\ndelete table ip ${table}\nadd table ip6 ${table}\ndelete table ip6 ${table}\n`)
}
