import { SA_TOKEN_AUDIENCE } from '../../certs/authn/index.js';
import { AGENT_NODE_FLAGS } from '../config/agent-config.js';
import { ENV_BY_FLAG } from '../config/env-table.js';
import {
  DEFAULT_PROXY_RESOURCES,
  INJECTED_ANNOTATION,
  parseAnnotations,
  type PodAnnotations,
} from './annotations.js';
import type { MeshSettings } from './mesh-settings.js';
import { findPodTemplate, isObject, withPodTemplate, type K8sObject } from './workloads.js';

/** Names of what the injector adds, so a second run can recognise them. */
export const AGENT_CONTAINER = 'palisade-agent';
export const INIT_CONTAINER = 'palisade-init';
export const TOKEN_VOLUME = 'palisade-token';
export const BUNDLE_VOLUME = 'palisade-bundle';

/** ConfigMap holding the trust bundle, in every injected namespace, and its key. */
export const TRUST_BUNDLE_CONFIGMAP = 'palisade-trust-bundle';
export const TRUST_BUNDLE_KEY = 'bundle.pem';

/** Agent ports inside an injected pod (DESIGN.md). */
export const AGENT_PORTS = { inbound: 15106, outbound: 15101, admin: 15120 } as const;

/** UID the agent runs as; the init step exempts its traffic from redirection. */
export const PROXY_UID = 1337;

/** Lifetime of the projected service-account token the agent shows the CA. */
export const TOKEN_EXPIRATION_SECONDS = 3600;

const TOKEN_DIR = '/var/run/palisade/token';
const BUNDLE_DIR = '/var/run/palisade/bundle';

/** Why a workload came back unchanged, or that it was injected. */
export type InjectOutcome =
  'injected' | 'already-injected' | 'opted-out' | 'host-network' | 'not-a-workload';

/** The injector's answer: the (possibly unchanged) object, or why its annotations are refused. */
export type InjectResult =
  { ok: true; object: K8sObject; outcome: InjectOutcome } | { ok: false; reason: string };

/** What the caller knows beyond the object itself. */
export interface InjectOptions {
  /**
   * The namespace label `palisade.dev/inject`: the webhook is only called
   * for `enabled` namespaces; `palisade inject` injects unless told otherwise.
   */
  namespaceInjection?: 'enabled' | 'disabled';
}

/**
 * Injects the init step and the agent into a Pod or the pod template of a
 * Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob. Pure: the
 * input is not modified. Other kinds, injected, opted-out and hostNetwork
 * pods come back unchanged; bad `palisade.dev/` annotations come back as one
 * reason naming every bad key and value.
 */
export function injectWorkload(
  object: K8sObject,
  settings: MeshSettings,
  options: InjectOptions = {},
): InjectResult {
  const template = findPodTemplate(object);
  if (!template) return { ok: true, object, outcome: 'not-a-workload' };
  const result = injectPodTemplate(template, settings, options);
  if (!result.ok || result.outcome !== 'injected') {
    return result.ok ? { ok: true, object, outcome: result.outcome } : result;
  }
  return { ok: true, object: withPodTemplate(object, result.object), outcome: 'injected' };
}

/** {@link injectWorkload} on a pod template or Pod (`metadata` and `spec`). */
export function injectPodTemplate(
  template: K8sObject,
  settings: MeshSettings,
  options: InjectOptions = {},
): InjectResult {
  const metadata = isObject(template.metadata) ? template.metadata : {};
  const annotations = stringMap(metadata.annotations);
  const spec = isObject(template.spec) ? template.spec : {};
  if (annotations[INJECTED_ANNOTATION] !== undefined || hasContainer(spec, AGENT_CONTAINER)) {
    return { ok: true, object: template, outcome: 'already-injected' };
  }

  const parsed = parseAnnotations(annotations, settings.trustDomain);
  const wanted = annotations['palisade.dev/inject'] ?? options.namespaceInjection ?? 'enabled';
  if (wanted === 'disabled') return { ok: true, object: template, outcome: 'opted-out' };
  if (!parsed.ok) return { ok: false, reason: parsed.reason };
  const widening = meshWidening(parsed.value, settings);
  if (widening !== undefined) return { ok: false, reason: widening };
  // The agent and its iptables rules would act on the node's network.
  if (spec.hostNetwork === true) return { ok: true, object: template, outcome: 'host-network' };

  const pod = structuredClone(template);
  const podMeta = (pod.metadata = isObject(pod.metadata) ? pod.metadata : {});
  podMeta.annotations = {
    ...stringMap(podMeta.annotations),
    'prometheus.io/scrape': 'true',
    'prometheus.io/port': String(AGENT_PORTS.admin),
    'prometheus.io/path': '/metrics',
    [INJECTED_ANNOTATION]: settings.version,
  };
  const podSpec = (pod.spec = isObject(pod.spec) ? pod.spec : {});
  const a = parsed.value;
  podSpec.initContainers = [
    initContainer(settings, a, declaredPorts(podSpec)),
    agentContainer(settings, a),
    ...arrayOf(podSpec.initContainers),
  ];
  podSpec.volumes = [...arrayOf(podSpec.volumes), ...volumes()];
  return { ok: true, object: pod, outcome: 'injected' };
}

/**
 * Names the annotation that would widen the mesh policy, if one does: a
 * workload may narrow the mesh policy, never widen it, so a pod asking for
 * `permissive` under a strict mesh is refused here rather than overridden,
 * with a warning, by its agent at run time.
 */
function meshWidening(a: PodAnnotations, settings: MeshSettings): string | undefined {
  const mesh = settings.meshPolicy;
  if (mesh === undefined || mesh.policy.mode !== 'strict' || a.mode !== 'permissive') {
    return undefined;
  }
  return `palisade.dev/mode="permissive": the mesh policy (${mesh.source}) requires strict (mode: strict)`;
}

function initContainer(
  settings: MeshSettings,
  a: PodAnnotations,
  declared: readonly number[],
): K8sObject {
  // inbound-ports narrows interception to the listed ports; the init step
  // only knows skip lists, so every other declared container port is skipped.
  const skipInbound = new Set(a.skipInboundPorts);
  if (a.inboundPorts) {
    for (const port of declared) if (!a.inboundPorts.includes(port)) skipInbound.add(port);
  }
  const args = [
    'init-iptables',
    '--inbound-port',
    String(AGENT_PORTS.inbound),
    '--outbound-port',
    String(AGENT_PORTS.outbound),
    '--proxy-uid',
    String(PROXY_UID),
  ];
  const list = (flag: string, values: readonly (string | number)[]) => {
    if (values.length > 0) args.push(flag, values.join(','));
  };
  list(
    '--skip-inbound-ports',
    [...skipInbound].sort((x, y) => x - y),
  );
  list('--skip-outbound-ports', a.skipOutboundPorts);
  list('--skip-outbound-cidrs', a.skipOutboundCidrs);
  return {
    name: INIT_CONTAINER,
    image: settings.image,
    imagePullPolicy: 'IfNotPresent',
    args,
    resources: {
      requests: { cpu: '10m', memory: '32Mi' },
      limits: { cpu: '100m', memory: '64Mi' },
    },
    // Root with only the capabilities iptables needs; iptables writes its
    // lock under /run, so the root filesystem stays writable for this step.
    securityContext: {
      runAsUser: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  };
}

function agentContainer(settings: MeshSettings, a: PodAnnotations): K8sObject {
  const env: [string, string | undefined][] = [
    [ENV_BY_FLAG.caAddr, settings.caAddr],
    [ENV_BY_FLAG.caBundle, `${BUNDLE_DIR}/${TRUST_BUNDLE_KEY}`],
    [ENV_BY_FLAG.tokenFile, `${TOKEN_DIR}/token`],
    [ENV_BY_FLAG.trustDomain, settings.trustDomain],
    [ENV_BY_FLAG.meshCidrs, settings.meshCidrs.join(',')],
    [ENV_BY_FLAG.mode, a.mode ?? settings.defaultMode],
    [ENV_BY_FLAG.allow, a.allow.length > 0 ? a.allow.join(',') : undefined],
    [ENV_BY_FLAG.certTtl, a.certTtl],
    [ENV_BY_FLAG.jwtIssuer, a.http?.issuer],
    [ENV_BY_FLAG.jwtAudience, a.http?.audience],
    [ENV_BY_FLAG.jwtJwks, a.http?.jwks],
    [ENV_BY_FLAG.httpRules, a.http?.rules],
    [ENV_BY_FLAG.httpPorts, a.http?.ports],
    [ENV_BY_FLAG.logLevel, a.logLevel ?? 'info'],
    [ENV_BY_FLAG.inboundListen, `0.0.0.0:${AGENT_PORTS.inbound}`],
    [ENV_BY_FLAG.outboundListen, `127.0.0.1:${AGENT_PORTS.outbound}`],
    // The kubelet probes the admin port from outside the pod.
    [ENV_BY_FLAG.adminListen, `0.0.0.0:${AGENT_PORTS.admin}`],
    ['NODE_OPTIONS', AGENT_NODE_FLAGS.join(' ')],
  ];
  const requests = compact({
    cpu: a.proxy.cpuRequest ?? DEFAULT_PROXY_RESOURCES.cpuRequest,
    memory: a.proxy.memoryRequest ?? DEFAULT_PROXY_RESOURCES.memoryRequest,
  });
  const limits = compact({
    cpu: a.proxy.cpuLimit ?? DEFAULT_PROXY_RESOURCES.cpuLimit,
    memory: a.proxy.memoryLimit ?? DEFAULT_PROXY_RESOURCES.memoryLimit,
  });
  const readyz = { httpGet: { path: '/readyz', port: AGENT_PORTS.admin } };
  return {
    name: AGENT_CONTAINER,
    image: settings.image,
    imagePullPolicy: 'IfNotPresent',
    args: ['agent'],
    // A native sidecar: started before the application, stopped after it,
    // and not counted when a Job decides it has finished.
    restartPolicy: 'Always',
    env: env
      .filter((entry): entry is [string, string] => entry[1] !== undefined)
      .map(([name, value]) => ({ name, value })),
    ports: [
      { name: 'palisade-in', containerPort: AGENT_PORTS.inbound, protocol: 'TCP' },
      { name: 'palisade-admin', containerPort: AGENT_PORTS.admin, protocol: 'TCP' },
    ],
    // The application starts only once the agent holds a certificate.
    startupProbe: { ...readyz, periodSeconds: 1, failureThreshold: 120 },
    readinessProbe: { ...readyz, periodSeconds: 5 },
    resources: Object.keys(limits).length > 0 ? { requests, limits } : { requests },
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [
      { name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true },
      { name: BUNDLE_VOLUME, mountPath: BUNDLE_DIR, readOnly: true },
    ],
  };
}

function volumes(): K8sObject[] {
  return [
    {
      name: TOKEN_VOLUME,
      projected: {
        sources: [
          {
            serviceAccountToken: {
              audience: SA_TOKEN_AUDIENCE,
              expirationSeconds: TOKEN_EXPIRATION_SECONDS,
              path: 'token',
            },
          },
        ],
      },
    },
    {
      name: BUNDLE_VOLUME,
      configMap: {
        name: TRUST_BUNDLE_CONFIGMAP,
        items: [{ key: TRUST_BUNDLE_KEY, path: TRUST_BUNDLE_KEY }],
      },
    },
  ];
}

function declaredPorts(spec: K8sObject): number[] {
  return arrayOf(spec.containers).flatMap((c) =>
    arrayOf(isObject(c) ? c.ports : undefined)
      .map((p) => (isObject(p) ? p.containerPort : undefined))
      .filter((p): p is number => typeof p === 'number'),
  );
}

function hasContainer(spec: K8sObject, name: string): boolean {
  return [...arrayOf(spec.initContainers), ...arrayOf(spec.containers)].some(
    (c) => isObject(c) && c.name === name,
  );
}

function stringMap(value: unknown): Record<string, string> {
  if (!isObject(value)) return {};
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, String(v)]));
}

function arrayOf(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function compact(record: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(record).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}
