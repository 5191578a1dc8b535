/** Image commands: pull, images, rmi, tag, push, login, logout. */
import { createInterface } from 'node:readline'
import { parseReference } from '@ctr/oci'
import { normalizeRef } from '@ctr/overlay-image'
import { RegistryClient, RegistryError, type PullProgress } from '@ctr/registry-client'
import { RuntimeError } from '../../errors.js'
import { ensureImage, parseImageName, storeRef } from '../../image/source.js'
import type { Runtime } from '../../runtime.js'
import { bool, str, UsageError, type CommandSpec, type Parsed } from '../args.js'
import type { Context } from '../context.js'
import { normalizeServer, removeCredentials, saveCredentials } from '../docker-config.js'
import { ExitError, EXIT_CTR } from '../errors.js'
import { humanDuration, humanSize, shortId, splitRef, table } from '../format.js'
import { PullProgressView } from '../progress.js'

// ---- pull ----------------------------------------------------------------------------------

export const PULL_SPEC: CommandSpec = {
  name: 'pull',
  usage: '[OPTIONS] NAME[:TAG|@DIGEST]',
  summary: 'Download an image from a registry (or import oci:DIR[:REF] / docker-archive:FILE)',
  minArgs: 1,
  maxArgs: 1,
  flags: [
    { name: 'platform', type: 'string', value: 'string', description: 'Platform to pull, os/arch[/variant] (default: this host’s)' },
    { name: 'quiet', short: 'q', type: 'boolean', description: 'Print only the image reference' },
  ],
}

/** Displays `docker.io/library/busybox:latest` as `busybox:latest`. */
export function displayRef(ref: string): string {
  const { repository, tag, digest } = splitRef(ref)
  return digest ? `${repository}@${digest}` : `${repository}:${tag}`
}

/**
 * Makes sure an image is in the store under the pull policy, showing progress on `out`;
 * returns its store reference.
 */
export async function pullImage(
  rt: Runtime,
  image: string,
  o: { policy: 'missing' | 'always' | 'never'; platform?: string; out: NodeJS.WriteStream; quiet?: boolean; announce?: boolean },
): Promise<string> {
  const name = parseImageName(image)
  const ref = storeRef(name)
  const present = await rt.store.hasImage(ref)
  if (present && o.policy !== 'always') return ref
  if (name.kind !== 'registry' || (!present && o.policy === 'never')) {
    await ensureImage(rt.store, image, { pull: o.policy, ...(o.platform ? { platform: o.platform } : {}), client: () => rt.client() })
    return ref
  }
  const view = o.quiet ? undefined : new PullProgressView(o.out)
  if (!present && o.announce) view?.line(`Unable to find image '${image}' locally`)
  const parsed = parseReference(ref)
  view?.line(`${parsed.digest ?? parsed.tag ?? 'latest'}: Pulling from ${parsed.repository}`)
  let downloaded = false
  try {
    const img = await rt.client().pull(ref, {
      into: rt.store,
      ...(o.platform ? { platform: o.platform } : {}),
      onProgress: (p: PullProgress) => {
        if (!p.skipped && p.kind === 'layer') downloaded = true
        view?.update(p)
      },
    })
    view?.finish()
    view?.line(`Digest: ${img.indexDigest ?? img.digest}`)
    view?.line(downloaded || !present ? `Status: Downloaded newer image for ${displayRef(ref)}` : `Status: Image is up to date for ${displayRef(ref)}`)
  } catch (err) {
    view?.finish()
    throw new RuntimeError('ERR_RUNTIME_IMAGE', `pull ${image}: ${(err as Error).message}`, { field: 'image', cause: err })
  }
  return ref
}

export async function pull(ctx: Context, p: Parsed): Promise<number> {
  const rt = await ctx.runtime()
  const platform = str(p.values, 'platform')
  const ref = await pullImage(rt, p.args[0]!, { policy: 'always', ...(platform ? { platform } : {}), out: process.stdout, quiet: bool(p.values, 'quiet') })
  process.stdout.write(`${ref}\n`)
  return 0
}

// ---- images --------------------------------------------------------------------------------

export const IMAGES_SPEC: CommandSpec = {
  name: 'images',
  usage: '[OPTIONS] [REPOSITORY[:TAG]]',
  summary: 'List images',
  maxArgs: 1,
  flags: [
    { name: 'quiet', short: 'q', type: 'boolean', description: 'Only show image IDs' },
    { name: 'no-trunc', type: 'boolean', description: 'Don’t truncate output' },
    { name: 'digests', type: 'boolean', description: 'Show digests' },
  ],
}

export async function images(ctx: Context, p: Parsed): Promise<number> {
  const rt = await ctx.runtime()
  let list = await rt.store.images()
  const filter = p.args[0]
  if (filter) {
    const want = splitRef(normalizeRef(filter.includes(':') || filter.includes('@') ? filter : `${filter}:latest`))
    const anyTag = !/:[^/]*$/.test(filter)
    list = list.filter((i) => {
      const r = splitRef(i.ref)
      return r.repository === want.repository && (anyTag || r.tag === want.tag)
    })
  }
  const noTrunc = bool(p.values, 'no-trunc')
  const id = (x: string | undefined) => (x ? (noTrunc ? x : shortId(x)) : '<unknown>')
  if (bool(p.values, 'quiet')) {
    const ids = [...new Set(list.map((i) => id(i.id ?? i.digest)))]
    process.stdout.write(ids.map((x) => `${x}\n`).join(''))
    return 0
  }
  const digests = bool(p.values, 'digests')
  const now = Date.now()
  const rows = list.map((i) => {
    const r = splitRef(i.ref)
    const created = i.created ? `${humanDuration(now - Date.parse(i.created))} ago` : 'N/A'
    return [r.repository, r.tag, ...(digests ? [i.digest] : []), id(i.id), created, i.size === undefined ? 'N/A' : humanSize(i.size)]
  })
  process.stdout.write(table(['REPOSITORY', 'TAG', ...(digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE'], rows))
  return 0
}

// ---- rmi -----------------------------------------------------------------------------------

export const RMI_SPEC: CommandSpec = {
  name: 'rmi',
  usage: '[OPTIONS] IMAGE [IMAGE...]',
  summary: 'Remove one or more images (references; their data goes once no reference is left)',
  minArgs: 1,
  flags: [{ name: 'force', short: 'f', type: 'boolean', description: 'Remove even if containers use it, or it has several references' }],
}

export async function rmi(ctx: Context, p: Parsed): Promise<number> {
  const rt = await ctx.runtime()
  const force = bool(p.values, 'force')
  let failed = 0
  const touched = new Set<string>()
  for (const arg of p.args) {
    try {
      const all = await rt.store.images()
      let refs: string[] | undefined
      try {
        const n = normalizeRef(arg)
        if (all.some((i) => i.ref === n)) refs = [n]
      } catch {
        /* not a reference: maybe an id */
      }
      if (!refs) {
        const q = arg.replace(/^sha256:/, '')
        if (/^[0-9a-f]{3,64}$/.test(q)) {
          const ids = [...new Set(all.filter((i) => i.id?.slice(7).startsWith(q) || i.digest.slice(7).startsWith(q)).map((i) => i.id ?? i.digest))]
          if (ids.length > 1) throw new ExitError(`image id "${arg}" is ambiguous: it matches ${ids.length} images`, EXIT_CTR)
          if (ids.length === 1) {
            refs = all.filter((i) => (i.id ?? i.digest) === ids[0]).map((i) => i.ref)
            if (refs.length > 1 && !force) {
              throw new ExitError(`conflict: unable to delete ${arg} (must be forced) - image is referenced in multiple repositories (${refs.map(displayRef).join(', ')})`, EXIT_CTR)
            }
          }
        }
      }
      if (!refs) throw new ExitError(`no such image: ${arg}`, EXIT_CTR)
      for (const ref of refs) {
        const info = all.find((i) => i.ref === ref)
        if (!force && info?.id) {
          const users = (await rt.list()).filter((s) => s.imageId === info.id)
          // Another reference keeps the image (and the containers' layers) alive: only the name goes.
          const others = all.filter((i) => i.id === info.id && i.ref !== ref && !refs.includes(i.ref))
          if (users.length && others.length === 0) {
            throw new ExitError(`conflict: unable to remove ${displayRef(ref)}: image is used by container ${users.map((s) => s.id.slice(0, 12)).join(', ')} (use -f, or rm the container)`, EXIT_CTR)
          }
        }
        await rt.store.untag(ref, { force: true })
        if (info?.id) touched.add(info.id)
        process.stdout.write(`Untagged: ${displayRef(ref)}\n`)
      }
    } catch (err) {
      failed++
      process.stderr.write(`ctr: ${(err as Error).message}\n`)
    }
  }
  if (touched.size) {
    const left = new Set<string | undefined>((await rt.store.images()).map((i) => i.id))
    if ([...touched].some((id) => !left.has(id))) {
      // The data goes with garbage collection, which keeps what changed in the last minute
      // (a pull or commit in another process may not have named its blobs yet): `ctr prune`
      // collects the rest later.
      const gc = await rt.store.gc()
      for (const d of gc.removedBlobs) process.stdout.write(`Deleted: ${d}\n`)
    }
  }
  return failed ? EXIT_CTR : 0
}

// ---- tag -----------------------------------------------------------------------------------

export const TAG_SPEC: CommandSpec = {
  name: 'tag',
  usage: 'SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]',
  summary: 'Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE',
  minArgs: 2,
  maxArgs: 2,
  flags: [],
}

export async function tag(ctx: Context, p: Parsed): Promise<number> {
  const rt = await ctx.runtime()
  const [src, dst] = p.args as [string, string]
  let target: string
  try {
    target = normalizeRef(dst)
  } catch (err) {
    throw new UsageError(`invalid reference "${dst}": ${(err as Error).message}`, 'tag')
  }
  try {
    await rt.store.tag(target, src)
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_STORE_NOT_FOUND') throw new ExitError(`no such image: ${src}`, EXIT_CTR, { cause: err })
    throw err
  }
  return 0
}

// ---- push ----------------------------------------------------------------------------------

export const PUSH_SPEC: CommandSpec = {
  name: 'push',
  usage: 'NAME[:TAG]',
  summary: 'Upload an image to a registry',
  minArgs: 1,
  maxArgs: 1,
  flags: [{ name: 'quiet', short: 'q', type: 'boolean', description: 'Print only the digest' }],
}

export async function push(ctx: Context, p: Parsed): Promise<number> {
  const rt = await ctx.runtime()
  const arg = p.args[0]!
  let ref: string
  try {
    ref = normalizeRef(arg)
  } catch (err) {
    throw new UsageError(`invalid reference "${arg}": ${(err as Error).message}`, 'push')
  }
  if (!(await rt.store.resolve(ref))) throw new ExitError(`an image does not exist locally with the tag: ${arg}`, EXIT_CTR)
  const quiet = bool(p.values, 'quiet')
  const out = (s: string) => !quiet && process.stdout.write(`${s}\n`)
  const parsed = parseReference(ref)
  out(`The push refers to repository [${parsed.name}]`)
  try {
    const r = await rt.client().push(rt.store, ref, ref, {
      onBlob: (d, how) => out(`${shortId(d.digest)}: ${how === 'exists' ? 'Layer already exists' : how === 'mounted' ? 'Mounted' : 'Pushed'}`),
    })
    out(`${parsed.tag ?? 'latest'}: digest: ${r.digest}`)
    if (quiet) process.stdout.write(`${r.digest}\n`)
  } catch (err) {
    throw new ExitError(`push ${arg}: ${(err as Error).message}`, EXIT_CTR, { cause: err })
  }
  return 0
}

// ---- login / logout ------------------------------------------------------------------------

export const LOGIN_SPEC: CommandSpec = {
  name: 'login',
  usage: '[OPTIONS] [SERVER]',
  summary: 'Log in to a registry: the credentials are checked, then saved in Docker’s config.json',
  maxArgs: 1,
  flags: [
    { name: 'username', short: 'u', type: 'string', value: 'string', description: 'Username' },
    { name: 'password', short: 'p', type: 'string', value: 'string', description: 'Password (insecure: prefer --password-stdin)' },
    { name: 'password-stdin', type: 'boolean', description: 'Take the password from stdin' },
  ],
  more: `Credentials go to $DOCKER_CONFIG/config.json (default ~/.docker/config.json), "auths".
Example:
  echo "$TOKEN" | ctr login -u me --password-stdin ghcr.io`,
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c))
  return Buffer.concat(chunks).toString('utf8')
}

/** Asks on the terminal; `hidden` turns echo off (raw mode) for passwords. */
async function prompt(question: string, hidden: boolean): Promise<string> {
  if (!hidden) {
    const rl = createInterface({ input: process.stdin, output: process.stderr })
    try {
      return await new Promise((resolve) => rl.question(question, resolve))
    } finally {
      rl.close()
    }
  }
  process.stderr.write(question)
  const stdin = process.stdin
  stdin.setRawMode(true)
  stdin.resume()
  try {
    return await new Promise<string>((resolve, reject) => {
      let text = ''
      const onData = (d: Buffer) => {
        for (const ch of d.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData)
            return resolve(text)
          }
          if (ch === '\u0003') {
            stdin.off('data', onData)
            return reject(new ExitError('interrupted', 130))
          }
          if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1)
          else text += ch
        }
      }
      stdin.on('data', onData)
    })
  } finally {
    stdin.setRawMode(false)
    stdin.pause()
    process.stderr.write('\n')
  }
}

/** GET /v2/ with the credentials, as `docker login` does: the token flow or Basic must accept them. */
async function verifyLogin(ctx: Context, server: string, username: string, password: string): Promise<void> {
  const client = new RegistryClient({ insecure: ctx.globals.insecure, auth: { [server]: { username, password } }, dockerConfig: false, retry: { attempts: 2 } })
  try {
    const ref = parseReference(`${server}/ctr/login`)
    const res = await client.request(ref, '/v2/', { method: 'GET', scopes: [], mirrors: false })
    const status = res.statusCode
    await res.body.dump().catch(() => {})
    if (status === 401 || status === 403) throw new ExitError(`login to ${server} failed: unauthorized: incorrect username or password`, EXIT_CTR)
    if (status !== 200) throw new ExitError(`login to ${server} failed: GET /v2/ answered HTTP ${status}`, EXIT_CTR)
  } catch (err) {
    if (err instanceof ExitError) throw err
    if (err instanceof RegistryError && err.code === 'ERR_REGISTRY_UNAUTHORIZED') {
      throw new ExitError(`login to ${server} failed: unauthorized: incorrect username or password`, EXIT_CTR, { cause: err })
    }
    throw new ExitError(`login to ${server} failed: ${(err as Error).message}`, EXIT_CTR, { cause: err })
  } finally {
    await client.close().catch(() => {})
  }
}

export async function login(ctx: Context, p: Parsed): Promise<number> {
  const server = normalizeServer(p.args[0])
  let username = str(p.values, 'username')
  let password = str(p.values, 'password')
  const fromStdin = bool(p.values, 'password-stdin')
  if (fromStdin && password !== undefined) throw new UsageError('--password and --password-stdin are mutually exclusive', 'login')
  if (fromStdin && username === undefined) throw new UsageError('--password-stdin needs --username', 'login')
  if (password !== undefined) process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n')
  if (fromStdin) password = (await readAll(process.stdin)).replace(/\r?\n$/, '')
  const interactive = process.stdin.isTTY === true
  if (username === undefined) {
    if (!interactive) throw new ExitError('cannot perform an interactive login from a non-TTY device (use -u and --password-stdin)', EXIT_CTR)
    username = (await prompt('Username: ', false)).trim()
  }
  if (password === undefined) {
    if (!interactive) throw new ExitError('cannot perform an interactive login from a non-TTY device (use --password-stdin)', EXIT_CTR)
    password = await prompt('Password: ', true)
  }
  if (!username) throw new ExitError('the username is empty', EXIT_CTR)
  if (!password) throw new ExitError('the password is empty', EXIT_CTR)
  await verifyLogin(ctx, server, username, password)
  const r = await saveCredentials(server, username, password)
  if (r.warning) process.stderr.write(`WARNING! ${r.warning}\n`)
  process.stdout.write('Login Succeeded\n')
  return 0
}

export const LOGOUT_SPEC: CommandSpec = {
  name: 'logout',
  usage: '[SERVER]',
  summary: 'Remove a registry’s credentials from Docker’s config.json',
  maxArgs: 1,
  flags: [],
}

export async function logout(_ctx: Context, p: Parsed): Promise<number> {
  const server = normalizeServer(p.args[0])
  const found = await removeCredentials(server)
  process.stdout.write(found ? `Removing login credentials for ${server}\n` : `Not logged in to ${server}\n`)
  return 0
}
