import type { ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import type * as pb from '../../proto/index.js';
import { adminId } from '../spiffe-id.js';
import { AuthorityError, type CertificateAuthority } from '../authority/index.js';
import type { EventFeed } from '../events/index.js';
import { eventQueryRpcs } from './event-rpcs.js';
import { unaryHandler, type HandlerContext } from './handlers.js';
import { verifiedPeer } from './peer.js';
import { meshPolicyRecord, signResponse } from './workload-service.js';

/** Mesh policy versions PolicyHistory returns when the request sets no limit. */
const DEFAULT_POLICY_HISTORY = 20;

/** Most mesh policy versions one PolicyHistory call returns. */
const MAX_POLICY_HISTORY = 1000;

/** What the admin service needs beyond the authority: the CA's I/O-bound operations. */
export interface AdminDeps {
  authority: CertificateAuthority;
  events: EventFeed;
  /** Makes, persists and switches to a new intermediate; returns both serials. */
  rotateIntermediate(
    ttlSeconds: number,
  ): Promise<{ oldSerial: string; newSerial: string; notAfter: Date }>;
  status(): pb.StatusResponse;
}

/**
 * The Admin service: every call first proves the caller holds the admin
 * certificate, then acts through the authority. Refusals are security events.
 */
export function adminService(deps: AdminDeps, ctx: HandlerContext): UntypedServiceImplementation {
  const { authority } = deps;
  const admin = <Req, Res>(rpc: string, handle: (request: Req) => Res | Promise<Res>) =>
    unaryHandler<Req, Res>(ctx, rpc, 'admin.rejected', (call: ServerUnaryCall<Req, Res>) => {
      const adminSerial = authority.checkAdmin(verifiedPeer(call));
      ctx.log.debug({ rpc, serial: adminSerial }, 'admin call');
      return handle(call.request);
    });

  return {
    ...eventQueryRpcs(authority, deps.events, ctx),

    Issue: admin<pb.IssueRequest, pb.SignResponse>('Issue', async (req) =>
      signResponse(await authority.issueForAdmin(req)),
    ),

    Revoke: admin<pb.RevokeRequest, pb.RevokeResponse>('Revoke', (req) => {
      const reason = req.reason.trim() || 'unspecified';
      if (req.target === 'serial' && req.serial) {
        const result = authority.revokeSerial(req.serial, reason);
        return {
          serials: [result.revocation.serialHex],
          spiffeId: result.revocation.spiffeId,
          alreadyRevoked: result.alreadyRevoked,
          trustVersion: result.trustVersion,
        };
      }
      if (req.target === 'spiffeId' && req.spiffeId) {
        const result = authority.revokeIdentity(req.spiffeId, reason);
        return {
          serials: result.serials,
          spiffeId: result.revocation.spiffeId,
          alreadyRevoked: false,
          trustVersion: result.trustVersion,
        };
      }
      throw new AuthorityError('REQUEST_INVALID', 'Revoke needs a serial or a SPIFFE ID');
    }),

    Unrevoke: admin<pb.UnrevokeRequest, pb.UnrevokeResponse>('Unrevoke', (req) =>
      authority.unrevokeIdentity(req.spiffeId),
    ),

    List: admin<pb.ListRequest, pb.ListResponse>('List', (req) => {
      const listed = authority.list({
        revokedOnly: req.revokedOnly,
        includeExpired: req.includeExpired,
        ...(req.spiffeId ? { spiffeId: req.spiffeId } : {}),
        ...(req.limit ? { limit: req.limit } : {}),
      });
      return {
        certificates: listed.certificates.map((c) => ({
          serial: c.serialHex,
          spiffeId: c.spiffeId,
          notBeforeUnixMs: c.notBefore.getTime(),
          notAfterUnixMs: c.notAfter.getTime(),
          issuedUnixMs: c.issuedAt.getTime(),
          issuedVia: c.issuedVia,
          revoked: c.revoked,
        })),
        revokedSerials: listed.revocations.serials.map((r) => ({
          serial: r.serialHex,
          spiffeId: r.spiffeId,
          reason: r.reason,
          revokedUnixMs: r.revokedAt.getTime(),
          notAfterUnixMs: r.notAfter.getTime(),
        })),
        revokedIds: listed.revocations.identities.map((r) => ({
          spiffeId: r.spiffeId,
          reason: r.reason,
          revokedUnixMs: r.revokedAt.getTime(),
        })),
      };
    }),

    CreateJoinToken: admin<pb.CreateJoinTokenRequest, pb.CreateJoinTokenResponse>(
      'CreateJoinToken',
      (req) => {
        const created = authority.createJoinToken(req.spiffeId, req.ttlSeconds || 600);
        return {
          token: created.token,
          spiffeId: created.record.spiffeId,
          expiresUnixMs: created.record.expiresAt.getTime(),
        };
      },
    ),

    RotateIntermediate: admin<pb.RotateIntermediateRequest, pb.RotateIntermediateResponse>(
      'RotateIntermediate',
      async (req) => {
        const rotated = await deps.rotateIntermediate(req.ttlSeconds);
        return {
          oldSerial: rotated.oldSerial,
          newSerial: rotated.newSerial,
          notAfterUnixMs: rotated.notAfter.getTime(),
        };
      },
    ),

    Status: admin<pb.StatusRequest, pb.StatusResponse>('Status', () => deps.status()),

    GetCrl: admin<pb.GetCrlRequest, pb.GetCrlResponse>('GetCrl', () => {
      const crl = authority.crl();
      return { crlPem: crl.pem, crlNumber: crl.crlNumber };
    }),

    // checkAdmin admits the admin identity only, so it is who sets the policy.
    SetPolicy: admin<pb.SetPolicyRequest, pb.MeshPolicyRecord>('SetPolicy', (req) => {
      const setBy = adminId(authority.options.trustDomain);
      return meshPolicyRecord(authority.setMeshPolicy(req.document, req.source, setBy).policy);
    }),

    GetPolicy: admin<pb.GetPolicyRequest, pb.MeshPolicyRecord>('GetPolicy', () =>
      meshPolicyRecord(authority.meshPolicy()),
    ),

    PolicyHistory: admin<pb.PolicyHistoryRequest, pb.PolicyHistoryResponse>(
      'PolicyHistory',
      (req) => {
        const limit = req.limit || DEFAULT_POLICY_HISTORY;
        if (limit > MAX_POLICY_HISTORY) {
          throw new AuthorityError(
            'REQUEST_INVALID',
            `limit: ${limit}: at most ${MAX_POLICY_HISTORY} versions per call`,
          );
        }
        return { policies: authority.policyHistory(limit).map(meshPolicyRecord) };
      },
    ),
  };
}
