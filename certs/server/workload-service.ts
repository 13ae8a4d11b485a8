import type { ServerWritableStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import type {
  MeshPolicyRecord,
  SignRequest,
  SignResponse,
  TrustUpdate,
  WatchTrustRequest,
} from '../../proto/index.js';
import {
  AuthorityError,
  type CertificateAuthority,
  type Proof,
  type SignedChain,
  type TrustState,
} from '../authority/index.js';
import type { EventFeed } from '../events/index.js';
import type { MeshPolicyVersion } from '../store/index.js';
import { reportEventsRpc } from './event-rpcs.js';
import { onStreamEnd, unaryHandler, writeBounded, type HandlerContext } from './handlers.js';
import { verifiedPeer } from './peer.js';

/**
 * The Workload service: Sign for any caller with a proof of identity, the
 * WatchTrust stream that pushes every new trust state (mesh policy included)
 * to every agent at once, and ReportEvents into the mesh-wide event feed.
 */
export function workloadService(
  authority: CertificateAuthority,
  feed: EventFeed,
  ctx: HandlerContext,
): UntypedServiceImplementation {
  return {
    ...reportEventsRpc(authority, feed, ctx),

    Sign: unaryHandler<SignRequest, SignResponse>(ctx, 'Sign', 'csr.rejected', async (call) => {
      const started = process.hrtime.bigint();
      const proof = proofOf(call.request, call);
      try {
        const signed = await authority.signForWorkload({
          csrPem: call.request.csrPem,
          ttlSeconds: call.request.ttlSeconds,
          proof,
        });
        ctx.metrics.signings.inc({ result: 'issued', via: proof.kind });
        ctx.metrics.signingSeconds.observe(
          { via: proof.kind },
          Number(process.hrtime.bigint() - started) / 1e9,
        );
        return signResponse(signed);
      } catch (err) {
        ctx.metrics.signings.inc({ result: 'rejected', via: proof.kind });
        throw err;
      }
    }),

    WatchTrust: (call: ServerWritableStream<WatchTrustRequest, TrustUpdate>) => {
      const send = (state: TrustState) => {
        writeBounded(ctx, call, trustUpdate(state), 'trust watch');
      };
      const unsubscribe = authority.subscribe(send);
      ctx.metrics.watchStreams.inc();
      ctx.log.debug({ peer: call.getPeer() }, 'trust watch opened');
      onStreamEnd(call, () => {
        unsubscribe();
        ctx.metrics.watchStreams.dec();
        ctx.log.debug({ peer: call.getPeer() }, 'trust watch closed');
      });
      send(authority.trust);
    },
  };
}

/** Builds the wire form of a signed chain; shared with the admin Issue call. */
export function signResponse(signed: SignedChain): SignResponse {
  return {
    spiffeId: signed.spiffeId,
    serial: signed.serialHex,
    certChainPem: signed.chainPem,
    trustBundlePem: signed.trustBundlePem,
    notBeforeUnixMs: signed.notBefore.getTime(),
    notAfterUnixMs: signed.notAfter.getTime(),
    trustVersion: signed.trustVersion,
  };
}

/** Builds the wire form of a trust state. */
export function trustUpdate(state: TrustState): TrustUpdate {
  return {
    version: state.version,
    trustBundlePem: state.trustBundlePem,
    revokedSerials: state.revokedSerials,
    revokedIds: state.revokedIds,
    publishedUnixMs: state.publishedAt.getTime(),
    meshPolicy: meshPolicyRecord(state.meshPolicy),
  };
}

/** Builds the wire form of a mesh policy version; shared with the admin policy calls. */
export function meshPolicyRecord(policy: MeshPolicyVersion): MeshPolicyRecord {
  return {
    version: policy.version,
    documentJson: policy.documentJson,
    setUnixMs: policy.setAt.getTime(),
    setBy: policy.setBy,
    source: policy.source,
  };
}

function proofOf(request: SignRequest, call: Parameters<typeof verifiedPeer>[0]): Proof {
  switch (request.proof) {
    case 'serviceAccountToken':
      return { kind: 'sa-token', token: request.serviceAccountToken ?? '' };
    case 'joinToken':
      return { kind: 'join-token', token: request.joinToken ?? '' };
    case 'renewal':
      return { kind: 'renewal', peer: verifiedPeer(call) };
    default:
      throw new AuthorityError(
        'PROOF_MISSING',
        'Sign needs a proof: a service-account token, a join token, ' +
          'or renewal with the current certificate',
      );
  }
}
