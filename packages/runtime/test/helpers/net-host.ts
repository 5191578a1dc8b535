/**
 * A network namespace that plays the host in network tests: a holder process (`sleep`) in a
 * new netns, so bridges, veths, addresses, routes and nft rules never touch the machine's
 * own network. Inspection goes through `nsenter --net` (reads only). `dispose()` kills the
 * holder; the netns and everything in it vanish with it.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { spawn, type Child } from '@ctr/namespaces'

const run = promisify(execFile)

export interface NetHost {
  /** The holder's pid: pass as `hostNetns`. */
  pid: number
  /** Runs argv inside the netns (nsenter --net) and returns stdout. */
  exec(argv: string[]): Promise<string>
  /** `{ links, addresses, routes, nft }` of the netns, for leak checks. */
  snapshot(): Promise<{ links: string[]; addresses: string[]; routes: string[]; nft: string }>
  dispose(): Promise<void>
}

export async function makeNetHost(): Promise<NetHost> {
  const holder: Child = await spawn({ argv: ['/bin/sleep', '600'], namespaces: ['net'], stdio: ['ignore', 'ignore', 'ignore'] })
  const ns = `--net=/proc/${holder.pid}/ns/net`
  const exec = async (argv: string[]) => (await run('nsenter', [ns, ...argv], { encoding: 'utf8' })).stdout
  return {
    pid: holder.pid,
    exec,
    async snapshot() {
      const links = (JSON.parse(await exec(['ip', '-j', 'link'])) as { ifname: string }[]).map((l) => l.ifname).sort()
      const addresses = (JSON.parse(await exec(['ip', '-j', 'addr'])) as { ifname: string; addr_info: { local: string; prefixlen: number }[] }[])
        .flatMap((l) => l.addr_info.map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`)).sort()
      const routes = (JSON.parse(await exec(['ip', '-j', 'route'])) as { dst: string; dev: string }[]).map((r) => `${r.dst} ${r.dev}`).sort()
      const nft = (await exec(['nft', 'list', 'ruleset'])).trim()
      return { links, addresses, routes, nft }
    },
    async dispose() {
      holder.kill('SIGKILL')
      await holder.exited
    },
  }
}
