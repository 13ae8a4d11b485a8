// Palisade's CA figures for the comparison, measured on the CA the agents
// use: signings per second through gRPC and revocation fan-out to 200
// WatchTrust streams.
import { readAdminCredential } from '../../../certs/ca-dir.js';
import { CaClient } from '../../../certs/client/index.js';
import { workloadId } from '../../../certs/spiffe-id.js';
import { createCsr, generateKeyPair } from '../../../certs/x509/index.js';
import { BENCH_NAMESPACE, TRUST_DOMAIN, type BenchMesh } from './bench-mesh.js';
import type { PalisadeExtras } from './compare-report.js';
import type { CompareSettings } from './compare-settings.js';
import { runSigningLoad } from './signing-load.js';
import { measureRevocationFanout, type FanoutResult } from './trust-fanout.js';

/** CA signing load: clients, calls in flight each, P-256 leaf keys made beforehand. */
const SIGNING_CLIENTS = 4;
const SIGNING_IN_FLIGHT = 32;
const SIGNING_KEYS = 16;

/** Fan-out shape: 200 streams over 20 channels, revocations 100 ms apart. */
export const FANOUT_STREAMS = 200;
const FANOUT_WATCHER_CLIENTS = 20;
const FANOUT_INTERVAL_MS = 100;

/** Lifetime of every leaf issued for these figures, in seconds. */
const LEAF_TTL_SECONDS = 3600;

/** Admin `Issue` calls with P-256 CSRs from several channels, closed loop, one short window. */
export async function measureSigning(
  settings: CompareSettings,
  adminOf: () => CaClient,
  clients: CaClient[],
): Promise<NonNullable<PalisadeExtras['signing']>> {
  const keys = await Promise.all(
    Array.from({ length: SIGNING_KEYS }, () => generateKeyPair('ecdsa-p256')),
  );
  const callers = Array.from({ length: SIGNING_CLIENTS }, () => adminOf());
  clients.push(...callers);
  const ids = callers.map((_, c) => workloadId(TRUST_DOMAIN, BENCH_NAMESPACE, `signing-${c}`));
  const csrs = ids.map((spiffeId) => keys.map((key) => createCsr({ key, spiffeId })));
  const result = await runSigningLoad({
    clientCount: SIGNING_CLIENTS,
    inFlightPerClient: SIGNING_IN_FLIGHT,
    warmupMs: Math.min(1000, settings.signingMs / 2),
    durationMs: settings.signingMs,
    call: (c, k) => {
      const clientCsrs = csrs[c] as string[];
      return (callers[c] as CaClient).issue({
        spiffeId: ids[c] as string,
        csrPem: clientCsrs[k % clientCsrs.length] as string,
        ttlSeconds: LEAF_TTL_SECONDS,
      });
    },
    onWindowStart: () => undefined,
    onWindowEnd: () => undefined,
  });
  return {
    ...result,
    keyType: 'ecdsa-p256',
    clients: SIGNING_CLIENTS,
    inFlightPerClient: SIGNING_IN_FLIGHT,
  };
}

/** Opens 200 WatchTrust streams on the mesh's CA and times revocations reaching each. */
export async function measureFanout(
  settings: CompareSettings,
  mesh: BenchMesh,
  admin: CaClient,
  clients: CaClient[],
): Promise<FanoutResult> {
  const key = await generateKeyPair('ecdsa-p256');
  const serials: string[] = [];
  for (let i = 0; i < settings.revocations; i++) {
    const spiffeId = workloadId(TRUST_DOMAIN, BENCH_NAMESPACE, `revoked-${i}`);
    const signed = await admin.issue({
      spiffeId,
      csrPem: createCsr({ key, spiffeId }),
      ttlSeconds: LEAF_TTL_SECONDS,
    });
    serials.push(signed.serial);
  }
  const watchers = Array.from({ length: FANOUT_WATCHER_CLIENTS }, () => caClient(mesh));
  clients.push(...watchers);
  return measureRevocationFanout({
    watchers,
    streamCount: FANOUT_STREAMS,
    admin,
    serials,
    intervalMs: FANOUT_INTERVAL_MS,
  });
}

/** A client of the mesh's CA, with a client certificate when one is given. */
export function caClient(
  mesh: BenchMesh,
  credential?: { keyPem: string; certChainPem: string },
): CaClient {
  return new CaClient({
    address: mesh.ca.address,
    trustBundlePem: readAdminCredential(mesh.caDir).bundlePem,
    trustDomain: TRUST_DOMAIN,
    ...(credential ? { credential } : {}),
  });
}
