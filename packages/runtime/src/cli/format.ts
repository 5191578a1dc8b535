/** Output helpers of `ctr`: tables, sizes, durations, ids and references as Docker prints them. */

/** Left-aligned columns separated by three spaces (Docker's tabwriter look). */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd()
  return [line(header), ...rows.map(line)].join('\n') + '\n'
}

/** Decimal sizes with three significant digits, as `docker images`: `1.06MB`. */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB']
  let n = bytes
  let i = 0
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000
    i++
  }
  return `${Number(n.toPrecision(3))}${units[i]}`
}

/** Binary sizes, as `docker stats`: `1.5MiB`. */
export function binarySize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let n = bytes
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${i === 0 ? n : n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2)}${units[i]}`
}

/** Docker's HumanDuration: `Less than a second`, `5 seconds`, `About a minute`, `3 hours`, `2 years`. */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000)
  if (s < 1) return 'Less than a second'
  if (s === 1) return '1 second'
  if (s < 60) return `${s} seconds`
  const m = Math.floor(s / 60)
  if (m === 1) return 'About a minute'
  if (m < 60) return `${m} minutes`
  const h = Math.floor(ms / 3_600_000 + 0.5)
  if (h === 1) return 'About an hour'
  if (h < 48) return `${h} hours`
  if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`
  if (h < 24 * 30 * 2) return `${Math.floor(h / 24 / 7)} weeks`
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24 / 30)} months`
  return `${Math.floor(h / 24 / 365)} years`
}

/** `sha256:abc…` → the first 12 hex digits (Docker's short id). */
export function shortId(id: string | undefined): string {
  if (!id) return '<none>'
  return id.replace(/^sha256:/, '').slice(0, 12)
}

/** A normalised reference split as `docker images` shows it: repository (Docker Hub prefix dropped) and tag. */
export function splitRef(ref: string): { repository: string; tag: string; digest?: string } {
  let name = ref
  let digest: string | undefined
  const at = name.indexOf('@')
  if (at >= 0) {
    digest = name.slice(at + 1)
    name = name.slice(0, at)
  }
  let tag = '<none>'
  const colon = name.lastIndexOf(':')
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1)
    name = name.slice(0, colon)
  }
  const repository = name.replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '')
  return { repository, tag, ...(digest ? { digest } : {}) }
}

/** `docker ps`'s COMMAND column: quoted, truncated. */
export function commandColumn(argv: string[], width = 20, truncate = true): string {
  const text = argv.join(' ')
  return JSON.stringify(truncate && text.length > width ? `${text.slice(0, width - 1)}…` : text)
}

/**
 * A tiny subset of Go templates for `--format`: `{{.A.B}}` and `{{json .A}}` (`{{.}}` is the
 * whole object). Strings print as they are, anything else as JSON.
 */
export function formatTemplate(template: string, value: unknown): string {
  return template.replace(/\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}/g, (_m, json: string | undefined, p: string) => {
    let v: unknown = value
    for (const key of p.split('.').filter(Boolean)) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined
    if (json) return JSON.stringify(v ?? null)
    if (v === undefined || v === null) return '<no value>'
    return typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v)
  }).replace(/\\n/g, '\n')
}
