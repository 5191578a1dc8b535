import { Op, type Step } from '@ctr/native'

/** What a step is, in words, for errors: `mount proc on /proc`. */
export interface StepLabel {
  step: string
  syscall: string
  path?: string
}

/**
 * Collects the child's steps together with a label for each, so that a failure reported by
 * index ("step 7, EPERM") becomes "mount proc on /proc: EPERM".
 */
export class StepList {
  readonly steps: Step[] = []
  readonly labels: StepLabel[] = []

  add(step: Step, label: StepLabel): this {
    this.steps.push(step)
    this.labels.push(label)
    return this
  }

  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null, label: string): this {
    return this.add({ op: Op.Mount, s: [source, target, fstype, data], n: [flags] }, { step: label, syscall: 'mount', path: target })
  }

  /** mkdir of a path inside the new root (opened by a `RootOpen` step), resolved there. */
  mkdirIn(path: string, mode: number): this {
    return this.add({ op: Op.MkdirIn, s: [path], n: [mode] }, { step: `mkdir ${path}`, syscall: 'mkdir', path })
  }

  /** mount on a path inside the new root (opened by a `RootOpen` step), resolved there. */
  mountIn(source: string | null, target: string, fstype: string | null, flags: number, data: string | null, label: string): this {
    return this.add({ op: Op.MountIn, s: [source, target, fstype, data], n: [flags] }, { step: label, syscall: 'mount', path: target })
  }
}
