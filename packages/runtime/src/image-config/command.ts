/**
 * The command line of a container from the image's `Entrypoint` and `Cmd` and the user's
 * overrides, with Docker's rules (moby `daemon.merge` + the container's `Path`/`Args`).
 */
import type { ContainerConfig } from '@ctr/oci'
import { invalidOption, RuntimeError } from '../errors.js'

export interface CommandOverrides {
  /**
   * Replaces the image's Entrypoint (`--entrypoint`). A non-empty override also drops the
   * image's Cmd (only `cmd` follows it); an empty one (`[]`, or `['']` as the CLI's
   * `--entrypoint ""` gives) removes the entrypoint and keeps the image's Cmd unless `cmd` is given.
   */
  entrypoint?: readonly string[] | null
  /** Replaces the image's Cmd (the arguments after the image name). Empty means not given, as in Docker. */
  cmd?: readonly string[] | null
}

function checkList(list: readonly string[] | null | undefined, field: string): string[] | undefined {
  if (list === null || list === undefined) return undefined
  if (!Array.isArray(list)) throw invalidOption(field, 'must be an array of strings')
  list.forEach((s, i) => {
    if (typeof s !== 'string') throw invalidOption(`${field}.${i}`, 'must be a string')
    if (s.includes('\0')) throw invalidOption(`${field}.${i}`, 'must not contain NUL bytes')
  })
  return [...list]
}

/**
 * The argv of a container: Entrypoint followed by Cmd, after the overrides.
 *
 * - no overrides: image Entrypoint + image Cmd;
 * - `cmd`: image Entrypoint + `cmd`;
 * - a non-empty `entrypoint`: `entrypoint` + `cmd` (the image's Cmd is dropped);
 * - an empty `entrypoint`: `cmd`, or the image's Cmd when `cmd` is not given.
 *
 * Throws a {@link RuntimeError} `ERR_RUNTIME_NO_COMMAND` when nothing is left to run.
 *
 * @example
 * ```ts
 * import { resolveCommand } from '@ctr/runtime'
 * const image = { Entrypoint: ['/docker-entrypoint.sh'], Cmd: ['nginx', '-g', 'daemon off;'] }
 * resolveCommand(image)                                // ['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;']
 * resolveCommand(image, { cmd: ['sh'] })               // ['/docker-entrypoint.sh', 'sh']
 * resolveCommand(image, { entrypoint: ['/bin/sh'] })   // ['/bin/sh']
 * resolveCommand(image, { entrypoint: [] })            // ['nginx', '-g', 'daemon off;']
 * ```
 */
export function resolveCommand(
  image: Pick<ContainerConfig, 'Entrypoint' | 'Cmd'> | null | undefined,
  overrides: CommandOverrides = {},
): string[] {
  const imageEntrypoint = checkList(image?.Entrypoint, 'image.Entrypoint') ?? []
  const imageCmd = checkList(image?.Cmd, 'image.Cmd') ?? []
  let entrypoint = checkList(overrides.entrypoint, 'entrypoint')
  const cmd = checkList(overrides.cmd, 'cmd') ?? []
  if (entrypoint !== undefined && entrypoint.length === 1 && entrypoint[0] === '') entrypoint = []

  let argv: string[]
  if (entrypoint === undefined) argv = [...imageEntrypoint, ...(cmd.length > 0 ? cmd : imageCmd)]
  else if (entrypoint.length > 0) argv = [...entrypoint, ...cmd]
  else argv = cmd.length > 0 ? cmd : imageCmd

  if (argv.length === 0) {
    throw new RuntimeError('ERR_RUNTIME_NO_COMMAND', 'no command specified: the image has no Entrypoint or Cmd and none was given', {
      field: 'cmd',
    })
  }
  if (argv[0] === '') throw invalidOption(entrypoint !== undefined && entrypoint.length > 0 ? 'entrypoint.0' : 'cmd.0', 'the program name is empty')
  return argv
}
