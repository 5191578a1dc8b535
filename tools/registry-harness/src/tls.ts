/** Test certificates made with the `openssl` CLI: a CA, server certificates and signing keys. */
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { ensureTools, run, Tools } from './system.js'

/** A certificate and its private key, as files and as PEM text. */
export interface CertificateFiles {
  /** Path of the certificate (PEM). */
  certPath: string
  /** Path of the private key (PEM, PKCS#8). */
  keyPath: string
  /** The certificate, PEM. */
  certPem: string
  /** The private key, PEM. */
  keyPem: string
}

/** The key type of a generated certificate. */
export type KeyType = 'ec' | 'rsa'

function keyArgs(type: KeyType): string[] {
  return type === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'] : ['-newkey', 'rsa:2048']
}

async function read(certPath: string, keyPath: string): Promise<CertificateFiles> {
  return { certPath, keyPath, certPem: await fs.readFile(certPath, 'utf8'), keyPem: await fs.readFile(keyPath, 'utf8') }
}

/**
 * Creates a self-signed CA in `dir` (`<name>.crt`, `<name>.key`), valid for 7 days.
 *
 * @example
 * ```ts
 * const ca = await createCa(dir)
 * const server = await createServerCert(dir, ca)
 * ```
 */
export async function createCa(dir: string, name = 'ca', subject = 'ctr registry-harness test CA'): Promise<CertificateFiles> {
  await ensureTools(['openssl'])
  const certPath = path.join(dir, `${name}.crt`)
  const keyPath = path.join(dir, `${name}.key`)
  await run(Tools.openssl, [
    'req', '-x509', '-new', ...keyArgs('ec'), '-nodes', '-sha256', '-days', '7',
    '-keyout', keyPath, '-out', certPath, '-subj', `/CN=${subject}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ])
  return read(certPath, keyPath)
}

/**
 * Creates a server certificate signed by `ca` for 127.0.0.1 and localhost (both as
 * subjectAltName), plus any extra names, in `dir` (`<name>.crt`, `<name>.key`).
 *
 * @example
 * ```ts
 * const server = await createServerCert(dir, ca, 'server', ['reg.test'])
 * ```
 */
export async function createServerCert(
  dir: string,
  ca: CertificateFiles,
  name = 'server',
  extraNames: readonly string[] = [],
): Promise<CertificateFiles> {
  const certPath = path.join(dir, `${name}.crt`)
  const keyPath = path.join(dir, `${name}.key`)
  const csrPath = path.join(dir, `${name}.csr`)
  const extPath = path.join(dir, `${name}.ext`)
  const sans = ['IP:127.0.0.1', 'DNS:localhost', ...extraNames.map((n) => (/^[0-9.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`))]
  await fs.writeFile(
    extPath,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${sans.join(',')}`,
      '',
    ].join('\n'),
  )
  await run(Tools.openssl, ['req', '-new', ...keyArgs('ec'), '-nodes', '-keyout', keyPath, '-out', csrPath, '-subj', '/CN=127.0.0.1'])
  await run(Tools.openssl, [
    'x509', '-req', '-in', csrPath, '-CA', ca.certPath, '-CAkey', ca.keyPath,
    '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '7', '-sha256',
    '-out', certPath, '-extfile', extPath,
  ])
  await fs.rm(csrPath, { force: true })
  return read(certPath, keyPath)
}

/**
 * Creates a self-signed signing certificate (EC P-256 for ES256, RSA 2048 for RS256), as a
 * token issuer uses: the certificate goes into the registry's `rootcertbundle` and into each
 * token's `x5c` header.
 *
 * @example
 * ```ts
 * const signer = await createSigningCert(dir, 'ec')
 * ```
 */
export async function createSigningCert(dir: string, type: KeyType = 'ec', name = 'token'): Promise<CertificateFiles> {
  await ensureTools(['openssl'])
  const certPath = path.join(dir, `${name}.crt`)
  const keyPath = path.join(dir, `${name}.key`)
  await run(Tools.openssl, [
    'req', '-x509', '-new', ...keyArgs(type), '-nodes', '-sha256', '-days', '7',
    '-keyout', keyPath, '-out', certPath, '-subj', '/CN=ctr registry-harness token issuer',
    '-addext', 'keyUsage=critical,digitalSignature',
  ])
  return read(certPath, keyPath)
}
