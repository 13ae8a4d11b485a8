// The admission webhook over real HTTPS on loopback: it answers real
// AdmissionReview JSON with a JSONPatch that, applied to the pod, gives
// exactly what `palisade inject` gives; it refuses bad annotations with a
// message naming them, passes other kinds, and rejects malformed reviews.
import { request } from 'node:https';
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Registry } from 'prom-client';
import { createLogger } from '../../certs/log.js';
import {
  applyJsonPatch,
  buildMeshSettings,
  createWebhookServer,
  createWebhookTls,
  injectWorkload,
  type JsonPatchOp,
  type K8sObject,
} from '../../agent/k8s/index.js';

const settings = buildMeshSettings({ trustDomain: 'cluster.local' }, '0.1.0');
const tls = createWebhookTls(['localhost']);

interface Reply {
  status: number;
  body: string;
}

async function startWebhook(t: Test): Promise<number> {
  const webhook = createWebhookServer({
    settings,
    tlsCertPem: tls.certPem,
    tlsKeyPem: tls.keyPem,
    registry: new Registry(),
    logger: createLogger({
      component: 'webhook',
      level: 'silent',
      destination: new Writable({ write: (_c, _e, done) => done() }),
    }),
  });
  const address = await webhook.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => webhook.close());
  return address.port;
}

function call(port: number, method: string, path: string, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, ca: tls.caPem, servername: 'localhost' },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function review(object: K8sObject, kind = 'Pod', group = ''): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      kind: { group, version: 'v1', kind },
      resource: { group, version: 'v1', resource: `${kind.toLowerCase()}s` },
      namespace: 'shop',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object,
      dryRun: false,
    },
  });
}

function pod(annotations: Record<string, string> = {}): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'web-7d4b9c-', namespace: 'shop', annotations },
    spec: { serviceAccountName: 'web', containers: [{ name: 'app', image: 'nginx' }] },
  };
}

t.test('patches a pod into exactly what inject produces', async (t) => {
  const port = await startWebhook(t);
  const input = pod({ 'palisade.dev/allow': 'ns/shop/*' });
  const reply = await call(port, 'POST', '/mutate', review(input));
  t.equal(reply.status, 200);
  const answer = JSON.parse(reply.body) as {
    response: { uid: string; allowed: boolean; patchType: string; patch: string };
  };
  t.equal(answer.response.uid, '705ab4f5-6393-11e8-b7cc-42010a800002');
  t.equal(answer.response.allowed, true);
  t.equal(answer.response.patchType, 'JSONPatch');
  const patch = JSON.parse(
    Buffer.from(answer.response.patch, 'base64').toString(),
  ) as JsonPatchOp[];
  const patched = applyJsonPatch(input, patch) as K8sObject;
  const expected = injectWorkload(input, settings);
  t.same(patched, expected.ok ? expected.object : undefined);
  t.doesNotThrow(() => new Pod(patched as never).validate());
});

t.test('answers an injected pod without a patch', async (t) => {
  const port = await startWebhook(t);
  const once = injectWorkload(pod(), settings);
  const reply = await call(port, 'POST', '/mutate', review(once.ok ? once.object : {}));
  const answer = JSON.parse(reply.body) as { response: Record<string, unknown> };
  t.same(answer.response, { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
});

t.test('refuses a pod with bad annotations, naming each', async (t) => {
  const port = await startWebhook(t);
  const bad = pod({ 'palisade.dev/mode': 'lenient', 'palisade.dev/cert-ttl': 'soon' });
  const reply = await call(port, 'POST', '/mutate', review(bad));
  t.equal(reply.status, 200);
  const answer = JSON.parse(reply.body) as {
    response: { allowed: boolean; patch?: string; status: { message: string } };
  };
  t.equal(answer.response.allowed, false);
  t.equal(answer.response.patch, undefined);
  t.match(
    answer.response.status.message,
    /palisade\.dev\/mode="lenient": must be strict or permissive/,
  );
  t.match(answer.response.status.message, /palisade\.dev\/cert-ttl="soon"/);
});

t.test('lets other kinds through unchanged', async (t) => {
  const port = await startWebhook(t);
  const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' } };
  const reply = await call(port, 'POST', '/mutate', review(deployment, 'Deployment', 'apps'));
  const answer = JSON.parse(reply.body) as { response: Record<string, unknown> };
  t.same(answer.response, { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
});

t.test('answers a malformed review with 400', async (t) => {
  const port = await startWebhook(t);
  t.equal((await call(port, 'POST', '/mutate', '{not json')).status, 400);
  t.equal((await call(port, 'POST', '/mutate', '{"apiVersion":"v1"}')).status, 400);
  const noUid = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {},
  });
  t.equal((await call(port, 'POST', '/mutate', noUid)).status, 400);
});

t.test('serves health and counts reviews in its metrics', async (t) => {
  const port = await startWebhook(t);
  t.equal((await call(port, 'GET', '/healthz')).status, 200);
  await call(port, 'POST', '/mutate', review(pod()));
  await call(port, 'POST', '/mutate', 'garbage');
  const metrics = await call(port, 'GET', '/metrics');
  t.match(metrics.body, /palisade_webhook_reviews_total\{result="injected"\} 1/);
  t.match(metrics.body, /palisade_webhook_reviews_total\{result="malformed"\} 1/);
  t.equal((await call(port, 'GET', '/nope')).status, 404);
});
