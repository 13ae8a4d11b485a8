import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { startCa, type CaServeConfig, type RunningCa } from '../../certs/ca.js';
import { initCaDir, readAdminCredential, type InitResult } from '../../certs/ca-dir.js';
import { CaClient } from '../../certs/client/index.js';
import type { KeyType } from '../../certs/x509/index.js';
import { captureLog, type CapturedLog } from './log-capture.js';

/** Passphrase of every test CA; tests pass it as a value, like PALISADE_CA_PASSPHRASE. */
export const TEST_PASSPHRASE = 'test-passphrase-not-secret';

/** A CA directory made for one test file. */
export interface TestCaDir {
  dir: string;
  init: InitResult;
  remove(): void;
}

/** Initialises a CA in a fresh temp directory. */
export function makeCaDir(trustDomain = 'test.local', keyType: KeyType = 'ecdsa-p256'): TestCaDir {
  const dir = mkdtempSync(join(tmpdir(), 'palisade-ca-'));
  const init = initCaDir({
    dir,
    trustDomain,
    keyType,
    force: false,
    passphrase: { value: TEST_PASSPHRASE },
  });
  return { dir, init, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A CA serving on loopback port 0, with its log captured. */
export interface TestCa {
  ca: RunningCa;
  captured: CapturedLog;
  registry: Registry;
  /** An admin client using the admin credential of the CA directory. */
  admin(): CaClient;
  /** A client without a client certificate, or with the given one. */
  client(credential?: { keyPem: string; certChainPem: string }): CaClient;
}

/** Starts a CA on 127.0.0.1:0 over `dir`; callers stop it. */
export async function startTestCa(
  dir: string,
  overrides: Partial<CaServeConfig> = {},
): Promise<TestCa> {
  const captured = captureLog('ca');
  const registry = new Registry();
  const ca = await startCa(
    {
      dir,
      listen: { host: '127.0.0.1', port: 0 },
      metricsListen: { host: '127.0.0.1', port: 0 },
      defaultTtlSeconds: 3600,
      maxTtlSeconds: 86400,
      saJwks: undefined,
      saIssuer: undefined,
      passphrase: { value: TEST_PASSPHRASE },
      sweepIntervalMs: 60_000,
      ...overrides,
    },
    { log: captured.log, registry, version: 'test' },
  );
  const bundlePem = readAdminCredential(dir).bundlePem;
  const client = (credential?: { keyPem: string; certChainPem: string }) =>
    new CaClient({
      address: ca.address,
      trustBundlePem: bundlePem,
      trustDomain: ca.trustDomain,
      ...(credential ? { credential } : {}),
    });
  const admin = () => {
    const cred = readAdminCredential(dir);
    return client({ keyPem: cred.keyPem, certChainPem: cred.certPem });
  };
  return { ca, captured, registry, admin, client };
}
