// Certificates for the comparison's peers (HAProxy, stunnel, nginx) from the
// same Palisade CA the agents use: openssl makes a P-256 key and has the CA's
// intermediate sign it, so every path runs the same chain (leaf, intermediate,
// root) and the same key type. `palisade ca issue` cannot serve here: its
// certificates carry only the SPIFFE URI SAN, and nginx's proxy_ssl_verify
// always checks a host name, so these leaves add a DNS SAN beside the URI.
import { execFile } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** How long each leaf is valid, in days: the run is far shorter. */
const LEAF_DAYS = 1;

const execFileAsync = promisify(execFile);

/** Files of one leaf certificate, as the peers' configurations name them. */
export interface PeerCertFiles {
  /** The leaf followed by the intermediate (PEM). */
  chainPath: string;
  /** The leaf's P-256 private key (PKCS#8 PEM, mode 0600). */
  keyPath: string;
  /** Chain then key in one file, the form HAProxy's `crt` takes. */
  combinedPath: string;
  /** The roots every peer verifies against: the CA's trust bundle. */
  bundlePath: string;
  /** The DNS name in the leaf's SAN, which nginx checks. */
  dnsName: string;
}

/** Where the CA's files are and how to open its intermediate key. */
export interface PeerCaFiles {
  /** The `palisade ca init` directory (intermediate.pem, intermediate.key.pem, bundle.pem). */
  caDir: string;
  /** Passphrase of the intermediate key. */
  passphrase: string;
}

/**
 * Makes a P-256 key and a leaf for `dnsName` and `spiffeId` (serverAuth and
 * clientAuth, like an agent's) signed by the CA's intermediate, in `outDir`.
 * Rejects with openssl's stderr when a step fails.
 */
export async function issuePeerCert(
  ca: PeerCaFiles,
  outDir: string,
  dnsName: string,
  spiffeId: string,
): Promise<PeerCertFiles> {
  const base = join(outDir, dnsName);
  const keyPath = `${base}.key.pem`;
  const csrPath = `${base}.csr.pem`;
  const leafPath = `${base}.leaf.pem`;
  const extPath = `${base}.ext`;
  writeFileSync(
    extPath,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=DNS:${dnsName},URI:${spiffeId}`,
      '',
    ].join('\n'),
  );
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'], keyPath);
  chmodSync(keyPath, 0o600);
  await openssl(
    ['req', '-new', '-key', keyPath, '-subj', `/O=Palisade bench/CN=${dnsName}`],
    csrPath,
  );
  await openssl(
    [
      ...['x509', '-req', '-in', csrPath, '-days', String(LEAF_DAYS), '-sha256'],
      ...['-CA', join(ca.caDir, 'intermediate.pem')],
      ...['-CAkey', join(ca.caDir, 'intermediate.key.pem'), '-passin', 'env:PEER_CA_PASSPHRASE'],
      ...['-set_serial', `0x${randomBytes(16).toString('hex')}`, '-extfile', extPath],
    ],
    leafPath,
    { PEER_CA_PASSPHRASE: ca.passphrase },
  );
  const chain =
    readFileSync(leafPath, 'utf8') + readFileSync(join(ca.caDir, 'intermediate.pem'), 'utf8');
  const chainPath = `${base}.chain.pem`;
  const combinedPath = `${base}.combined.pem`;
  writeFileSync(chainPath, chain);
  writeFileSync(combinedPath, chain + readFileSync(keyPath, 'utf8'), { mode: 0o600 });
  return { chainPath, keyPath, combinedPath, bundlePath: join(ca.caDir, 'bundle.pem'), dnsName };
}

/** Runs `openssl <args> -out <outPath>` with `env` added to the environment. */
async function openssl(
  args: readonly string[],
  outPath: string,
  env: Record<string, string> = {},
): Promise<void> {
  try {
    await execFileAsync('openssl', [...args, '-out', outPath], { env: { ...process.env, ...env } });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim()}`, { cause: err });
  }
}
