// Composition root of the certificate authority: loads the CA directory,
// opens the store, builds the authority and serves it over gRPC and HTTP.
// It receives its logger and metrics registry from whoever starts it.
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import type { Server as HttpServer } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import { loadCaServices, type StatusResponse } from '../proto/index.js';
import { CertificateAuthority, notAfterOf } from './authority/index.js';
import { startMetricsServer } from './admin-http.js';
import {
  CA_FILES,
  INTERMEDIATE_TTL_SECONDS,
  loadCaDir,
  loadRootIssuer,
  replaceIntermediate,
  type PassphraseSource,
} from './ca-dir.js';
import { PalisadeError, errorMessage } from './errors.js';
import { EventFeed, ReporterRateLimiter } from './events/index.js';
import { formatHostPort, type HostPort } from './host-port.js';
import type { Logger } from './log.js';
import { createCaMetrics } from './metrics.js';
import { caId } from './spiffe-id.js';
import { isJwksDiscovery, SaTokenVerifier } from './authn/index.js';
import { CaStore } from './store/index.js';
import {
  adminService,
  CaServerCredentials,
  workloadService,
  type ServingIdentity,
} from './server/index.js';
import { SigningPool } from './signing/index.js';
import {
  createCsr,
  createIntermediateCertificate,
  generateKeyPairSync,
  serialHexOf,
} from './x509/index.js';

/**
 * Largest gRPC message the CA accepts, in bytes: room for a ReportEvents
 * batch of 100 events at their field limits (~7.5 KiB each); a CSR needs
 * a few KiB.
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/** Lifetime of the CA's own serving certificate; it renews at half of it. */
const SERVING_TTL_SECONDS = 24 * 3600;

/** Everything `palisade ca serve` can be told. */
export interface CaServeConfig {
  dir: string;
  listen: HostPort;
  metricsListen: HostPort | undefined;
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
  /** Shortest certificate lifetime handed out (default 60 s). */
  minTtlSeconds?: number;
  /** JWKS file, http(s) URL, or `kubernetes`/`oidc` for discovery on the API server. */
  saJwks: string | undefined;
  /** Required `iss` of service-account tokens; with discovery, taken from the API server. */
  saIssuer: string | undefined;
  /** API server base URL used by discovery (default `https://kubernetes.default.svc`). */
  saApiServerUrl?: string;
  passphrase: PassphraseSource;
  /** Worker threads that parse CSRs and sign (0: on the main thread). */
  signWorkers?: number;
  /** How often expired revocations are swept from the revocation set. */
  sweepIntervalMs: number;
  /** The security-event feed's bounds; defaults in certs/events and certs/store. */
  events?: {
    /** Most events kept in the store (default 100,000). */
    maxStored?: number;
    /** Events per second one reporter may send on average (default 200). */
    perReporterPerSecond?: number;
    /** Events one reporter may send at once (default 2,000; at least 500). */
    perReporterBurst?: number;
  };
}

/** A running CA. */
export interface RunningCa {
  authority: CertificateAuthority;
  /** The gRPC address actually bound (port 0 resolved). */
  address: string;
  port: number;
  metricsAddress: string | undefined;
  trustDomain: string;
  stop(): Promise<void>;
}

/** Starts the CA; throws PalisadeError for a bad directory, passphrase or address. */
export async function startCa(
  config: CaServeConfig,
  deps: { log: Logger; registry: Registry; version: string },
): Promise<RunningCa> {
  const { log, registry } = deps;
  const startedAt = new Date();
  const loaded = loadCaDir(config.dir, config.passphrase);
  const trustDomain = loaded.config.trustDomain;
  if (config.defaultTtlSeconds > config.maxTtlSeconds) {
    throw new PalisadeError(
      'CONFIG_INVALID',
      `--default-ttl (${config.defaultTtlSeconds}s) exceeds --max-ttl (${config.maxTtlSeconds}s)`,
    );
  }
  const isSaDiscovery = config.saJwks !== undefined && isJwksDiscovery(config.saJwks);
  if (config.saIssuer ? !config.saJwks : config.saJwks && !isSaDiscovery) {
    throw new PalisadeError(
      'CONFIG_INVALID',
      '--sa-jwks and --sa-issuer go together unless --sa-jwks is kubernetes',
    );
  }
  const metrics = createCaMetrics(registry);
  const rootCert = new X509Certificate(loaded.rootPem);
  const rootCertExpiry = new Date(rootCert.validTo);
  metrics.rootExpirySeconds.set(rootCertExpiry.getTime() / 1000);
  const store = CaStore.open(join(config.dir, CA_FILES.store), {
    ...(config.events?.maxStored ? { maxEvents: config.events.maxStored } : {}),
  });
  const saVerifier = config.saJwks
    ? new SaTokenVerifier({
        jwks: config.saJwks,
        ...(config.saIssuer ? { issuer: config.saIssuer } : {}),
        ...(config.saApiServerUrl ? { discovery: { apiServerUrl: config.saApiServerUrl } } : {}),
        trustDomain,
      })
    : undefined;
  const signer = new SigningPool(
    { workers: config.signWorkers ?? 0, trustDomain },
    { certPem: loaded.intermediate.certPem, key: loaded.intermediateKey },
  );
  const authority = new CertificateAuthority({
    options: {
      trustDomain,
      defaultTtlSeconds: config.defaultTtlSeconds,
      maxTtlSeconds: config.maxTtlSeconds,
      ...(config.minTtlSeconds ? { minTtlSeconds: config.minTtlSeconds } : {}),
    },
    store,
    signer,
    bundlePem: loaded.bundlePem,
    log,
    metrics,
    ...(saVerifier ? { saVerifier } : {}),
  });

  const feed = new EventFeed({
    store: store.events,
    log,
    metrics,
    trustDomain,
    limiter: new ReporterRateLimiter({
      ...(config.events?.perReporterPerSecond
        ? { perSecond: config.events.perReporterPerSecond }
        : {}),
      ...(config.events?.perReporterBurst ? { burst: config.events.perReporterBurst } : {}),
    }),
  });

  const servingIdentity = await issueServingIdentity(authority, loaded.bundlePem);
  const credentials = new CaServerCredentials(servingIdentity);
  // The serving certificate renews at half of the lifetime it actually got,
  // which a mesh policy's maxCertTtl may have shortened.
  let servingTimer: NodeJS.Timeout | undefined;
  const scheduleServingRenewal = (notAfterMs: number) => {
    const delayMs = Math.max(1000, Math.floor((notAfterMs - Date.now()) / 2));
    servingTimer = setTimeout(() => {
      issueServingIdentity(authority, loaded.bundlePem).then(
        (identity) => {
          credentials.update(identity);
          scheduleServingRenewal(identity.notAfterMs);
        },
        (err: unknown) => {
          log.error(
            { err_code: 'SERVING_RENEWAL_FAILED', reason: errorMessage(err) },
            'serving certificate renewal failed',
          );
          scheduleServingRenewal(Date.now() + 60_000);
        },
      );
    }, delayMs);
    servingTimer.unref();
  };
  scheduleServingRenewal(servingIdentity.notAfterMs);

  const rotateIntermediate = async (ttlSeconds: number) => {
    const rootIssuer = loadRootIssuer(config.dir, config.passphrase);
    const key = generateKeyPairSync(loaded.config.keyType);
    const cert = createIntermediateCertificate({
      publicKey: key.publicKey,
      issuer: rootIssuer,
      trustDomain,
      ttlSeconds: ttlSeconds || INTERMEDIATE_TTL_SECONDS,
    });
    const previous = authority.intermediate;
    replaceIntermediate(config.dir, config.passphrase, {
      certPem: cert.pem,
      key: key.privateKey,
      previousSerial: previous.serialHex,
    });
    authority.useIntermediate(cert.pem, key.privateKey);
    credentials.update(await issueServingIdentity(authority, loaded.bundlePem));
    return { oldSerial: previous.serialHex, newSerial: cert.serialHex, notAfter: cert.notAfter };
  };

  const status = (): StatusResponse => {
    const counts = store.countCerts();
    const inter = authority.intermediate;
    return {
      trustDomain,
      version: deps.version,
      startedUnixMs: startedAt.getTime(),
      rootSerial: serialHexOf(rootCert),
      rootNotAfterUnixMs: rootCertExpiry.getTime(),
      intermediateSerial: inter.serialHex,
      intermediateNotAfterUnixMs: notAfterOf(inter).getTime(),
      trustVersion: authority.trust.version,
      watchers: authority.watcherCount,
      certificatesTotal: counts.total,
      certificatesActive: counts.active,
      certificatesRevoked: counts.revoked,
      revokedIds: authority.trust.revokedIds.length,
      keyType: loaded.config.keyType,
      rootKeyPresent: loaded.isRootKeyPresent,
      defaultTtlSeconds: config.defaultTtlSeconds,
      maxTtlSeconds: config.maxTtlSeconds,
    };
  };

  const ctx = { log, metrics };
  const services = loadCaServices();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc-node.max_session_memory': 64,
  });
  server.addService(services.workload, workloadService(authority, feed, ctx));
  server.addService(
    services.admin,
    adminService({ authority, events: feed, rotateIntermediate, status }, ctx),
  );
  const port = await bind(server, formatHostPort(config.listen), credentials);

  let metricsServer: HttpServer | undefined;
  let metricsAddress: string | undefined;
  if (config.metricsListen) {
    const started = await startMetricsServer({
      listen: config.metricsListen,
      registry,
      isReady: () => true,
    });
    metricsServer = started.server;
    metricsAddress = started.address;
  }

  const sweepTimer = setInterval(() => {
    try {
      authority.sweepExpired();
    } catch (err) {
      log.error({ reason: errorMessage(err) }, 'revocation sweep failed');
    }
  }, config.sweepIntervalMs);
  sweepTimer.unref();

  const address = formatHostPort({ host: config.listen.host, port });
  log.info(
    {
      event: 'ca.started',
      address,
      metrics_address: metricsAddress,
      trust_domain: trustDomain,
      intermediate_serial: authority.intermediate.serialHex,
      trust_version: authority.trust.version,
    },
    'ca serving',
  );

  return {
    authority,
    address,
    port,
    metricsAddress,
    trustDomain,
    stop: async () => {
      clearTimeout(servingTimer);
      clearInterval(sweepTimer);
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 2000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
        // Open watch streams never end by themselves; end them now.
        server.forceShutdown();
      });
      if (metricsServer) {
        const closing = metricsServer;
        await new Promise<void>((resolve) => closing.close(() => resolve()));
      }
      await signer.close();
      store.close();
      log.info({ event: 'ca.stopped' }, 'ca stopped');
    },
  };
}

/** Issues the CA's own short-lived serving certificate for its SPIFFE ID. */
async function issueServingIdentity(
  authority: CertificateAuthority,
  bundlePem: string,
): Promise<ServingIdentity & { notAfterMs: number }> {
  const key = generateKeyPairSync('ecdsa-p256');
  const spiffeId = caId(authority.options.trustDomain);
  const signed = await authority.issueForAdmin({
    spiffeId,
    csrPem: createCsr({ key, spiffeId }),
    ttlSeconds: Math.min(SERVING_TTL_SECONDS, authority.options.maxTtlSeconds),
  });
  return {
    keyPem: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    chainPem: signed.chainPem.join(''),
    trustBundlePem: bundlePem,
    notAfterMs: signed.notAfter.getTime(),
  };
}

function bind(
  server: grpc.Server,
  address: string,
  credentials: grpc.ServerCredentials,
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => {
      if (err) {
        reject(
          new PalisadeError('LISTEN_FAILED', `cannot listen on ${address}: ${err.message}`, {
            cause: err,
          }),
        );
      } else {
        resolve(port);
      }
    });
  });
}
