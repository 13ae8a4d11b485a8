import { diffToJsonPatch } from './json-patch.js';
import { injectWorkload, type InjectOutcome } from './inject.js';
import type { MeshSettings } from './mesh-settings.js';
import { isObject } from './workloads.js';

/** How a review ended, as counted by the webhook's metrics. */
export type ReviewResult = InjectOutcome | 'refused' | 'not-a-pod';

/** The webhook's answer: an AdmissionReview to send back, or a 400 for a malformed review. */
export type ReviewAnswer =
  | { ok: true; review: Record<string, unknown>; result: ReviewResult }
  | { ok: false; reason: string };

/**
 * Answers an `admission.k8s.io/v1` AdmissionReview: a Pod is injected and
 * the change returned as a base64 JSONPatch; a Pod with bad annotations is
 * refused with a message naming each; any other object is allowed unchanged.
 * The webhook is only called for namespaces labelled `palisade.dev/inject=enabled`.
 */
export function answerAdmissionReview(body: unknown, settings: MeshSettings): ReviewAnswer {
  if (!isObject(body) || body.apiVersion !== 'admission.k8s.io/v1') {
    return { ok: false, reason: 'expected an admission.k8s.io/v1 AdmissionReview' };
  }
  if (body.kind !== 'AdmissionReview' || !isObject(body.request)) {
    return { ok: false, reason: 'expected an AdmissionReview with a request' };
  }
  const { uid, kind, object } = body.request;
  if (typeof uid !== 'string' || uid === '') return { ok: false, reason: 'request.uid is missing' };
  const reply = (response: Record<string, unknown>, result: ReviewResult): ReviewAnswer => ({
    ok: true,
    result,
    review: {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid, ...response },
    },
  });
  const isPod = isObject(kind) && kind.kind === 'Pod' && (kind.group ?? '') === '';
  if (!isPod || !isObject(object)) return reply({ allowed: true }, 'not-a-pod');

  // The object of a CREATE may lack apiVersion/kind; the injector needs kind.
  const pod = { ...object, apiVersion: 'v1', kind: 'Pod' };
  const result = injectWorkload(pod, settings, { namespaceInjection: 'enabled' });
  if (!result.ok) {
    return reply(
      { allowed: false, status: { code: 400, reason: 'Invalid', message: result.reason } },
      'refused',
    );
  }
  if (result.outcome !== 'injected') return reply({ allowed: true }, result.outcome);
  const patch = diffToJsonPatch(pod, result.object);
  return reply(
    {
      allowed: true,
      patchType: 'JSONPatch',
      patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
    },
    'injected',
  );
}
