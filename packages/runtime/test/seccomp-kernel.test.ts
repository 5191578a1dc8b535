/**
 * The compiled default profile, loaded by the real kernel in a container started with
 * `@ctr/namespaces`' spawn(): what it allows works, what it denies fails with the errno the
 * profile says. Every probe is harmless even without a filter: it runs in new pid, mnt, uts,
 * ipc and net namespaces on a throwaway root filesystem. Each denial is checked against a
 * control run without the filter, so the filter is shown to be what denies.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import {
  compileSeccomp,
  capabilitySets,
  DEFAULT_CAPABILITIES,
  defaultSeccompProfile,
  resolveCapabilities,
  seccompFilter,
  type CompiledSeccomp,
} from '../src/index.js'
import { containerOptions, makeRootfs, runContainer, type Result } from './helpers/container.js'

let root: string
let dispose: () => void
let filter: CompiledSeccomp

beforeAll(async () => {
  ;({ root, dispose } = await makeRootfs({ 'bin/syscall-probe': inject('syscallProbe') }))
  filter = compileSeccomp(defaultSeccompProfile(), { caps: [...DEFAULT_CAPABILITIES] })
})
afterAll(() => dispose?.())

/** Runs argv as root with every capability (so only the filter can deny), with or without the filter. */
function sh(script: string, withFilter = true): Promise<Result> {
  return runContainer(
    containerOptions(root, ['/bin/sh', '-c', script], withFilter ? { noNewPrivileges: true, seccomp: seccompFilter(filter) } : {}),
  )
}
const probe = (args: string, withFilter = true) => sh(`/bin/syscall-probe ${args}`, withFilter)

describe('the default seccomp profile in the kernel', () => {
  it('is installed: Seccomp mode 2 and no_new_privs in /proc/self/status', async () => {
    const r = await sh('grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status')
    expect(r.stdout).toMatch(/NoNewPrivs:\s+1/)
    expect(r.stdout).toMatch(/Seccomp:\s+2/)
  })

  it('lets ordinary programs run: a shell, echo, ls, a pipeline, fork and exec, files', async () => {
    const r = await sh('echo hello; ls /bin/busybox; echo a b c | wc -w; (sleep 0.01; echo sub) & wait; echo x > /tmp/f && cat /tmp/f; id -u')
    expect(r.stderr).toBe('')
    expect(r).toMatchObject({ code: 0, signal: null })
    expect(r.stdout).toBe('hello\n/bin/busybox\n3\nsub\nx\n0\n')
  })

  it('sethostname fails with EPERM (control: it works without the filter)', async () => {
    const control = await sh('hostname other && hostname', false)
    expect(control).toMatchObject({ code: 0, stdout: 'other\n' })
    const r = await sh('hostname other; echo rc=$?; hostname')
    expect(r.stdout).toBe('rc=1\nbox\n')
    expect(r.stderr).toMatch(/Operation not permitted/)
  })

  it('mount fails with EPERM in the container mount namespace (control: it works without)', async () => {
    const control = await sh('mount -t tmpfs none /tmp && grep -c " /tmp " /proc/self/mountinfo', false)
    expect(control).toMatchObject({ code: 0, stdout: '1\n' })
    const r = await sh('mount -t tmpfs none /tmp; echo rc=$?')
    expect(r.stdout).toMatch(/^rc=[1-9]\d*\n$/)
    expect(r.stderr).toMatch(/Operation not permitted|permission denied/i)
  })

  it('unshare(CLONE_NEWUSER) fails with EPERM (control: it works without)', async () => {
    expect(await sh('unshare -U true && echo ok', false)).toMatchObject({ code: 0, stdout: 'ok\n' })
    const r = await sh('unshare -U true; echo rc=$?')
    expect(r.stdout).not.toBe('rc=0\n')
    expect(r.stderr).toMatch(/Operation not permitted/)
  })

  it('clone with CLONE_NEWUSER fails with EPERM; plain clone works (control: both work without)', async () => {
    expect((await probe('clone-newuser', false)).stdout).toBe('ok\n')
    expect((await probe('clone-newuser')).stdout).toBe('EPERM\n')
    expect((await probe('clone-fork')).stdout).toBe('ok\n')
  })

  it('clone3 fails with ENOSYS, so that libc falls back to clone (control: it works without)', async () => {
    expect((await probe('clone3', false)).stdout).toBe('ok\n')
    expect((await probe('clone3')).stdout).toBe('ENOSYS\n')
  })

  it('socket: AF_INET and AF_UNIX work, AF_VSOCK and AF_ALG get EPERM', async () => {
    expect((await probe('socket 2')).stdout).toBe('ok\n')
    expect((await probe('socket 1')).stdout).toBe('ok\n')
    const vsock = (await probe('socket 40')).stdout
    expect(vsock).toBe('EPERM\n')
    expect((await probe('socket 40', false)).stdout).not.toBe('EPERM\n')
    expect((await probe('socket 38')).stdout).toBe('EPERM\n')
  })

  it('personality: the query value works, READ_IMPLIES_EXEC gets EPERM', async () => {
    expect((await probe('personality ffffffff')).stdout).toBe('ok\n')
    expect((await probe('personality 400000')).stdout).toBe('EPERM\n')
    expect((await probe('personality 400000', false)).stdout).toBe('ok\n')
  })

  it('a syscall newer than the profile gets ENOSYS, an old unlisted one EPERM', async () => {
    // 469 (file_setattr) is above every syscall the profile names; 169 is reboot on x86_64 and
    // 142 on aarch64, denied without CAP_SYS_BOOT — called with invalid magic numbers, so
    // harmless even unfiltered.
    expect((await probe('nr 469')).stdout).toBe('ENOSYS\n')
    const reboot = process.arch === 'x64' ? 169 : 142
    expect((await probe(`nr ${reboot}`)).stdout).toBe('EPERM\n')
    expect((await probe(`nr ${reboot}`, false)).stdout).toBe('EINVAL\n')
  })

  it('a syscall through the x32 ABI kills the process with SIGSYS', async () => {
    if (process.arch !== 'x64') return
    const r = await probe('x32-getpid') // sh -c execs the probe: the container process itself dies
    expect(r).toMatchObject({ stdout: '', code: null, signal: 'SIGSYS' })
  })

  it("with Docker's default capabilities and no_new_privs, as a container gets them", async () => {
    const caps = resolveCapabilities()
    const r = await runContainer(
      containerOptions(root, ['/bin/sh', '-c', 'grep -E "^Cap(Eff|Bnd):" /proc/self/status; hostname x; chroot / true && echo chroot-ok'], {
        capabilities: capabilitySets(caps),
        noNewPrivileges: true,
        seccomp: seccompFilter(filter),
      }),
    )
    expect(r.stdout).toMatch(/CapEff:\s+00000000a80425fb/)
    expect(r.stdout).toMatch(/CapBnd:\s+00000000a80425fb/)
    expect(r.stdout).toMatch(/chroot-ok/)
    expect(r.stderr).toMatch(/Operation not permitted/)
  })
})
