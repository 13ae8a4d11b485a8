import { judgeRequest, type TokenVerifier } from '../http/index.js';
import type { Decision, EffectivePolicy, HttpSection } from '../policy/index.js';
import type { WhyQuery } from './admin-server.js';

/** What `/identity` shows of the current certificate; undefined before the first one. */
export function identityView(
  credential: { spiffeId: string; serialHex: string; notBefore: Date; notAfter: Date } | undefined,
  trustDomain: string,
  trustVersion: number,
): Record<string, unknown> | undefined {
  if (!credential) return undefined;
  return {
    spiffeId: credential.spiffeId,
    serial: credential.serialHex,
    notBefore: credential.notBefore.toISOString(),
    notAfter: credential.notAfter.toISOString(),
    trustDomain,
    trustVersion,
  };
}

/**
 * What `/policy` shows: the workload's policy, the mesh policy in force
 * (version, canonical document, who set it and when) and the mode enforced,
 * with the mode the workload asked for when the mesh overrides it.
 */
export function policyView(current: EffectivePolicy): Record<string, unknown> {
  const { workload, mesh } = current;
  return {
    source: workload.source,
    version: workload.version,
    mode: current.mode,
    requestedMode: workload.mode,
    modeOverridden: current.isModeOverridden,
    dryRun: workload.dryRun,
    allow: workload.allow ? workload.allow.map((p) => p.text) : null,
    mesh: {
      version: mesh.version,
      document: mesh.policy.document,
      setAt: mesh.setUnixMs ? new Date(mesh.setUnixMs).toISOString() : null,
      setBy: mesh.setBy || null,
    },
  };
}

/**
 * What `/why` answers: the connection decision (layer, rule, mesh version
 * and explanation) and, when a request path is given, the HTTP rules' verdict
 * on that request.
 */
export async function whyAnswer(
  query: WhyQuery,
  connection: Decision,
  workloadVersion: string,
  http: { section: HttpSection | undefined; verifier: TokenVerifier | undefined },
): Promise<Record<string, unknown>> {
  const answer: Record<string, unknown> = {
    peer: query.peer,
    policyVersion: workloadVersion,
    ...connection,
  };
  if (query.path === undefined) return answer;
  if (http.section === undefined) {
    answer['http'] = { explanation: 'the policy has no http section: requests are not judged' };
    return answer;
  }
  const verdict = await judgeRequest(http.section, http.verifier, {
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
}
