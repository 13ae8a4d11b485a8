import { randomBytes, createPrivateKey, type KeyObject } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { PalisadeError, errorMessage } from './errors.js';
import { adminId, parseTrustDomain } from './spiffe-id.js';
import { CaStore } from './store/index.js';
import {
  createIntermediateCertificate,
  createLeafCertificate,
  createRootCertificate,
  generateKeyPairSync,
  loadIssuer,
  type Issuer,
  type KeyType,
} from './x509/index.js';

/** Default CA directory, relative to the working directory. */
export const DEFAULT_CA_DIR = './.palisade/ca';

/** Lifetimes `ca init` uses unless told otherwise. */
export const ROOT_TTL_SECONDS = 10 * 365 * 86400;
export const INTERMEDIATE_TTL_SECONDS = 365 * 86400;
export const ADMIN_TTL_SECONDS = 90 * 86400;

/** The files of a CA directory. Keys are PKCS#8, encrypted, mode 0600. */
export const CA_FILES = {
  config: 'ca.json',
  rootCert: 'root.pem',
  rootKey: 'root.key.pem',
  intermediateCert: 'intermediate.pem',
  intermediateKey: 'intermediate.key.pem',
  bundle: 'bundle.pem',
  passphrase: 'passphrase',
  store: 'ca.db',
  adminDir: 'admin',
} as const;

/** Files of the admin credential under `<dir>/admin/`. */
export const ADMIN_FILES = { cert: 'cert.pem', key: 'key.pem', bundle: 'bundle.pem' } as const;

/** What `ca.json` records about a CA. */
export interface CaDirConfig {
  trustDomain: string;
  keyType: KeyType;
  createdAt: string;
}

/** A CA directory loaded for serving: the signing intermediate decrypted in memory. */
export interface LoadedCaDir {
  dir: string;
  config: CaDirConfig;
  rootPem: string;
  bundlePem: string;
  intermediate: Issuer;
  /** The intermediate's private key, decrypted in memory for signing. */
  intermediateKey: KeyObject;
  isRootKeyPresent: boolean;
}

/** Where the passphrase protecting the CA keys comes from; the first one set wins. */
export interface PassphraseSource {
  /** The passphrase itself (PALISADE_CA_PASSPHRASE). */
  value?: string;
  /** A file holding it (--passphrase-file, PALISADE_CA_PASSPHRASE_FILE). */
  file?: string;
}

/** Summary of a freshly initialised CA. */
export interface InitResult {
  dir: string;
  trustDomain: string;
  rootSerial: string;
  intermediateSerial: string;
  adminSerial: string;
  adminId: string;
}

/**
 * Creates a CA under `dir`: root, intermediate, trust bundle, store and an
 * admin credential. Refuses (CA_EXISTS) when a CA is already there unless
 * `force` is set, in which case the old CA's files are removed first.
 */
export function initCaDir(options: {
  dir: string;
  trustDomain: string;
  keyType: KeyType;
  force: boolean;
  passphrase: PassphraseSource;
  now?: Date;
}): InitResult {
  const { dir, keyType } = options;
  const trustDomain = parseTrustDomain(options.trustDomain);
  const now = options.now ?? new Date();
  if (existsSync(join(dir, CA_FILES.config)) || existsSync(join(dir, CA_FILES.store))) {
    if (!options.force) {
      throw new PalisadeError(
        'CA_EXISTS',
        `a CA already exists in ${dir} (use --force to replace it)`,
      );
    }
    removeCaFiles(dir);
  }
  mkdirSync(join(dir, CA_FILES.adminDir), { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const passphrase = ensurePassphrase(dir, options.passphrase);

  const rootKey = generateKeyPairSync(keyType);
  const root = createRootCertificate({
    key: rootKey,
    trustDomain,
    ttlSeconds: ROOT_TTL_SECONDS,
    now,
  });
  const rootIssuer = loadIssuer(root.pem, rootKey.privateKey);
  const interKey = generateKeyPairSync(keyType);
  const inter = createIntermediateCertificate({
    publicKey: interKey.publicKey,
    issuer: rootIssuer,
    trustDomain,
    ttlSeconds: INTERMEDIATE_TTL_SECONDS,
    now,
  });
  const interIssuer = loadIssuer(inter.pem, interKey.privateKey);
  const adminKey = generateKeyPairSync(keyType);
  const admin = createLeafCertificate({
    publicKey: adminKey.publicKey,
    spiffeId: adminId(trustDomain),
    issuer: interIssuer,
    ttlSeconds: ADMIN_TTL_SECONDS,
    now,
  });

  writeSecret(join(dir, CA_FILES.rootKey), encryptKey(rootKey.privateKey, passphrase));
  writeSecret(join(dir, CA_FILES.intermediateKey), encryptKey(interKey.privateKey, passphrase));
  writePublic(join(dir, CA_FILES.rootCert), root.pem);
  writePublic(join(dir, CA_FILES.intermediateCert), inter.pem);
  writePublic(join(dir, CA_FILES.bundle), root.pem);
  const adminDir = join(dir, CA_FILES.adminDir);
  writeSecret(join(adminDir, ADMIN_FILES.key), pemOf(adminKey.privateKey));
  writePublic(join(adminDir, ADMIN_FILES.cert), admin.pem + inter.pem);
  writePublic(join(adminDir, ADMIN_FILES.bundle), root.pem);

  const store = CaStore.open(join(dir, CA_FILES.store));
  try {
    store.appendAudit('ca.initialized', {
      trust_domain: trustDomain,
      key_type: keyType,
      root_serial: root.serialHex,
      intermediate_serial: inter.serialHex,
    });
    store.recordIssued({
      serialHex: admin.serialHex,
      spiffeId: adminId(trustDomain),
      notBefore: admin.notBefore,
      notAfter: admin.notAfter,
      issuedVia: 'bootstrap',
      issuerSerialHex: inter.serialHex,
      now,
    });
  } finally {
    store.close();
  }
  const config: CaDirConfig = { trustDomain, keyType, createdAt: now.toISOString() };
  writePublic(join(dir, CA_FILES.config), `${JSON.stringify(config, null, 2)}\n`);
  return {
    dir,
    trustDomain,
    rootSerial: root.serialHex,
    intermediateSerial: inter.serialHex,
    adminSerial: admin.serialHex,
    adminId: adminId(trustDomain),
  };
}

/**
 * Loads a CA directory for serving and decrypts the intermediate's key.
 * Throws CA_NOT_FOUND, CA_DIR_INVALID or PASSPHRASE_WRONG.
 */
export function loadCaDir(dir: string, passphrase: PassphraseSource): LoadedCaDir {
  const configPath = join(dir, CA_FILES.config);
  if (!existsSync(configPath)) {
    throw new PalisadeError('CA_NOT_FOUND', `no CA in ${dir} (run: palisade ca init --dir ${dir})`);
  }
  const config = readConfig(configPath);
  const secret = readPassphrase(dir, passphrase);
  const interPem = readText(join(dir, CA_FILES.intermediateCert));
  const interKey = decryptKey(join(dir, CA_FILES.intermediateKey), secret);
  return {
    dir,
    config,
    rootPem: readText(join(dir, CA_FILES.rootCert)),
    bundlePem: readText(join(dir, CA_FILES.bundle)),
    intermediate: loadIssuer(interPem, interKey),
    intermediateKey: interKey,
    isRootKeyPresent: existsSync(join(dir, CA_FILES.rootKey)),
  };
}

/** Decrypts the root key for rotating the intermediate; ROOT_KEY_ABSENT when it was moved off. */
export function loadRootIssuer(dir: string, passphrase: PassphraseSource): Issuer {
  const keyPath = join(dir, CA_FILES.rootKey);
  if (!existsSync(keyPath)) {
    throw new PalisadeError(
      'ROOT_KEY_ABSENT',
      `the root key is not on this host (${keyPath}); put it back to rotate the intermediate`,
    );
  }
  const key = decryptKey(keyPath, readPassphrase(dir, passphrase));
  return loadIssuer(readText(join(dir, CA_FILES.rootCert)), key);
}

/**
 * Writes a new intermediate and its encrypted key, keeping the previous pair
 * as `intermediate-<serial>.pem` so that the record of what signed what stays.
 */
export function replaceIntermediate(
  dir: string,
  passphrase: PassphraseSource,
  next: { certPem: string; key: KeyObject; previousSerial: string },
): void {
  const secret = readPassphrase(dir, passphrase);
  const certPath = join(dir, CA_FILES.intermediateCert);
  const keyPath = join(dir, CA_FILES.intermediateKey);
  renameSync(certPath, join(dir, `intermediate-${next.previousSerial}.pem`));
  renameSync(keyPath, join(dir, `intermediate-${next.previousSerial}.key.pem`));
  writeSecret(keyPath, encryptKey(next.key, secret));
  writePublic(certPath, next.certPem);
}

/** Reads the admin credential that `ca init` wrote, for CLI calls. */
export function readAdminCredential(dir: string): {
  keyPem: string;
  certPem: string;
  bundlePem: string;
} {
  const adminDir = join(dir, CA_FILES.adminDir);
  return {
    keyPem: readText(join(adminDir, ADMIN_FILES.key)),
    certPem: readText(join(adminDir, ADMIN_FILES.cert)),
    bundlePem: readText(join(adminDir, ADMIN_FILES.bundle)),
  };
}

/** Reads `ca.json`. */
export function readCaConfig(dir: string): CaDirConfig {
  return readConfig(join(dir, CA_FILES.config));
}

/** Writes a file readable by its owner only (0600), atomically. */
export function writeSecret(path: string, content: string): void {
  writeAtomic(path, content, 0o600);
}

/** Writes a world-readable file (0644), atomically. */
export function writePublic(path: string, content: string): void {
  writeAtomic(path, content, 0o644);
}

function writeAtomic(path: string, content: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function removeCaFiles(dir: string): void {
  for (const name of Object.values(CA_FILES)) {
    if (name === CA_FILES.passphrase) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
  }
  for (const suffix of ['-wal', '-shm'])
    rmSync(join(dir, CA_FILES.store + suffix), { force: true });
}

function ensurePassphrase(dir: string, source: PassphraseSource): string {
  if (source.value || source.file) return readPassphrase(dir, source);
  const path = join(dir, CA_FILES.passphrase);
  if (!existsSync(path)) writeSecret(path, `${randomBytes(32).toString('base64url')}\n`);
  return readPassphrase(dir, source);
}

function readPassphrase(dir: string, source: PassphraseSource): string {
  if (source.value) return source.value;
  const path = source.file ?? join(dir, CA_FILES.passphrase);
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new PalisadeError('PASSPHRASE_MISSING', `cannot read the CA passphrase file ${path}`, {
      cause: err,
    });
  }
  if (text.length < 8) {
    throw new PalisadeError(
      'PASSPHRASE_WEAK',
      `the CA passphrase in ${path} is shorter than 8 characters`,
    );
  }
  return text;
}

function encryptKey(key: KeyObject, passphrase: string): string {
  return key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }).toString();
}

function pemOf(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function decryptKey(path: string, passphrase: string): KeyObject {
  const pem = readText(path);
  try {
    return createPrivateKey({ key: pem, format: 'pem', passphrase });
  } catch (err) {
    throw new PalisadeError('PASSPHRASE_WRONG', `cannot decrypt ${path}: wrong passphrase?`, {
      cause: err,
    });
  }
}

function readConfig(path: string): CaDirConfig {
  try {
    const parsed = JSON.parse(readText(path)) as CaDirConfig;
    parseTrustDomain(parsed.trustDomain);
    return parsed;
  } catch (err) {
    throw new PalisadeError(
      'CA_DIR_INVALID',
      `${path} is not a valid CA config: ${errorMessage(err)}`,
      {
        cause: err,
      },
    );
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new PalisadeError('CA_DIR_INVALID', `cannot read ${path}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}
