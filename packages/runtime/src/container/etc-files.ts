/**
 * The /etc files Docker generates for each container and bind-mounts in: `hostname`, `hosts`
 * (localhost and the container's own name) and `resolv.conf` (the host's, minus loopback
 * name servers the container cannot reach from its own network namespace).
 */
import fsSync, { promises as fs } from 'node:fs'
import path from 'node:path'
import type { MountTarget } from '@ctr/overlay-image'
import type { StateIo } from './state-io.js'

export interface EtcFile {
  /** Where it is in the container. */
  target: string
  /** The generated file on the host. */
  source: string
}

/**
 * The mount points every container needs in its root: the generated /etc files (bound over
 * them) and the directories proc, sysfs and the /dev tmpfs are mounted on, with the modes the
 * spawn would give them. Those an image lacks come from its init layer in the image store
 * (`mountTargets` of a snapshot), made once per image instead of in every container's upper
 * directory.
 */
export const CONTAINER_MOUNT_TARGETS: readonly MountTarget[] = [
  { path: '/etc/hostname', type: 'file', mode: 0o644 },
  { path: '/etc/hosts', type: 'file', mode: 0o644 },
  { path: '/etc/resolv.conf', type: 'file', mode: 0o644 },
  { path: '/proc', type: 'directory', mode: 0o555 },
  { path: '/sys', type: 'directory', mode: 0o555 },
  { path: '/dev', type: 'directory', mode: 0o755 },
]

/** Google's public resolvers: Docker's fallback when the host only has loopback ones. */
const FALLBACK_NAMESERVERS = ['8.8.8.8', '8.8.4.4']

/** The host's resolv.conf as a container on its own network should see it. */
export async function containerResolvConf(network: 'none' | 'host', hostFile = '/etc/resolv.conf'): Promise<string> {
  let text = ''
  try {
    // A small host file in the page cache: read synchronously, once per container.
    text = fsSync.readFileSync(hostFile, 'utf8')
  } catch {
    /* no resolv.conf on the host: the fallback below */
  }
  if (network === 'host') return text
  const lines = text.split('\n').filter((l) => !/^\s*nameserver\s+(127\.|::1\b)/.test(l))
  if (!lines.some((l) => /^\s*nameserver\s/.test(l))) lines.push(...FALLBACK_NAMESERVERS.map((ns) => `nameserver ${ns}`))
  return lines.join('\n').replace(/\n*$/, '\n')
}

/** Writes the files into `dir` (the container's state directory) and says where they go. */
export async function writeEtcFiles(dir: string, hostname: string, network: 'none' | 'host', io: StateIo): Promise<EtcFile[]> {
  const hosts = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
    `127.0.1.1\t${hostname}`,
    '',
  ].join('\n')
  const files: [string, string][] = [
    ['hostname', `${hostname}\n`],
    ['hosts', network === 'host' ? await fs.readFile('/etc/hosts', 'utf8').catch(() => hosts) : hosts],
    ['resolv.conf', await containerResolvConf(network)],
  ]
  // Into the container's state directory, in the way that suits its file system (state-io.ts).
  await Promise.all(files.map(([name, text]) => io.writeFile(path.join(dir, name), text, 0o644)))
  return files.map(([name]) => ({ target: `/etc/${name}`, source: path.join(dir, name) }))
}
