/**
 * WWW-Authenticate parsing per RFC 9110 §11.6.1: one or more challenges, each a scheme
 * followed by either a token68 or comma-separated auth-params whose values are tokens or
 * quoted strings (with backslash escapes). Registries send e.g.
 * `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`.
 */

export interface Challenge {
  /** Lower-cased scheme: `bearer`, `basic`, … */
  scheme: string
  /** Lower-cased parameter names to their values. */
  params: Record<string, string>
  /** A token68 instead of parameters, when that form was used. */
  token68?: string
}

const TCHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/

/** Parses a WWW-Authenticate header value (or several joined with commas). Never throws. */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = []
  let i = 0
  const n = header.length
  const skipSpace = () => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++
  }
  const token = () => {
    const start = i
    while (i < n && TCHAR.test(header[i]!)) i++
    return header.slice(start, i)
  }
  const quoted = () => {
    // at the opening quote
    i++
    let s = ''
    while (i < n && header[i] !== '"') {
      if (header[i] === '\\' && i + 1 < n) i++
      s += header[i]
      i++
    }
    i++ // closing quote
    return s
  }
  while (i < n) {
    skipSpace()
    while (i < n && header[i] === ',') {
      i++
      skipSpace()
    }
    const scheme = token()
    if (!scheme) {
      i++ // unparseable character: skip it
      continue
    }
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} }
    out.push(challenge)
    // auth-params until something that is not `name=value`: the next challenge's scheme.
    for (;;) {
      skipSpace()
      const save = i
      const name = token()
      skipSpace()
      if (!name || header[i] !== '=') {
        i = save
        break
      }
      i++
      skipSpace()
      let value: string
      if (header[i] === '"') {
        value = quoted()
      } else {
        // Strictly a token; real registries also send unquoted URLs, so read up to the next
        // comma or space.
        const start = i
        while (i < n && header[i] !== ',' && header[i] !== ' ' && header[i] !== '\t') i++
        value = header.slice(start, i)
        if (value === '' || value.startsWith('=')) {
          // `abc==`: a token68, not a parameter
          i = save
          const start = i
          while (i < n && header[i] !== ',') i++
          challenge.token68 = header.slice(start, i).trim()
          break
        }
      }
      challenge.params[name.toLowerCase()] = value
      skipSpace()
      if (header[i] !== ',') break
      i++
    }
  }
  return out
}
