/** cgroup v1 freezer: freezer.state FROZEN / THAWED (FREEZING while in transition). */
import path from 'node:path'
import { CgroupError } from '../errors.js'
import { readText, writeValue } from '../files.js'
import { waitUntil } from '../tree.js'

export async function isFrozenV1(dir: string): Promise<boolean> {
  return (await readText(path.join(dir, 'freezer.state'))).trim() === 'FROZEN'
}

export async function freezeV1(dir: string, frozen: boolean, deadline: number): Promise<void> {
  const want = frozen ? 'FROZEN' : 'THAWED'
  const file = path.join(dir, 'freezer.state')
  // A write of FROZEN may leave the cgroup FREEZING while tasks are busy in the kernel:
  // repeat it until the state settles.
  const done = await waitUntil(async () => {
    await writeValue(file, want)
    return (await readText(file)).trim() === want
  }, deadline)
  if (!done) throw new CgroupError('ERR_CGROUP_BUSY', `${dir} did not become ${want} in time`, { path: file })
}
