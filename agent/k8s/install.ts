import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CA_FILES, initCaDir } from '../../certs/ca-dir.js';
import { INJECT_LABEL } from './annotations.js';
import { PROXY_UID, TRUST_BUNDLE_CONFIGMAP, TRUST_BUNDLE_KEY } from './inject.js';
import { SYSTEM_NAMESPACE, type MeshSettings } from './mesh-settings.js';
import { createWebhookTls, type WebhookTls } from './webhook-tls.js';
import type { K8sObject } from './workloads.js';

/** The CA files and webhook certificate `install` puts into Secrets and ConfigMaps. */
export interface InstallMaterials {
  /** Files of a fresh CA directory (keys encrypted, with their passphrase), base64. */
  caFiles: Record<string, string>;
  /** The admin credential files (`admin/` of the CA directory), base64. */
  adminFiles: Record<string, string>;
  bundlePem: string;
  webhookTls: WebhookTls;
}

const CA_DIR = '/var/lib/palisade/ca';
/** Built-in ClusterRole that may read the service-account issuer's discovery document and keys. */
const ISSUER_DISCOVERY_ROLE = 'system:service-account-issuer-discovery';
const WEBHOOK_SERVICE = 'palisade-webhook';
const labels = (app: string) => ({
  'app.kubernetes.io/name': app,
  'app.kubernetes.io/part-of': 'palisade',
});

/**
 * Makes a fresh CA (in a temporary directory, removed afterwards) and a
 * webhook certificate for the webhook Service. Side effects: files in the
 * system temporary directory while it runs.
 */
export function createInstallMaterials(trustDomain: string): InstallMaterials {
  const dir = mkdtempSync(join(tmpdir(), 'palisade-install-'));
  try {
    initCaDir({ dir, trustDomain, keyType: 'ecdsa-p256', force: false, passphrase: {} });
    const read = (path: string) => readFileSync(path).toString('base64');
    const caFiles: Record<string, string> = {};
    for (const name of readdirSync(dir).sort()) {
      if (statSync(join(dir, name)).isFile()) caFiles[name] = read(join(dir, name));
    }
    const adminDir = join(dir, CA_FILES.adminDir);
    const adminFiles = Object.fromEntries(
      readdirSync(adminDir)
        .sort()
        .map((name) => [name, read(join(adminDir, name))]),
    );
    const svc = `${WEBHOOK_SERVICE}.${SYSTEM_NAMESPACE}.svc`;
    return {
      caFiles,
      adminFiles,
      bundlePem: readFileSync(join(dir, CA_FILES.bundle), 'utf8'),
      webhookTls: createWebhookTls([svc, `${svc}.cluster.local`]),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Every object a cluster needs, in apply order: the namespace, service
 * accounts, the CA's binding to the built-in issuer-discovery ClusterRole,
 * the CA (Secret, PVC, Deployment, Service), the trust bundle
 * ConfigMap (also in each of `meshNamespaces`, which are labelled for
 * injection), and the webhook (Secret, Deployment, Service, configuration).
 * Pure: the materials come in.
 */
export function renderInstall(
  settings: MeshSettings,
  materials: InstallMaterials,
  meshNamespaces: readonly string[] = [],
): K8sObject[] {
  const meta = (name: string, app: string, namespace = SYSTEM_NAMESPACE) => ({
    name,
    namespace,
    labels: labels(app),
  });
  const bundle = (namespace: string): K8sObject => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta(TRUST_BUNDLE_CONFIGMAP, 'palisade-ca', namespace),
    data: { [TRUST_BUNDLE_KEY]: materials.bundlePem },
  });
  const restricted = {
    runAsUser: PROXY_UID,
    runAsGroup: PROXY_UID,
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
  };
  return [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: SYSTEM_NAMESPACE, labels: { [INJECT_LABEL]: 'disabled' } },
    },
    // No API token is mounted by default: only the CA pod opts in (below),
    // to read the service-account issuer keys; the webhook never calls the API.
    ...['palisade-ca', 'palisade-webhook'].map((name) => ({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: meta(name, name),
      automountServiceAccountToken: false,
    })),
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      // The built-in role allows GET on /.well-known/openid-configuration and
      // /openid/v1/jwks and nothing else: the CA's whole RBAC.
      metadata: { name: 'palisade-ca-issuer-discovery', labels: labels('palisade-ca') },
      roleRef: {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: ISSUER_DISCOVERY_ROLE,
      },
      subjects: [{ kind: 'ServiceAccount', name: 'palisade-ca', namespace: SYSTEM_NAMESPACE }],
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: meta('palisade-ca', 'palisade-ca'),
      type: 'Opaque',
      data: materials.caFiles,
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: meta('palisade-ca-admin', 'palisade-ca'),
      type: 'Opaque',
      data: materials.adminFiles,
    },
    {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: meta('palisade-ca', 'palisade-ca'),
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta('palisade-ca', 'palisade-ca'),
      spec: {
        replicas: 1,
        // One writer for the SQLite store: the old pod stops before the new one starts.
        strategy: { type: 'Recreate' },
        selector: { matchLabels: labels('palisade-ca') },
        template: {
          metadata: { labels: labels('palisade-ca'), annotations: { [INJECT_LABEL]: 'disabled' } },
          spec: {
            serviceAccountName: 'palisade-ca',
            // The CA's own token authenticates its OIDC discovery requests.
            automountServiceAccountToken: true,
            securityContext: { fsGroup: PROXY_UID },
            initContainers: [
              {
                name: 'seed',
                image: settings.image,
                // Copies the Secret into the volume on first start only.
                command: ['sh', '-c', `cp -n /etc/palisade/ca/* ${CA_DIR}/`],
                securityContext: restricted,
                volumeMounts: [
                  { name: 'ca-secret', mountPath: '/etc/palisade/ca', readOnly: true },
                  { name: 'ca-store', mountPath: CA_DIR },
                ],
              },
            ],
            containers: [
              {
                name: 'ca',
                image: settings.image,
                args: [
                  'ca',
                  'serve',
                  '--dir',
                  CA_DIR,
                  '--listen',
                  '0.0.0.0:15112',
                  '--metrics-listen',
                  '0.0.0.0:15113',
                  // Keys and issuer come from the API server's OIDC discovery.
                  '--sa-jwks',
                  'kubernetes',
                ],
                ports: [
                  { name: 'grpc', containerPort: 15112 },
                  { name: 'metrics', containerPort: 15113 },
                ],
                readinessProbe: { httpGet: { path: '/readyz', port: 15113 } },
                livenessProbe: { httpGet: { path: '/healthz', port: 15113 } },
                resources: {
                  requests: { cpu: '100m', memory: '128Mi' },
                  limits: { memory: '512Mi' },
                },
                securityContext: restricted,
                volumeMounts: [{ name: 'ca-store', mountPath: CA_DIR }],
              },
            ],
            volumes: [
              { name: 'ca-secret', secret: { secretName: 'palisade-ca', defaultMode: 0o440 } },
              { name: 'ca-store', persistentVolumeClaim: { claimName: 'palisade-ca' } },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta('palisade-ca', 'palisade-ca'),
      spec: {
        selector: labels('palisade-ca'),
        ports: [{ name: 'grpc', port: 15112, targetPort: 15112 }],
      },
    },
    bundle(SYSTEM_NAMESPACE),
    ...meshNamespaces.flatMap((ns) => [
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns, labels: { [INJECT_LABEL]: 'enabled' } },
      },
      bundle(ns),
    ]),
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: meta('palisade-webhook-tls', WEBHOOK_SERVICE),
      type: 'kubernetes.io/tls',
      data: {
        'tls.crt': Buffer.from(materials.webhookTls.certPem).toString('base64'),
        'tls.key': Buffer.from(materials.webhookTls.keyPem).toString('base64'),
      },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta(WEBHOOK_SERVICE, WEBHOOK_SERVICE),
      spec: {
        replicas: 2,
        selector: { matchLabels: labels(WEBHOOK_SERVICE) },
        template: {
          metadata: {
            labels: labels(WEBHOOK_SERVICE),
            annotations: { [INJECT_LABEL]: 'disabled' },
          },
          spec: {
            serviceAccountName: WEBHOOK_SERVICE,
            containers: [
              {
                name: 'webhook',
                image: settings.image,
                args: [
                  'webhook',
                  '--tls-cert',
                  '/etc/palisade/tls/tls.crt',
                  '--tls-key',
                  '/etc/palisade/tls/tls.key',
                  '--listen',
                  '0.0.0.0:15443',
                  '--trust-domain',
                  settings.trustDomain,
                  '--ca-addr',
                  settings.caAddr,
                  '--image',
                  settings.image,
                  '--mesh-cidrs',
                  settings.meshCidrs.join(','),
                  '--default-mode',
                  settings.defaultMode,
                ],
                ports: [{ name: 'https', containerPort: 15443 }],
                readinessProbe: { httpGet: { path: '/healthz', port: 15443, scheme: 'HTTPS' } },
                resources: {
                  requests: { cpu: '50m', memory: '64Mi' },
                  limits: { memory: '256Mi' },
                },
                securityContext: restricted,
                volumeMounts: [{ name: 'tls', mountPath: '/etc/palisade/tls', readOnly: true }],
              },
            ],
            volumes: [{ name: 'tls', secret: { secretName: 'palisade-webhook-tls' } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(WEBHOOK_SERVICE, WEBHOOK_SERVICE),
      spec: {
        selector: labels(WEBHOOK_SERVICE),
        ports: [{ name: 'https', port: 443, targetPort: 15443 }],
      },
    },
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: 'palisade-injector', labels: labels(WEBHOOK_SERVICE) },
      webhooks: [
        {
          name: 'inject.palisade.dev',
          clientConfig: {
            service: {
              name: WEBHOOK_SERVICE,
              namespace: SYSTEM_NAMESPACE,
              path: '/mutate',
              port: 443,
            },
            caBundle: Buffer.from(materials.webhookTls.caPem).toString('base64'),
          },
          rules: [
            { operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] },
          ],
          namespaceSelector: {
            matchExpressions: [{ key: INJECT_LABEL, operator: 'In', values: ['enabled'] }],
          },
          failurePolicy: 'Fail',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          reinvocationPolicy: 'IfNeeded',
          timeoutSeconds: 10,
        },
      ],
    },
  ];
}
