/**
 * Exit statuses of `ctr`, as Docker's: 125 when ctr itself fails, 126 when the command cannot
 * be executed, 127 when it is not found, otherwise the container's (128 + n for signal n).
 */

export const EXIT_CTR = 125
export const EXIT_CANNOT_EXEC = 126
export const EXIT_NOT_FOUND = 127

/** Runs `fn` for each argument; reports failures as `ctr: …` and returns 125 if any failed. */
export async function eachArg(args: string[], fn: (arg: string) => Promise<void>): Promise<number> {
  let failed = 0
  for (const a of args) {
    try {
      await fn(a)
    } catch (err) {
      failed++
      process.stderr.write(`ctr: ${(err as Error).message}\n`)
    }
  }
  return failed ? EXIT_CTR : 0
}

/** An error that ends `ctr` with a given status (after printing its message). */
export class ExitError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/**
 * 126 or 127 when `err` (or one of its causes) is the failure of the final exec of a spawn
 * (`@ctr/namespaces` SpawnError, step `exec …`); undefined otherwise.
 */
export function execFailureStatus(err: unknown): number | undefined {
  for (let e = err as { step?: unknown; code?: unknown; cause?: unknown; exitCode?: unknown } | undefined, depth = 0; e && depth < 8; e = e.cause as typeof e, depth++) {
    if (typeof e.exitCode === 'number' && (e.exitCode === EXIT_CANNOT_EXEC || e.exitCode === EXIT_NOT_FOUND)) return e.exitCode
    if (typeof e.step === 'string' && e.step.startsWith('exec')) {
      return e.code === 'ENOENT' ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC
    }
  }
  return undefined
}

/** The status `ctr` exits with for an error. */
export function exitStatusOf(err: unknown): number {
  if (err instanceof ExitError) return err.exitCode
  return execFailureStatus(err) ?? EXIT_CTR
}
