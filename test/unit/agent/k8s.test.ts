import t from 'tap';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Pod } from 'kubernetes-models/v1/Pod';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { parseAllDocuments } from 'yaml';
import {
  AGENT_CONTAINER,
  INIT_CONTAINER,
  answerAdmissionReview,
  applyJsonPatch,
  buildMeshSettings,
  createInstallMaterials,
  diffToJsonPatch,
  injectManifests,
  injectWorkload,
  parseAnnotations,
  renderInstall,
  type K8sObject,
} from '../../../agent/k8s/index.js';

const settings = buildMeshSettings({}, '0.1.0');

function pod(annotations: Record<string, string> = {}, extra: K8sObject = {}): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'shop', annotations },
    spec: {
      serviceAccountName: 'web',
      containers: [
        { name: 'app', image: 'nginx', ports: [{ containerPort: 8080 }, { containerPort: 9090 }] },
      ],
      ...extra,
    },
  };
}

function injected(object: K8sObject): K8sObject {
  const result = injectWorkload(object, settings);
  if (!result.ok) throw new Error(result.reason);
  return result.object;
}

type Container = {
  name: string;
  args: string[];
  env: { name: string; value: string }[];
  resources: { requests: Record<string, string>; limits?: Record<string, string> };
};

function containerOf(object: K8sObject, name: string): Container {
  const spec = (object.spec ?? {}) as { initContainers: Container[] };
  const found = spec.initContainers.find((c) => c.name === name);
  if (!found) throw new Error(`no ${name}`);
  return found;
}

function envOf(object: K8sObject): Record<string, string> {
  return Object.fromEntries(containerOf(object, AGENT_CONTAINER).env.map((e) => [e.name, e.value]));
}

t.test('injects a pod that validates against the Kubernetes schema', async (t) => {
  const out = injected(pod());
  t.doesNotThrow(() => new Pod(out as never).validate());
  const spec = out.spec as K8sObject & { initContainers: K8sObject[]; volumes: K8sObject[] };
  t.same(
    spec.initContainers.map((c) => c.name),
    [INIT_CONTAINER, AGENT_CONTAINER],
  );
  const agent = spec.initContainers[1] as K8sObject & { securityContext: K8sObject };
  t.equal(agent.restartPolicy, 'Always');
  t.match(agent.securityContext, {
    runAsUser: 1337,
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
  });
  t.match(agent, { readinessProbe: { httpGet: { path: '/readyz', port: 15120 } } });
  const init = spec.initContainers[0] as K8sObject & { securityContext: K8sObject };
  t.same(init.securityContext.capabilities, { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] });
  t.match(spec.volumes, [
    {
      name: 'palisade-token',
      projected: {
        sources: [{ serviceAccountToken: { audience: 'palisade-ca', expirationSeconds: 3600 } }],
      },
    },
    { name: 'palisade-bundle', configMap: { name: 'palisade-trust-bundle' } },
  ]);
  t.match(out.metadata, {
    annotations: {
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '15120',
      'prometheus.io/path': '/metrics',
      'palisade.dev/injected': '0.1.0',
    },
  });
  t.match(envOf(out), {
    PALISADE_CA_ADDR: 'palisade-ca.palisade-system.svc:15112',
    PALISADE_CA_BUNDLE: '/var/run/palisade/bundle/bundle.pem',
    PALISADE_TOKEN_FILE: '/var/run/palisade/token/token',
    PALISADE_MODE: 'strict',
    PALISADE_LOG_LEVEL: 'info',
    PALISADE_INBOUND_LISTEN: '0.0.0.0:15106',
    PALISADE_OUTBOUND_LISTEN: '127.0.0.1:15101',
    PALISADE_ADMIN_LISTEN: '0.0.0.0:15120',
    PALISADE_MESH_CIDRS: '10.0.0.0/8,172.16.0.0/12,192.168.0.0/16',
  });
  t.notOk('PALISADE_ALLOW' in envOf(out));
});

t.test('does not modify its input', async (t) => {
  const input = pod();
  const copy = structuredClone(input);
  injected(input);
  t.same(input, copy);
});

t.test('injecting twice equals injecting once', async (t) => {
  const once = injected(pod({ 'palisade.dev/allow': 'ns/shop/*' }));
  const again = injectWorkload(once, settings);
  t.same(again, { ok: true, object: once, outcome: 'already-injected' });
});

t.test('keeps the pod init containers after the palisade ones', async (t) => {
  const out = injected(pod({}, { initContainers: [{ name: 'migrate', image: 'busybox' }] }));
  const names = (out.spec as { initContainers: { name: string }[] }).initContainers.map(
    (c) => c.name,
  );
  t.same(names, [INIT_CONTAINER, AGENT_CONTAINER, 'migrate']);
});

t.test('leaves an opted-out pod untouched', async (t) => {
  const input = pod({ 'palisade.dev/inject': 'disabled', 'palisade.dev/mode': 'bogus' });
  t.same(injectWorkload(input, settings), { ok: true, object: input, outcome: 'opted-out' });
});

t.test('a pod annotation enabled wins over a disabled namespace', async (t) => {
  const enabled = injectWorkload(pod({ 'palisade.dev/inject': 'enabled' }), settings, {
    namespaceInjection: 'disabled',
  });
  t.match(enabled, { ok: true, outcome: 'injected' });
  const plain = injectWorkload(pod(), settings, { namespaceInjection: 'disabled' });
  t.match(plain, { ok: true, outcome: 'opted-out' });
});

t.test('skips hostNetwork pods', async (t) => {
  t.match(injectWorkload(pod({}, { hostNetwork: true }), settings), {
    ok: true,
    outcome: 'host-network',
  });
});

t.test('allow renders PALISADE_ALLOW', async (t) => {
  const out = injected(pod({ 'palisade.dev/allow': 'ns/shop/sa/web, ns/ops/*' }));
  t.equal(envOf(out).PALISADE_ALLOW, 'ns/shop/sa/web,ns/ops/*');
});

t.test('mode renders PALISADE_MODE over the mesh default', async (t) => {
  t.equal(envOf(injected(pod({ 'palisade.dev/mode': 'permissive' }))).PALISADE_MODE, 'permissive');
  const permissiveMesh = buildMeshSettings({ defaultMode: 'permissive' }, '0.1.0');
  const result = injectWorkload(pod(), permissiveMesh);
  t.equal(result.ok && envOf(result.object).PALISADE_MODE, 'permissive');
});

t.test('cert-ttl renders PALISADE_CERT_TTL', async (t) => {
  t.equal(envOf(injected(pod({ 'palisade.dev/cert-ttl': '30m' }))).PALISADE_CERT_TTL, '30m');
});

t.test('log-level renders PALISADE_LOG_LEVEL', async (t) => {
  t.equal(envOf(injected(pod({ 'palisade.dev/log-level': 'debug' }))).PALISADE_LOG_LEVEL, 'debug');
});

t.test('jwt and http annotations render the agent http env', async (t) => {
  const rules = '[{"methods":["GET"],"path":"/orders","scopes":["orders.read"]}]';
  const env = envOf(
    injected(
      pod({
        'palisade.dev/jwt-issuer': 'https://issuer.example',
        'palisade.dev/jwt-audience': 'orders,billing',
        'palisade.dev/jwt-jwks': 'https://issuer.example/jwks',
        'palisade.dev/http-rules': ` ${rules} `,
        'palisade.dev/http-ports': '8080',
      }),
    ),
  );
  t.equal(env.PALISADE_JWT_ISSUER, 'https://issuer.example');
  t.equal(env.PALISADE_JWT_AUDIENCE, 'orders,billing');
  t.equal(env.PALISADE_JWT_JWKS, 'https://issuer.example/jwks');
  t.equal(env.PALISADE_HTTP_RULES, rules);
  t.equal(env.PALISADE_HTTP_PORTS, '8080');
  const plain = envOf(injected(pod()));
  t.equal(plain.PALISADE_HTTP_RULES, undefined, 'no http annotations, no http env');
});

t.test('a bad http rule annotation refuses the pod naming it', async (t) => {
  const result = injectWorkload(
    pod({
      'palisade.dev/http-rules': '[{"path":"/orders","scopes":["orders.read"]}]',
      'palisade.dev/http-ports': '8080,web',
    }),
    settings,
  );
  t.equal(result.ok, false);
  const reason = result.ok ? '' : result.reason;
  t.ok(reason.includes('palisade.dev/http-rules='), 'the rule needing a jwt block is named');
  t.ok(reason.includes('palisade.dev/http-ports="8080,web"'), 'the bad port list is named');
  t.notOk(reason.includes('unknown annotation'), 'the keys are known');
  const parsed = parseAnnotations({ 'palisade.dev/http-rules': 'not json' }, 'cluster.local');
  t.equal(parsed.ok ? 0 : parsed.problems.length, 1);
});

t.test('skip annotations become init-iptables flags', async (t) => {
  const out = injected(
    pod({
      'palisade.dev/skip-inbound-ports': '22',
      'palisade.dev/skip-outbound-ports': '5432,6379',
      'palisade.dev/skip-outbound-cidrs': '169.254.169.254/32',
    }),
  );
  t.same(containerOf(out, INIT_CONTAINER).args, [
    'init-iptables',
    '--inbound-port',
    '15106',
    '--outbound-port',
    '15101',
    '--proxy-uid',
    '1337',
    '--skip-inbound-ports',
    '22',
    '--skip-outbound-ports',
    '5432,6379',
    '--skip-outbound-cidrs',
    '169.254.169.254/32',
  ]);
});

t.test('inbound-ports skips the declared ports it does not list', async (t) => {
  const out = injected(pod({ 'palisade.dev/inbound-ports': '8080' }));
  const args = containerOf(out, INIT_CONTAINER).args;
  t.equal(args[args.indexOf('--skip-inbound-ports') + 1], '9090');
});

t.test('proxy resource annotations set the agent resources', async (t) => {
  const out = injected(
    pod({
      'palisade.dev/proxy-cpu-request': '100m',
      'palisade.dev/proxy-cpu-limit': '1',
      'palisade.dev/proxy-memory-request': '128Mi',
      'palisade.dev/proxy-memory-limit': '1Gi',
    }),
  );
  t.same(containerOf(out, AGENT_CONTAINER).resources, {
    requests: { cpu: '100m', memory: '128Mi' },
    limits: { cpu: '1', memory: '1Gi' },
  });
  t.same(containerOf(injected(pod()), AGENT_CONTAINER).resources, {
    requests: { cpu: '50m', memory: '64Mi' },
    limits: { memory: '256Mi' },
  });
});

t.test('reports every bad annotation in one reason', async (t) => {
  const result = injectWorkload(
    pod({
      'palisade.dev/mode': 'lenient',
      'palisade.dev/cert-ttl': 'soon',
      'palisade.dev/skip-outbound-cidrs': '10.0.0.0/33',
      'palisade.dev/proxy-memory-request': 'lots',
      'palisade.dev/alow': 'ns/shop/*',
    }),
    settings,
  );
  t.equal(result.ok, false);
  const reason = result.ok ? '' : result.reason;
  for (const key of [
    'mode="lenient"',
    'cert-ttl="soon"',
    'skip-outbound-cidrs',
    'proxy-memory-request',
    'alow',
  ]) {
    t.ok(reason.includes(`palisade.dev/${key}`), key);
  }
  t.ok(reason.includes('palisade.dev/mode="lenient": must be strict or permissive'));
});

t.test('refuses a request above its limit and an invalid allow pattern', async (t) => {
  const parsed = parseAnnotations(
    {
      'palisade.dev/proxy-cpu-request': '2',
      'palisade.dev/proxy-cpu-limit': '500m',
      'palisade.dev/allow': 'ns/shop/sa/web,a*b',
    },
    'cluster.local',
  );
  t.equal(parsed.ok, false);
  t.equal(parsed.ok ? 0 : parsed.problems.length, 2);
});

t.test('injects the pod template of every workload kind', async (t) => {
  const template = { metadata: { labels: { app: 'web' } }, spec: pod().spec };
  const selector = { matchLabels: { app: 'web' } };
  const deployment = injected({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web' },
    spec: { selector, template },
  });
  t.doesNotThrow(() => new Deployment(deployment as never).validate());
  const cron = injected({
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name: 'nightly' },
    spec: {
      schedule: '0 3 * * *',
      jobTemplate: {
        spec: { template: { spec: { ...(pod().spec as K8sObject), restartPolicy: 'Never' } } },
      },
    },
  });
  t.doesNotThrow(() => new CronJob(cron as never).validate());
  t.match(cron, {
    spec: {
      jobTemplate: { spec: { template: { spec: { initContainers: [{ name: INIT_CONTAINER }] } } } },
    },
  });
  for (const kind of ['StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']) {
    const out = injected({ kind, metadata: { name: 'x' }, spec: { selector, template } });
    t.match(
      out,
      { spec: { template: { metadata: { annotations: { 'palisade.dev/injected': '0.1.0' } } } } },
      kind,
    );
  }
  const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' } };
  t.same(injectWorkload(service, settings), {
    ok: true,
    object: service,
    outcome: 'not-a-workload',
  });
});

t.test('injectManifests rewrites workloads and keeps other documents as written', async (t) => {
  const yaml = [
    '# the service\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n    - port: 80\n',
    'apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n    - name: app\n      image: nginx\n',
  ].join('---\n');
  const result = injectManifests(yaml, settings);
  t.ok(result.yaml.includes('# the service'));
  const docs = parseAllDocuments(result.yaml);
  t.equal(Array.isArray(docs) && docs.length, 2);
  const podOut = Array.isArray(docs) ? (docs[1]?.toJS() as K8sObject) : {};
  t.doesNotThrow(() => new Pod(podOut as never).validate());
  t.same(result.summary, [{ name: 'pod/web', outcome: 'injected' }]);
  t.equal(injectManifests(result.yaml, settings).yaml, result.yaml, 'second run changes nothing');
});

t.test('injectManifests refuses bad annotations with ANNOTATION_INVALID', async (t) => {
  const yaml =
    'apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations:\n    palisade.dev/mode: lenient\nspec:\n  containers:\n    - name: app\n      image: nginx\n';
  t.throws(() => injectManifests(yaml, settings), { code: 'ANNOTATION_INVALID' });
  t.throws(() => injectManifests('a: [', settings), { code: 'YAML_INVALID' });
});

t.test('a JSON patch from the diff turns the input into the output', async (t) => {
  const before = pod({ 'a/b~c': 'x' });
  const after = injected(before);
  const patch = diffToJsonPatch(before, after);
  t.same(applyJsonPatch(before, patch), after);
  t.same(applyJsonPatch({ a: [1, 2] }, [{ op: 'add', path: '/a/-', value: 3 }]), { a: [1, 2, 3] });
  t.throws(() => applyJsonPatch({}, [{ op: 'remove', path: '/x/y' }]), {
    code: 'JSON_PATCH_INVALID',
  });
});

t.test('mesh settings refuse bad flags all at once', async (t) => {
  t.throws(
    () =>
      buildMeshSettings({ meshCidrs: '10.0.0.0/99', defaultMode: 'loose', caAddr: 'x' }, '0.1.0'),
    {
      code: 'CONFIG_INVALID',
    },
  );
});

t.test('install renders objects that all validate, with the caBundle filled in', async (t) => {
  const models = await import('kubernetes-models');
  const objects = renderInstall(settings, createInstallMaterials('cluster.local'), ['shop']);
  for (const object of objects) {
    const [group, version] = String(object.apiVersion).includes('/')
      ? String(object.apiVersion).split('/')
      : ['', String(object.apiVersion)];
    const ctor = modelFor(
      models as unknown as Record<string, unknown>,
      group ?? '',
      version ?? '',
      String(object.kind),
    );
    t.doesNotThrow(() => new ctor(object).validate(), `${String(object.kind)} validates`);
  }
  const kinds = objects.map((o) => o.kind);
  for (const kind of [
    'Namespace',
    'ServiceAccount',
    'Secret',
    'PersistentVolumeClaim',
    'Deployment',
    'Service',
    'ConfigMap',
    'MutatingWebhookConfiguration',
  ]) {
    t.ok(kinds.includes(kind), kind);
  }
  const hook = objects.find((o) => o.kind === 'MutatingWebhookConfiguration') as {
    webhooks: { clientConfig: { caBundle: string }; failurePolicy: string; sideEffects: string }[];
  };
  t.match(
    Buffer.from(hook.webhooks[0]?.clientConfig.caBundle ?? '', 'base64').toString(),
    /BEGIN CERTIFICATE/,
  );
  t.match(hook.webhooks[0], {
    failurePolicy: 'Fail',
    sideEffects: 'None',
    admissionReviewVersions: ['v1'],
  });
  const secret = objects.find((o) => o.kind === 'Secret') as { data: Record<string, string> };
  t.ok(secret.data['intermediate.key.pem'] && secret.data.passphrase && secret.data['bundle.pem']);
});

function modelFor(
  models: Record<string, unknown>,
  group: string,
  version: string,
  kind: string,
): new (data: unknown) => { validate(): void } {
  // kubernetes-models names groups in camel case: admissionregistration.k8s.io -> admissionregistrationK8sIo.
  const key = group.replace(/\.([a-z])/g, (_m, c: string) => c.toUpperCase());
  const byVersion = (group === '' ? { v1: models.v1 } : models[key]) as
    Record<string, Record<string, unknown>> | undefined;
  const ctor = byVersion?.[version]?.[kind];
  if (typeof ctor !== 'function') throw new Error(`no model for ${group}/${version} ${kind}`);
  return ctor as never;
}

t.test('install has the CA discover issuer keys with only the issuer-discovery role', async (t) => {
  const objects = renderInstall(settings, createInstallMaterials('cluster.local'));
  t.notOk(
    objects.some((o) => (o.metadata as { name?: string } | undefined)?.name === 'palisade-sa-jwks'),
    'no JWKS ConfigMap to fill by hand',
  );

  const ca = objects.find(
    (o) => o.kind === 'Deployment' && (o.metadata as { name: string }).name === 'palisade-ca',
  ) as {
    spec: {
      template: {
        spec: { automountServiceAccountToken?: boolean; containers: { args: string[] }[] };
      };
    };
  };
  const podSpec = ca.spec.template.spec;
  const args = podSpec.containers[0]?.args ?? [];
  t.equal(args[args.indexOf('--sa-jwks') + 1], 'kubernetes');
  t.notOk(args.includes('--sa-issuer'), 'the issuer comes from discovery');
  t.equal(podSpec.automountServiceAccountToken, true);

  const bindings = objects.filter((o) => o.kind === 'ClusterRoleBinding');
  t.match(bindings, [
    {
      roleRef: { kind: 'ClusterRole', name: 'system:service-account-issuer-discovery' },
      subjects: [{ kind: 'ServiceAccount', name: 'palisade-ca', namespace: 'palisade-system' }],
    },
  ]);
  t.equal(bindings.length, 1);
  t.notOk(
    objects.some((o) => o.kind === 'Role' || o.kind === 'ClusterRole' || o.kind === 'RoleBinding'),
  );
});

t.test('mesh policy at injection', async (t) => {
  const STRICT_MESH =
    'mode: strict\ndefault: same-namespace\ndeny:\n  - { from: "*", to: "ns/payments/*", except: ["ns/payments/*"] }\nmaxCertTtl: 24h\n';
  const strict = buildMeshSettings({}, '0.1.0', { text: STRICT_MESH, source: 'mesh.yaml' });

  t.test('reads the document with the CA parser', async (t) => {
    t.match(strict.meshPolicy, {
      source: 'mesh.yaml',
      policy: { mode: 'strict', default: 'same-namespace', maxCertTtlSeconds: 86400 },
    });
    t.equal(settings.meshPolicy, undefined, 'without --mesh-policy nothing is checked');
  });

  t.test('refuses a permissive pod under a strict mesh, naming annotation and rule', async (t) => {
    const result = injectWorkload(pod({ 'palisade.dev/mode': 'permissive' }), strict);
    t.notOk(result.ok);
    t.match(result, {
      reason:
        'palisade.dev/mode="permissive": the mesh policy (mesh.yaml) requires strict (mode: strict)',
    });
    const yaml =
      'apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations:\n    palisade.dev/mode: permissive\nspec:\n  containers:\n    - name: app\n      image: nginx\n';
    t.throws(() => injectManifests(yaml, strict), {
      code: 'ANNOTATION_INVALID',
      message: /pod\/web: palisade\.dev\/mode="permissive".*mode: strict/,
    });
    t.ok(injectManifests(yaml, settings).yaml.includes(AGENT_CONTAINER), 'no flag, no check');
  });

  t.test('the webhook refuses the same pod with a message naming the rule', async (t) => {
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: 'u1',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        object: pod({ 'palisade.dev/mode': 'permissive' }),
      },
    };
    t.match(answerAdmissionReview(review, strict), {
      ok: true,
      result: 'refused',
      review: {
        response: {
          allowed: false,
          status: { code: 400, message: /palisade\.dev\/mode="permissive".*mode: strict/ },
        },
      },
    });
    t.match(answerAdmissionReview(review, settings), { ok: true, result: 'injected' });
  });

  t.test('injects strict and unannotated pods under a strict mesh', async (t) => {
    for (const annotations of [{}, { 'palisade.dev/mode': 'strict' }] as Record<string, string>[]) {
      const result = injectWorkload(pod(annotations), strict);
      t.match(result, { ok: true, outcome: 'injected' });
    }
  });

  t.test('a permissive mesh lets a pod choose permissive', async (t) => {
    const lax = buildMeshSettings({}, '0.1.0', { text: 'mode: permissive\n', source: 'm' });
    t.match(injectWorkload(pod({ 'palisade.dev/mode': 'permissive' }), lax), { ok: true });
  });

  t.test('refuses a bad document and a permissive default under a strict mesh', async (t) => {
    t.throws(
      () =>
        buildMeshSettings({}, '0.1.0', {
          text: 'mode: lax\ndeny: [{ from: "ns/sho*", to: "*" }]\n',
          source: 'bad.yaml',
        }),
      {
        code: 'CONFIG_INVALID',
        message: /--mesh-policy="bad.yaml": mode.*--mesh-policy="bad.yaml": deny\[0\]\.from/,
      },
    );
    t.throws(
      () =>
        buildMeshSettings({ defaultMode: 'permissive' }, '0.1.0', {
          text: STRICT_MESH,
          source: 'mesh.yaml',
        }),
      { code: 'CONFIG_INVALID', message: /--default-mode="permissive"/ },
    );
  });
});
