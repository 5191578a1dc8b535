/** Where `ctr-init` (built with the native addon) is, for `init: true`. */
import { initBinaryPath } from '@ctr/native'
import { RuntimeError } from '../errors.js'

export function initBinary(): string {
  try {
    return initBinaryPath()
  } catch (err) {
    throw new RuntimeError('ERR_RUNTIME_INVALID_OPTIONS', `init: ${(err as Error).message}`, { field: 'init', cause: err })
  }
}
