import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_PATH, mergeEnv, resolveCommand, resolveUser, RuntimeError } from '../src/index.js'

const PASSWD = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:100::/home/bob:/bin/sh
# a comment
broken:x:notanumber:1::/:/bin/sh
twin:x:1000:5::/twin:/bin/sh
nohome:x:1002:1002:::/bin/sh
`
const GROUP = `root:x:0:
daemon:x:1:
users:x:100:alice,bob
wheel:x:10:alice
alice:x:1000:
docker:x:999:bob, alice
`

let dir: string
const rootfs = (name: string, files: Record<string, string> = {}) => {
  const root = path.join(dir, name)
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true })
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(root, f), text)
  return root
}
let image: string

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctr-runtime-user-'))
  image = rootfs('image', { 'etc/passwd': PASSWD, 'etc/group': GROUP })
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

async function rejection(p: Promise<unknown>): Promise<RuntimeError> {
  try {
    await p
  } catch (err) {
    expect(err).toBeInstanceOf(RuntimeError)
    return err as RuntimeError
  }
  throw new Error('did not reject')
}

describe('resolveUser', () => {
  it('empty: root, with its passwd entry', async () => {
    expect(await resolveUser(image, '')).toEqual({ uid: 0, gid: 0, additionalGids: [], home: '/root' })
    expect(await resolveUser(image, undefined)).toEqual({ uid: 0, gid: 0, additionalGids: [], home: '/root' })
  })

  it('a name: uid, gid and home from passwd, supplementary groups from group memberships', async () => {
    expect(await resolveUser(image, 'alice')).toEqual({ uid: 1000, gid: 1000, additionalGids: [100, 10, 999], home: '/home/alice' })
    expect(await resolveUser(image, 'bob')).toEqual({ uid: 1001, gid: 100, additionalGids: [100, 999], home: '/home/bob' })
    expect(await resolveUser(image, 'nohome')).toMatchObject({ uid: 1002, home: '/' })
  })

  it('a number is always a uid: the first entry with it, or just the number', async () => {
    expect(await resolveUser(image, '1000')).toEqual({ uid: 1000, gid: 1000, additionalGids: [100, 10, 999], home: '/home/alice' })
    expect(await resolveUser(image, '4242')).toEqual({ uid: 4242, gid: 0, additionalGids: [], home: '/' })
  })

  it('an explicit group replaces the gid and drops the supplementary groups (runc)', async () => {
    expect(await resolveUser(image, 'alice:wheel')).toEqual({ uid: 1000, gid: 10, additionalGids: [], home: '/home/alice' })
    expect(await resolveUser(image, 'alice:5000')).toEqual({ uid: 1000, gid: 5000, additionalGids: [], home: '/home/alice' })
    expect(await resolveUser(image, '4242:4343')).toEqual({ uid: 4242, gid: 4343, additionalGids: [], home: '/' })
    expect(await resolveUser(image, '4242:docker')).toMatchObject({ uid: 4242, gid: 999 })
  })

  it('groupAdd appends groups by name or number, without duplicates', async () => {
    expect((await resolveUser(image, 'bob', { groupAdd: ['wheel', '4000', 'users'] })).additionalGids).toEqual([100, 999, 10, 4000])
    const err = await rejection(resolveUser(image, 'bob', { groupAdd: ['4000', 'nosuch'] }))
    expect(err).toMatchObject({ code: 'ERR_RUNTIME_GROUP_NOT_FOUND', field: 'groupAdd.1' })
  })

  it('unknown names are typed errors', async () => {
    expect(await rejection(resolveUser(image, 'mallory'))).toMatchObject({ code: 'ERR_RUNTIME_USER_NOT_FOUND', field: 'user' })
    expect(await rejection(resolveUser(image, 'broken'))).toMatchObject({ code: 'ERR_RUNTIME_USER_NOT_FOUND' })
    expect(await rejection(resolveUser(image, 'alice:nogroup'))).toMatchObject({ code: 'ERR_RUNTIME_GROUP_NOT_FOUND', field: 'user' })
  })

  it('malformed specs are invalid options', async () => {
    for (const spec of [':10', 'a:b:c', '99999999999', '1:99999999999', 'a\0b']) {
      expect(await rejection(resolveUser(image, spec)), spec).toMatchObject({ code: 'ERR_RUNTIME_INVALID_OPTIONS', field: 'user' })
    }
  })

  it('without /etc/passwd and /etc/group: numeric ids work, names do not', async () => {
    const bare = rootfs('bare')
    expect(await resolveUser(bare, '')).toEqual({ uid: 0, gid: 0, additionalGids: [], home: '/' })
    expect(await resolveUser(bare, '1000:1000')).toEqual({ uid: 1000, gid: 1000, additionalGids: [], home: '/' })
    const err = await rejection(resolveUser(bare, 'alice'))
    expect(err.code).toBe('ERR_RUNTIME_USER_NOT_FOUND')
    expect(err.message).toMatch(/no \/etc\/passwd/)
    expect((await rejection(resolveUser(bare, '0:staff'))).code).toBe('ERR_RUNTIME_GROUP_NOT_FOUND')
  })

  it('a symlink cannot send the lookup to a file outside the root filesystem', async () => {
    fs.writeFileSync(path.join(dir, 'host-passwd'), 'hostonly:x:4000:4000::/host:/bin/sh\n')
    const evil = rootfs('evil')
    fs.symlinkSync(`${'../'.repeat(12)}${path.join(dir, 'host-passwd').slice(1)}`, path.join(evil, 'etc/passwd'))
    fs.symlinkSync(path.join(dir, 'host-passwd'), path.join(evil, 'etc/group'))
    expect((await rejection(resolveUser(evil, 'hostonly'))).code).toBe('ERR_RUNTIME_USER_NOT_FOUND')
    // a symlink inside the root is followed there
    const inside = rootfs('inside', { 'etc/real-passwd': PASSWD })
    fs.symlinkSync('real-passwd', path.join(inside, 'etc/passwd'))
    expect(await resolveUser(inside, 'alice')).toMatchObject({ uid: 1000, home: '/home/alice' })
    // a symlink loop is an error, not a hang
    const loop = rootfs('loop')
    fs.symlinkSync('/etc/passwd', path.join(loop, 'etc/passwd'))
    expect((await rejection(resolveUser(loop, 'alice'))).code).toBe('ERR_RUNTIME_IMAGE_FILE')
  })

  it('refuses what is not a regular file (a FIFO does not block) and files above the size cap', async () => {
    const fifo = rootfs('fifo')
    execFileSync('mkfifo', [path.join(fifo, 'etc/passwd')])
    expect(await rejection(resolveUser(fifo, 'alice'))).toMatchObject({ code: 'ERR_RUNTIME_IMAGE_FILE', message: expect.stringMatching(/not a regular file/) })
    const isDir = rootfs('dir')
    fs.mkdirSync(path.join(isDir, 'etc/passwd'))
    expect((await rejection(resolveUser(isDir, 'alice'))).code).toBe('ERR_RUNTIME_IMAGE_FILE')
    expect(await rejection(resolveUser(image, 'alice', { maxFileSize: 64 }))).toMatchObject({
      code: 'ERR_RUNTIME_IMAGE_FILE',
      message: expect.stringMatching(/larger than 64 bytes/),
    })
    expect(await resolveUser(image, 'alice', { maxFileSize: PASSWD.length })).toMatchObject({ uid: 1000 })
  })
})

describe('mergeEnv', () => {
  it("Docker's defaults: PATH and HOSTNAME, TERM with a tty, HOME from passwd", () => {
    expect(mergeEnv({ hostname: 'box', home: '/root' })).toEqual({ PATH: DEFAULT_PATH, HOSTNAME: 'box', HOME: '/root' })
    expect(mergeEnv({ tty: true })).toEqual({ PATH: DEFAULT_PATH, TERM: 'xterm' })
  })

  it('image Env, then user env, by name; order kept', () => {
    const env = mergeEnv({
      image: ['PATH=/opt/bin:/bin', 'LANG=C.UTF-8', 'A=1=2', 'junk'],
      user: { LANG: 'de_DE.UTF-8', DEBUG: '1' },
      hostname: 'box',
      home: '/root',
    })
    expect(env).toEqual({ PATH: '/opt/bin:/bin', HOSTNAME: 'box', LANG: 'de_DE.UTF-8', A: '1=2', DEBUG: '1', HOME: '/root' })
    expect(Object.keys(env)).toEqual(['PATH', 'HOSTNAME', 'LANG', 'A', 'DEBUG', 'HOME'])
  })

  it('HOME set by the image or the user wins over passwd', () => {
    expect(mergeEnv({ image: ['HOME=/srv'], home: '/root' }).HOME).toBe('/srv')
    expect(mergeEnv({ user: { HOME: '/x' }, home: '/root' }).HOME).toBe('/x')
  })

  it("the list form: 'K=V' sets, a bare 'K' removes (Docker); null removes in the record form", () => {
    expect(mergeEnv({ image: ['A=1', 'B=2'], user: ['A=3', 'B', 'C='] })).toEqual({ PATH: DEFAULT_PATH, A: '3', C: '' })
    expect(mergeEnv({ image: ['A=1'], user: { A: null, PATH: null } })).toEqual({})
  })

  it('bad names and values name the field', () => {
    expect(() => mergeEnv({ user: ['=x'] })).toThrow(expect.objectContaining({ code: 'ERR_RUNTIME_INVALID_OPTIONS', field: 'env.0' }))
    expect(() => mergeEnv({ user: { 'A=B': 'x' } })).toThrow(expect.objectContaining({ field: 'env.A=B' }))
    expect(() => mergeEnv({ user: { A: 'x\0y' } })).toThrow(expect.objectContaining({ field: 'env.A' }))
  })
})

describe('resolveCommand', () => {
  const nginx = { Entrypoint: ['/docker-entrypoint.sh'], Cmd: ['nginx', '-g', 'daemon off;'] }

  it('Entrypoint then Cmd', () => {
    expect(resolveCommand(nginx)).toEqual(['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;'])
    expect(resolveCommand({ Cmd: ['sh'] })).toEqual(['sh'])
    expect(resolveCommand({ Entrypoint: ['/bin/app'], Cmd: null })).toEqual(['/bin/app'])
  })

  it('cmd replaces Cmd and keeps the Entrypoint; an empty cmd is no override', () => {
    expect(resolveCommand(nginx, { cmd: ['sh'] })).toEqual(['/docker-entrypoint.sh', 'sh'])
    expect(resolveCommand(nginx, { cmd: [] })).toEqual(['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;'])
  })

  it('a non-empty entrypoint drops the image Cmd unless cmd is given', () => {
    expect(resolveCommand(nginx, { entrypoint: ['/bin/sh'] })).toEqual(['/bin/sh'])
    expect(resolveCommand(nginx, { entrypoint: ['/bin/sh'], cmd: ['-c', 'id'] })).toEqual(['/bin/sh', '-c', 'id'])
  })

  it("an empty entrypoint ([] or ['']) removes it and keeps the image Cmd", () => {
    expect(resolveCommand(nginx, { entrypoint: [] })).toEqual(['nginx', '-g', 'daemon off;'])
    expect(resolveCommand(nginx, { entrypoint: [''] })).toEqual(['nginx', '-g', 'daemon off;'])
    expect(resolveCommand(nginx, { entrypoint: [''], cmd: ['id'] })).toEqual(['id'])
  })

  it('nothing to run is a typed error', () => {
    for (const [img, o] of [
      [{}, {}],
      [null, {}],
      [{ Entrypoint: null, Cmd: [] }, {}],
      [{ Entrypoint: ['/x'] }, { entrypoint: [] }],
    ] as const) {
      expect(() => resolveCommand(img as never, o as never)).toThrow(expect.objectContaining({ code: 'ERR_RUNTIME_NO_COMMAND' }))
    }
  })

  it('bad lists name the field', () => {
    expect(() => resolveCommand(nginx, { cmd: ['a', 1 as never] })).toThrow(expect.objectContaining({ code: 'ERR_RUNTIME_INVALID_OPTIONS', field: 'cmd.1' }))
    expect(() => resolveCommand({ Cmd: ['a\0'] })).toThrow(expect.objectContaining({ field: 'image.Cmd.0' }))
  })
})
