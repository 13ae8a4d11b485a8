// Composition root of the sidecar: builds every module from the config and
// owns the start and stop order. Start: admin endpoints, identity (first
// certificate and trust bundle), then the inbound and outbound listeners.
// Stop: stop accepting, drain live connections up to the grace period, then
// close what is left and stop the identity.
import type { Registry } from 'prom-client';
import type { Logger } from '../certs/log.js';
import { AdminServer } from './admin/index.js';
import type { AgentConfig } from './config/agent-config.js';
import { ConfigError } from './config/config-error.js';
import { HttpStage, judgeRequest } from './http/index.js';
import { IdentityManager, type TrustSnapshot, type WorkloadCredential } from './identity/index.js';
import { InboundProxy } from './inbound/index.js';
import { CidrSet, loadOriginalDstReader, parseCidr } from './intercept/index.js';
import { createAgentMetrics } from './metrics.js';
import { ExplicitUpstreams, PeerDialer, TransparentOutbound } from './outbound/index.js';
import {
  buildWorkloadPolicy,
  decide,
  judgesPort,
  PolicyWatcher,
  type HttpSection,
  type WorkloadPolicy,
} from './policy/index.js';
import { LiveConnections, TlsContextHolder, verifyChain } from './tls/index.js';

/** How often the drain checks whether connections are gone, in milliseconds. */
const DRAIN_POLL_MS = 50;

/** A running agent. */
export interface RunningAgent {
  /** Resolves once the first certificate and trust bundle are loaded and listeners are up. */
  ready: Promise<void>;
  adminAddress: string;
  /** Bound inbound address (after ready). */
  inboundAddress(): string | undefined;
  /** Bound transparent outbound address (after ready), when interception is on. */
  outboundAddress(): string | undefined;
  /** Bound explicit upstream addresses, in config order (after ready). */
  upstreamAddresses(): string[];
  identity: IdentityManager;
  live: LiveConnections;
  /** Current workload policy. */
  policy(): WorkloadPolicy;
  /** Resolves when a shutdown was asked for over the admin port. */
  shutdownRequested: Promise<void>;
  /** Stops accepting, drains for up to `graceMs` (default from config), closes the rest. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts the agent; throws for bad config or ports that cannot be bound, and
 * ADDON_MISSING when interception is on but the SO_ORIGINAL_DST addon is not
 * built (explicit mode never loads it).
 */
export async function startAgent(
  config: AgentConfig,
  deps: { log: Logger; registry: Registry },
): Promise<RunningAgent> {
  const { log, registry } = deps;
  const originalDst = config.transparent ? loadOriginalDstReader() : undefined;
  const metrics = createAgentMetrics(registry);
  const trustDomain = config.identity.trustDomain;
  const live = new LiveConnections({ log: log.child({ component: 'connections' }), metrics });
  const tlsHolder = new TlsContextHolder();

  let policy: WorkloadPolicy;
  let watcher: PolicyWatcher | undefined;
  const httpStage = new HttpStage({ log: log.child({ component: 'http' }), metrics });
  const flagsHttp = config.policy.http;
  const applyPolicy = (next: WorkloadPolicy, fileHttp: HttpSection | undefined) => {
    if (flagsHttp !== undefined && fileHttp !== undefined) {
      log.error(
        { event: 'policy.http_ignored', path: config.policy.file, err_code: 'CONFIG_INVALID' },
        'the policy file gained an http section while --jwt-*/--http-* flags set one: the flags stay in force',
      );
    }
    const http = flagsHttp ?? fileHttp;
    const httpModeChanged = httpModeOf(httpStage.current) !== httpModeOf(http);
    httpStage.configure(http);
    policy = next;
    const closed = live.closeWhere((conn) => {
      if (conn.direction !== 'inbound') return undefined;
      if (!decide(next, conn.peerId, trustDomain).allowed) return 'policy-denied';
      // A connection spliced raw would escape new request rules, and one in
      // the HTTP stage would have none left: both reconnect in the new mode.
      return httpModeChanged ? 'http-mode-changed' : undefined;
    });
    log.info(
      { event: 'policy.applied', source: next.source, version: next.version, closed },
      'policy applied',
    );
  };
  if (config.policy.file) {
    watcher = new PolicyWatcher({
      path: config.policy.file,
      trustDomain,
      log: log.child({ component: 'policy' }),
      onChange: (next, _previous, document) => applyPolicy(next, document.http),
    });
    policy = watcher.start();
    const fileHttp = watcher.document?.http;
    if (flagsHttp !== undefined && fileHttp !== undefined) {
      watcher.stop();
      throw new ConfigError([
        {
          setting: '--policy-file',
          value: config.policy.file,
          problem:
            'has its own http section: give the http settings in the file or by --jwt-*/--http-* flags (PALISADE_JWT_*, PALISADE_HTTP_*), not both',
        },
      ]);
    }
    httpStage.configure(flagsHttp ?? fileHttp);
  } else {
    policy = buildWorkloadPolicy(
      {
        ...(config.policy.allow ? { allow: [...config.policy.allow] } : {}),
        mode: config.policy.mode,
        dryRun: config.policy.dryRun,
        source: 'flags',
      },
      trustDomain,
    );
    httpStage.configure(flagsHttp);
  }

  const identity = new IdentityManager({
    caAddr: config.ca.addr,
    caBundlePem: config.ca.bundlePem,
    trustDomain,
    proof: config.identity.proof,
    ...(config.identity.spiffeId ? { spiffeId: config.identity.spiffeId } : {}),
    ...(config.identity.certTtlSeconds ? { certTtlSeconds: config.identity.certTtlSeconds } : {}),
    keyType: config.identity.keyType,
    log: log.child({ component: 'identity' }),
    metrics: {
      rotations: (result) => metrics.rotations.inc({ result }),
      certExpiry: (notAfter) => metrics.certExpirySeconds.set(notAfter.getTime() / 1000),
      trustVersion: (version) => metrics.trustVersion.set(version),
    },
  });

  const trustFacts = () => identity.trust;
  const dialer = new PeerDialer({ tls: tlsHolder, trust: trustFacts, trustDomain });
  const refreshTls = (
    credential: WorkloadCredential | undefined,
    trust: TrustSnapshot | undefined,
  ) => {
    if (!credential || !trust) return;
    tlsHolder.update({
      keyPem: credential.keyPem,
      certChainPem: credential.certChainPem,
      trustBundlePem: trust.bundlePem,
    });
  };
  identity.onCredential((credential) => refreshTls(credential, identity.trust));
  identity.onTrust((trust, previous) => {
    const bundleChanged = previous?.trustStore !== trust.trustStore;
    // New TLS material means a new client context, which the dialer's cached
    // sessions are tied to: sessions made before it are not resumed.
    refreshTls(identity.credential, trust);
    live.closeWhere((conn) => {
      if (
        trust.revokedIds.has(conn.peerId) ||
        conn.chainSerials.some((s) => trust.revokedSerials.has(s))
      ) {
        return 'peer-revoked';
      }
      if (!bundleChanged) return undefined;
      const verdict = verifyChain([...conn.chainDer], trust, { trustDomain, now: new Date() });
      return verdict.ok ? undefined : 'peer-untrusted';
    });
  });

  const inbound = new InboundProxy(
    {
      listen: config.inbound.listen,
      appAddr: config.inbound.appAddr,
      agentPorts: agentPorts(config),
      mode: () => policy.mode,
      handshakeTimeoutMs: config.inbound.handshakeTimeoutMs,
      maxConnections: config.inbound.maxConnections,
      trustDomain,
    },
    {
      tls: tlsHolder,
      trust: trustFacts,
      admit: (peerId) => decide(policy, peerId, trustDomain),
      live,
      log: log.child({ component: 'inbound' }),
      metrics,
      ...(originalDst ? { originalDst } : {}),
      requestStage: {
        judges: (appPort) => judgesPort(httpStage.current, appPort),
        serve: (socket, conn, onClose) => httpStage.serve(socket, conn, onClose),
      },
    },
  );
  const meshCidrs = new CidrSet((config.transparent?.meshCidrs ?? []).map(parseCidr));
  const transparent =
    config.transparent && originalDst
      ? new TransparentOutbound(
          {
            listen: config.transparent.listen,
            isMeshAddress: (address) => meshCidrs.has(address),
            external: config.transparent.external,
            agentPorts: agentPorts(config),
          },
          { dialer, live, log: log.child({ component: 'outbound' }), metrics, originalDst },
        )
      : undefined;
  const upstreams = new ExplicitUpstreams(config.upstreams, {
    dialer,
    live,
    log: log.child({ component: 'outbound' }),
    metrics,
  });

  let listening = false;
  let inboundAddress: string | undefined;
  let upstreamAddresses: string[] = [];
  let outboundAddress: string | undefined;
  let requestShutdown: () => void = () => undefined;
  const shutdownRequested = new Promise<void>((resolve) => (requestShutdown = resolve));

  const admin = new AdminServer({
    registry,
    isReady: () => listening && identity.isReady(),
    identity: () => {
      const c = identity.credential;
      if (!c) return undefined;
      return {
        spiffeId: c.spiffeId,
        serial: c.serialHex,
        notBefore: c.notBefore.toISOString(),
        notAfter: c.notAfter.toISOString(),
        trustDomain,
        trustVersion: identity.trust?.version ?? 0,
      };
    },
    policy: () => ({
      source: policy.source,
      version: policy.version,
      mode: policy.mode,
      dryRun: policy.dryRun,
      allow: policy.allow ? policy.allow.map((p) => p.text) : null,
    }),
    why: async (query) => {
      const connection = decide(policy, query.peer, trustDomain);
      const section = httpStage.current;
      const answer: Record<string, unknown> = {
        peer: query.peer,
        policyVersion: policy.version,
        ...connection,
      };
      if (query.path === undefined) return answer;
      if (section === undefined) {
        answer['http'] = { explanation: 'the policy has no http section: requests are not judged' };
        return answer;
      }
      const verdict = await judgeRequest(section, httpStage.verifier, {
        method: (query.method ?? 'GET').toUpperCase(),
        target: query.path,
        peerId: query.peer,
        authorization: query.token === undefined ? undefined : `Bearer ${query.token}`,
      });
      answer['http'] = {
        allowed: connection.allowed && verdict.allowed,
        status: verdict.allowed ? null : verdict.status,
        reason: verdict.reason,
        rule: verdict.rule?.name ?? null,
        missingScope: verdict.allowed ? null : (verdict.missingScope ?? null),
        sub: verdict.claims?.sub ?? null,
        clientId: verdict.claims?.clientId ?? null,
        explanation: verdict.explanation,
      };
      return answer;
    },
    shutdown: () => requestShutdown(),
  });
  const adminAddress = await admin.start(config.admin.listen);

  identity.start();
  const ready = identity.ready().then(async () => {
    refreshTls(identity.credential, identity.trust);
    inboundAddress = await inbound.start();
    upstreamAddresses = await upstreams.start();
    outboundAddress = await transparent?.start();
    listening = true;
    log.info(
      {
        event: 'agent.ready',
        peer_id: identity.credential?.spiffeId,
        inbound_address: inboundAddress,
        upstreams: upstreamAddresses,
        ...(outboundAddress ? { outbound_address: outboundAddress } : {}),
        admin_address: adminAddress,
        mode: policy.mode,
      },
      'agent ready',
    );
  });
  // Start-up failures surface through `ready`; keep them from being unhandled here.
  ready.catch(() => undefined);

  return {
    ready,
    adminAddress,
    inboundAddress: () => inboundAddress,
    outboundAddress: () => outboundAddress,
    upstreamAddresses: () => upstreamAddresses,
    identity,
    live,
    policy: () => policy,
    shutdownRequested,
    stop: async (graceMs = config.drainTimeoutMs) => {
      listening = false;
      watcher?.stop();
      if (inboundAddress) await inbound.stopAccepting();
      await upstreams.stopAccepting();
      if (outboundAddress) await transparent?.stopAccepting();
      const open = () =>
        inbound.openConnections + upstreams.openConnections + (transparent?.openConnections ?? 0);
      const deadline = Date.now() + graceMs;
      while (open() > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
      }
      const dropped = open();
      inbound.destroyAll();
      upstreams.destroyAll();
      transparent?.destroyAll();
      httpStage.close();
      await identity.stop();
      await admin.stop();
      log.info({ event: 'agent.stopped', dropped_connections: dropped }, 'agent stopped');
    },
  };
}

/**
 * What decides which connections the HTTP stage takes: off, every port, or
 * the listed ports. A change closes inbound connections so they reconnect in
 * the new mode (LiveConnections does not record the application port, so
 * every inbound connection is closed, not only those whose port changed).
 */
function httpModeOf(section: HttpSection | undefined): string {
  if (section === undefined) return 'off';
  return section.ports === undefined
    ? 'all'
    : `ports:${[...section.ports].sort((a, b) => a - b).join(',')}`;
}

/** The ports the agent serves itself: never an application's original destination. */
function agentPorts(config: AgentConfig): number[] {
  const ports = [config.inbound.listen.port, config.admin.listen.port];
  if (config.transparent) ports.push(config.transparent.listen.port);
  return ports.filter((port) => port !== 0);
}
