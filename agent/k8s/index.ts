// Kubernetes: the `palisade.dev/` annotations, the pure pod injector shared
// by `palisade inject` and the admission webhook, the webhook server and the
// install manifests. It must not depend on the agent's composition root or
// on inbound/ and outbound/.
export {
  ANNOTATION_PREFIX,
  ANNOTATION_TABLE,
  DEFAULT_PROXY_RESOURCES,
  INJECTED_ANNOTATION,
  INJECT_LABEL,
  parseAnnotations,
  quantityValue,
  type AnnotationParse,
  type AnnotationSpec,
  type PodAnnotations,
} from './annotations.js';
export { answerAdmissionReview, type ReviewAnswer, type ReviewResult } from './admission-review.js';
export {
  AGENT_CONTAINER,
  AGENT_PORTS,
  BUNDLE_VOLUME,
  INIT_CONTAINER,
  PROXY_UID,
  TOKEN_EXPIRATION_SECONDS,
  TOKEN_VOLUME,
  TRUST_BUNDLE_CONFIGMAP,
  TRUST_BUNDLE_KEY,
  injectPodTemplate,
  injectWorkload,
  type InjectOptions,
  type InjectOutcome,
  type InjectResult,
} from './inject.js';
export { applyJsonPatch, diffToJsonPatch, type JsonPatchOp } from './json-patch.js';
export {
  DEFAULT_MESH_CIDRS,
  IMAGE_REPOSITORY,
  IN_CLUSTER_CA_ADDR,
  SYSTEM_NAMESPACE,
  buildMeshSettings,
  type MeshFlags,
  type MeshPolicyText,
  type MeshSettings,
} from './mesh-settings.js';
export {
  DEFAULT_WEBHOOK_LISTEN,
  MAX_REVIEW_BYTES,
  createWebhookServer,
  type WebhookServer,
  type WebhookServerOptions,
} from './webhook-server.js';
export { TEMPLATE_PATHS, findPodTemplate, type K8sObject } from './workloads.js';
export { injectManifests, type InjectManifestsResult } from './inject-manifests.js';
export { WEBHOOK_TLS_TTL_SECONDS, createWebhookTls, type WebhookTls } from './webhook-tls.js';
export { createInstallMaterials, renderInstall, type InstallMaterials } from './install.js';
