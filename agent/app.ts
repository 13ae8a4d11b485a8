// Composition root of the sidecar: builds every module from the config and
// owns the start and stop order. Start: admin endpoints, identity (first
// certificate and trust bundle), then the inbound and outbound listeners.
// Stop: stop accepting, drain live connections up to the grace period, then
// close what is left and stop the identity.
import type { Registry } from 'prom-client';
import type { Logger } from '../certs/log.js';
import { AdminServer, identityView, policyView, whyAnswer } from './admin/index.js';
import type { AgentConfig } from './config/agent-config.js';
import { ConfigError } from './config/config-error.js';
import { createEventFeed, type EventQueue } from './events/index.js';
import { HttpStage } from './http/index.js';
import { IdentityManager, type TrustSnapshot, type WorkloadCredential } from './identity/index.js';
import { InboundProxy } from './inbound/index.js';
import { CidrSet, loadOriginalDstReader, parseCidr } from './intercept/index.js';
import { createAgentMetrics } from './metrics.js';
import {
  ExplicitUpstreams,
  PeerDialer,
  PeerSessions,
  TransparentOutbound,
} from './outbound/index.js';
import {
  judgesPort,
  openWorkloadSource,
  PolicyState,
  type Decision,
  type EffectivePolicy,
  type HttpSection,
  type WorkloadPolicy,
} from './policy/index.js';
import { LiveConnections, TlsContextHolder, verifyChain } from './tls/index.js';

/** How often the drain checks whether connections are gone, in milliseconds. */
const DRAIN_POLL_MS = 50;

/** How long a stopping agent tries to hand its last security events to the CA. */
const EVENT_FLUSH_ON_STOP_MS = 1000;

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
  /** The policy in force: the workload's composed with the mesh policy. */
  effectivePolicy(): EffectivePolicy;
  /** Decides an inbound peer as the inbound proxy would, without counting it. */
  explain(peerId: string): Decision;
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
  deps: {
    log: Logger;
    registry: Registry;
    /** The queue `log` feeds (createLogger's `onEvent`); without it no event is forwarded. */
    events?: EventQueue;
  },
): Promise<RunningAgent> {
  const { log, registry, events } = deps;
  const originalDst = config.transparent ? loadOriginalDstReader() : undefined;
  const metrics = createAgentMetrics(
    registry,
    events ? { eventCounts: () => events.counts() } : {},
  );
  const trustDomain = config.identity.trustDomain;
  const live = new LiveConnections({ log: log.child({ component: 'connections' }), metrics });
  const tlsHolder = new TlsContextHolder();

  let policy: PolicyState | undefined;
  const httpStage = new HttpStage({ log: log.child({ component: 'http' }), metrics });
  const source = openWorkloadSource(
    config.policy,
    trustDomain,
    log.child({ component: 'policy' }),
    (next, http) => {
      const httpModeChanged = httpModeOf(httpStage.current) !== httpModeOf(http);
      httpStage.configure(http);
      // A connection spliced raw would escape new request rules, and one in
      // the HTTP stage would have none left: both reconnect in the new mode.
      policy?.setWorkload(next, () => (httpModeChanged ? 'http-mode-changed' : undefined));
    },
  );
  if ('conflict' in source) {
    throw new ConfigError([
      { setting: '--policy-file', value: config.policy.file ?? '', problem: source.conflict },
    ]);
  }
  httpStage.configure(source.http);

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

  const policyState = new PolicyState(source.policy, {
    trustDomain,
    selfId: identity.spiffeId,
    log: log.child({ component: 'policy' }),
    closeInbound: (reasonFor) =>
      live.closeWhere((conn) =>
        conn.direction === 'inbound' ? reasonFor(conn.peerId) : undefined,
      ),
    metrics: {
      meshVersion: (version) => metrics.meshPolicyVersion.set(version),
      denial: (layer, dryRun) => metrics.policyLayerDenials.inc({ layer, dry_run: String(dryRun) }),
    },
  });
  policy = policyState;

  const trustFacts = () => identity.trust;
  const dialContext = { tls: tlsHolder, trust: trustFacts, trustDomain };
  const outboundLog = log.child({ component: 'outbound' });
  const dialer = new PeerSessions({
    dialer: new PeerDialer(dialContext),
    context: dialContext,
    isMuxOn: config.peer.isMuxOn,
    onSessionCount: (open) => metrics.muxSessions.set({ direction: 'outbound' }, open),
    onProtocolError: (err, target) => {
      metrics.muxProtocolErrors.inc({ direction: 'outbound', reason: err.reason });
      outboundLog.warn(
        {
          event: 'mux.protocol_error',
          direction: 'outbound',
          target,
          reason: err.reason,
          detail: err.message,
        },
        'mux protocol error',
      );
    },
  });
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
    policyState.applyMesh(trust.meshPolicy, trust.meshRejection);
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
      mode: () => policyState.current.mode,
      handshakeTimeoutMs: config.inbound.handshakeTimeoutMs,
      maxConnections: config.inbound.maxConnections,
      trustDomain,
    },
    {
      tls: tlsHolder,
      trust: trustFacts,
      admit: (peerId) => policyState.admit(peerId),
      recheck: (peerId) => policyState.explain(peerId),
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
          { dialer, live, log: outboundLog, metrics, originalDst },
        )
      : undefined;
  const upstreams = new ExplicitUpstreams(config.upstreams, {
    dialer,
    live,
    log: outboundLog,
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
    identity: () => identityView(identity.credential, trustDomain, identity.trust?.version ?? 0),
    policy: () => policyView(policyState.current),
    why: (query) =>
      whyAnswer(query, policyState.explain(query.peer), policyState.current.workload.version, {
        section: httpStage.current,
        verifier: httpStage.verifier,
      }),
    shutdown: () => requestShutdown(),
  });
  const adminAddress = await admin.start(config.admin.listen);

  const feed = events
    ? createEventFeed(events, identity, log.child({ component: 'events' }))
    : undefined;

  identity.start();
  const ready = identity.ready().then(async () => {
    refreshTls(identity.credential, identity.trust);
    inboundAddress = await inbound.start();
    upstreamAddresses = await upstreams.start();
    outboundAddress = await transparent?.start();
    listening = true;
    feed?.start();
    log.info(
      {
        event: 'agent.ready',
        peer_id: identity.credential?.spiffeId,
        inbound_address: inboundAddress,
        upstreams: upstreamAddresses,
        ...(outboundAddress ? { outbound_address: outboundAddress } : {}),
        admin_address: adminAddress,
        mode: policyState.current.mode,
        mesh_policy_version: policyState.current.mesh.version,
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
    policy: () => policyState.current.workload,
    effectivePolicy: () => policyState.current,
    explain: (peerId) => policyState.explain(peerId),
    shutdownRequested,
    stop: async (graceMs = config.drainTimeoutMs) => {
      listening = false;
      source.stop();
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
      dialer.closeAll();
      httpStage.close();
      await feed?.stop(graceMs > 0 ? EVENT_FLUSH_ON_STOP_MS : 0);
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
