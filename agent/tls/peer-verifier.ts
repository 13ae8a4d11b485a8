import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { parseSpiffeId } from '../../certs/spiffe-id.js';
import { verifySvid, type SvidVerdict, type TrustStore } from '../../certs/x509/index.js';

/** Why a peer was refused before policy was asked. */
export type PeerRejection =
  | 'no-certificate'
  | 'untrusted'
  | 'expired'
  | 'not-yet-valid'
  | 'revoked'
  | 'not-svid'
  | 'wrong-trust-domain'
  | 'unexpected-identity';

/** The trust facts a peer is checked against. */
export interface TrustFacts {
  trustStore: TrustStore;
  revokedSerials: ReadonlySet<string>;
  revokedIds: ReadonlySet<string>;
}

/** A verified peer, or the reason it is not one. */
export type PeerVerdict =
  | {
      ok: true;
      spiffeId: string;
      serialHex: string;
      notAfter: Date;
      chainSerials: string[];
      chainDer: Buffer[];
    }
  | { ok: false; reason: PeerRejection; detail: string; spiffeId?: string };

const SVID_REJECTION: Record<string, PeerRejection> = {
  malformed: 'not-svid',
  expired: 'expired',
  'not-yet-valid': 'not-yet-valid',
  'unknown-issuer': 'untrusted',
  'bad-signature': 'untrusted',
  'not-svid': 'not-svid',
  revoked: 'revoked',
};

/**
 * Checks the peer of a finished handshake: an X.509-SVID chaining to the
 * trust bundle, valid now, not revoked (by serial anywhere in the chain, or
 * by identity), in the agent's trust domain, and, when `expectedId` is given,
 * exactly that identity. Never throws; the verdict says why.
 */
export function verifyPeer(
  socket: TLSSocket,
  facts: TrustFacts,
  options: {
    trustDomain: string;
    now: Date;
    expectedId?: string | undefined;
    chains?: ChainCache;
  },
): PeerVerdict {
  let chainDer = presentedChain(socket);
  if (chainDer.length === 0) {
    return { ok: false, reason: 'no-certificate', detail: 'peer presented no certificate' };
  }
  // A resumed TLS 1.3 session carries the peer's leaf but not its
  // intermediates; the chain verified at the full handshake stands in.
  if (chainDer.length === 1 && options.chains) {
    chainDer = options.chains.get(chainDer[0] as Buffer) ?? chainDer;
  }
  const verdict = verifyChain(chainDer, facts, options);
  if (verdict.ok && chainDer.length > 1) options.chains?.set(chainDer);
  return verdict;
}

/** Most certificates read from a peer's chain. */
const MAX_CHAIN_LENGTH = 8;

/** Longest list of chains a ChainCache keeps. */
const MAX_CACHED_CHAINS = 1024;

/** Verified peer chains by leaf, for sessions resumed without intermediates. */
export class ChainCache {
  private readonly chains = new Map<string, Buffer[]>();

  get(leafDer: Buffer): Buffer[] | undefined {
    return this.chains.get(leafDer.toString('base64'));
  }

  set(chainDer: Buffer[]): void {
    const key = (chainDer[0] as Buffer).toString('base64');
    if (this.chains.size >= MAX_CACHED_CHAINS && !this.chains.has(key)) {
      const oldest = this.chains.keys().next().value;
      if (oldest !== undefined) this.chains.delete(oldest);
    }
    this.chains.set(key, chainDer);
  }
}

/** Checks a peer chain (leaf first, DER) as `verifyPeer` does; used again when trust changes. */
export function verifyChain(
  chainDer: Buffer[],
  facts: TrustFacts,
  options: { trustDomain: string; now: Date; expectedId?: string | undefined },
): PeerVerdict {
  const verdict = verifiedSvid(chainDer, facts, options.now);
  if (!verdict.ok) {
    return {
      ok: false,
      reason: SVID_REJECTION[verdict.reason] ?? 'untrusted',
      detail: verdict.detail,
      ...(verdict.spiffeId ? { spiffeId: verdict.spiffeId } : {}),
    };
  }
  const { spiffeId } = verdict;
  if (parseSpiffeId(spiffeId).trustDomain !== options.trustDomain) {
    return {
      ok: false,
      reason: 'wrong-trust-domain',
      detail: `${spiffeId} is outside trust domain ${options.trustDomain}`,
      spiffeId,
    };
  }
  if (options.expectedId && spiffeId !== options.expectedId) {
    return {
      ok: false,
      reason: 'unexpected-identity',
      detail: `expected ${options.expectedId}, peer is ${spiffeId}`,
      spiffeId,
    };
  }
  return {
    ok: true,
    spiffeId,
    serialHex: verdict.serialHex,
    notAfter: verdict.notAfter,
    chainSerials: verdict.chainSerials,
    chainDer,
  };
}

/** What a chain that verified once keeps: the leaf facts and when the whole chain is valid. */
interface VerifiedChain {
  spiffeId: string;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  chainSerials: string[];
  validFromMs: number;
  validUntilMs: number;
}

/** Chains kept per trust store; a new bundle starts an empty cache. */
const MAX_VERIFIED_CHAINS = 1024;
const verifiedChains = new WeakMap<TrustStore, Map<string, VerifiedChain>>();

/**
 * Cache keys by chain array. A mux session's peer is checked again with the
 * same array before every stream; its key is built once, not per stream.
 */
const chainKeys = new WeakMap<readonly Buffer[], string>();

function chainKey(chainDer: Buffer[]): string {
  let key = chainKeys.get(chainDer);
  if (key === undefined) {
    key = chainDer.map((der) => der.toString('base64')).join('.');
    chainKeys.set(chainDer, key);
  }
  return key;
}

/**
 * verifySvid with a cache of chains that verified against this trust store:
 * signatures and shape are checked once per chain; validity at `now` and
 * revocation (serials of the whole chain, the leaf's identity) every time.
 */
function verifiedSvid(chainDer: Buffer[], facts: TrustFacts, now: Date): SvidVerdict {
  const key = chainKey(chainDer);
  let cache = verifiedChains.get(facts.trustStore);
  const hit = cache?.get(key);
  const nowMs = now.getTime();
  if (hit && nowMs >= hit.validFromMs && nowMs < hit.validUntilMs) {
    const isRevoked =
      facts.revokedIds.has(hit.spiffeId) ||
      hit.chainSerials.some((s) => facts.revokedSerials.has(s));
    if (!isRevoked) {
      return {
        ok: true,
        spiffeId: hit.spiffeId,
        serialHex: hit.serialHex,
        notBefore: hit.notBefore,
        notAfter: hit.notAfter,
        chainSerials: hit.chainSerials,
      };
    }
  }
  const verdict = verifySvid({
    chain: chainDer,
    trust: facts.trustStore,
    now,
    isRevoked: (serial, id) =>
      facts.revokedSerials.has(serial) || (id !== '' && facts.revokedIds.has(id)),
  });
  if (verdict.ok) {
    if (!cache) {
      cache = new Map();
      verifiedChains.set(facts.trustStore, cache);
    }
    if (cache.size >= MAX_VERIFIED_CHAINS) cache.clear();
    // The cached window is where every certificate of the chain is valid.
    const certs = chainDer.map((der) => new X509Certificate(der));
    cache.set(key, {
      ...verdict,
      validFromMs: Math.max(...certs.map((c) => Date.parse(c.validFrom))),
      validUntilMs: Math.min(...certs.map((c) => Date.parse(c.validTo))),
    });
  }
  return verdict;
}

/**
 * The certificates the peer sent, leaf first, without self-signed roots. Read
 * as X509Certificate handles, not `getPeerCertificate(true)`, which turns every
 * certificate into an object of decoded fields and fingerprints on each
 * handshake only for the DER to be used.
 */
function presentedChain(socket: TLSSocket): Buffer[] {
  const chain: Buffer[] = [];
  let cert: X509Certificate | undefined = socket.getPeerX509Certificate();
  while (cert && chain.length < MAX_CHAIN_LENGTH) {
    const issuer: X509Certificate | undefined = cert.issuerCertificate;
    const isSelfSigned =
      issuer === undefined ? cert.checkIssued(cert) : issuer.raw.equals(cert.raw);
    if (isSelfSigned && chain.length > 0) break;
    chain.push(cert.raw);
    if (isSelfSigned) break;
    cert = issuer;
  }
  return chain;
}
