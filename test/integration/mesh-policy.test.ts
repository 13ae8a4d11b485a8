// End-to-end guarantees of the mesh policy and the security-event feed, with
// a real CA and several agents on loopback: a mesh deny overrides a workload
// allow and cuts a live connection within a second; a workload cannot widen
// the mesh policy; a bad document changes nothing; a denial reaches the CA's
// feed (API and `palisade ca events --follow`) within a second; and with the
// CA stopped the agents keep enforcing the last policy while the events
// queued meanwhile arrive, or are counted as dropped, once it is back.

import t from 'tap';
import { runCli } from '../../agent/cli/program.js';
import type { StoredEventMessage } from '../../proto/index.js';
import { TEST_PASSPHRASE, makeCaDir, startTestCa, type TestCa } from '../helpers/ca-fixture.js';
import {
  closedWithin,
  dial,
  eventually,
  ping,
  roundTrip,
  startEchoApp,
  startMeshAgent,
  type MeshAgent,
} from '../helpers/mesh-fixture.js';

const caDir = makeCaDir('mesh.test');
t.teardown(() => caDir.remove());
let env: TestCa = await startTestCa(caDir.dir);
t.teardown(() => env.ca.stop());
const admin = () => env.admin();

const PAY_ID = 'spiffe://mesh.test/ns/pay/sa/api';
const WEB_ID = 'spiffe://mesh.test/ns/shop/sa/web';

/** Sets the mesh policy and returns its version. */
async function setPolicy(document: string): Promise<number> {
  const client = admin();
  try {
    return (await client.setPolicy({ document, source: 'mesh-policy.test' })).version;
  } finally {
    client.close();
  }
}

/** Events stored by the CA so far, oldest first. */
async function storedEvents(): Promise<StoredEventMessage[]> {
  const client = admin();
  try {
    return (await client.listEvents({ limit: 1000 })).events;
  } finally {
    client.close();
  }
}

const app = await startEchoApp(t);
const pay = await startMeshAgent(t, env, caDir.dir, {
  ns: 'pay',
  sa: 'api',
  appPort: app.port,
  flags: { allow: ['ns/shop/*'] },
  forwardEvents: true,
});
const web = await startMeshAgent(t, env, caDir.dir, {
  ns: 'shop',
  sa: 'web',
  appPort: app.port,
  flags: { upstream: [`0=127.0.0.1:${pay.inboundPort}@${PAY_ID}`] },
  forwardEvents: true,
});
const meshVersionOf = async (agent: MeshAgent) =>
  ((await (await agent.admin('/policy')).json()) as { mesh: { version: number } }).mesh.version;

t.test('a mesh deny overrides a workload allow and cuts a live connection', async (t) => {
  const live = await dial(web.upstreamPort());
  t.teardown(() => live.destroy());
  t.equal(await ping(live), 'ping', 'the allow list admits web');

  const sentAt = performance.now();
  const version = await setPolicy(`deny:\n  - { from: "ns/shop/*", to: "ns/pay/*" }\n`);
  const closedMs = await closedWithin(live, () => sentAt);
  t.ok(closedMs < 1000, `closed ${Math.round(closedMs)} ms after the policy was set`);

  t.match(pay.captured.events('policy.mesh_applied'), [{ version, closed: 1 }]);
  t.ok(pay.captured.lines.some((l) => l['reason'] === 'mesh-policy-denied'));
  t.match(
    pay.captured.lines.find((l) => l['reason'] === 'mesh-policy-denied'),
    { event: 'policy.denied', msg: 'live connection closed', peer_id: WEB_ID },
    'the cut connection is logged as a policy denial',
  );
  t.equal((await roundTrip(web.upstreamPort(), Buffer.from('hi'))).length, 0, 'new ones refused');
  t.match(
    pay.captured.events('policy.denied').findLast((l) => l['reason'] === 'mesh-deny'),
    {
      peer_id: WEB_ID,
      layer: 'mesh',
      rule: 'deny[0] {from: "ns/shop/*", to: "ns/pay/*"}',
      mesh_version: version,
    },
    'the refusal names the deciding rule, layer and mesh version',
  );

  const why = (await (await pay.admin(`/why?peer=${encodeURIComponent(WEB_ID)}`)).json()) as {
    allowed: boolean;
    layer: string;
    rule: string;
    meshVersion: number;
  };
  t.match(why, {
    allowed: false,
    layer: 'mesh',
    rule: 'deny[0] {from: "ns/shop/*", to: "ns/pay/*"}',
    meshVersion: version,
  });
  t.equal(await meshVersionOf(pay), version);
  t.match(await pay.metrics(), new RegExp(`palisade_agent_mesh_policy_version ${version}\\b`));
  t.match(
    await pay.metrics(),
    /palisade_agent_policy_layer_denials_total\{layer="mesh",dry_run="false"\} [1-9]/,
  );
});

t.test('a denial by one agent reaches the CA feed within a second', async (t) => {
  let out = '';
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const cli = runCli(
    ['ca', 'events', '--follow', '--json', '--dir', caDir.dir, '--ca-addr', env.ca.address],
    {
      env: { PALISADE_CA_PASSPHRASE: TEST_PASSPHRASE },
      io: { out: (s) => void (out += s), err: () => undefined },
      version: 'test',
      untilStopped: () => stopped,
    },
  );
  t.teardown(() => stop());
  const client = admin();
  const seen: StoredEventMessage[] = [];
  const cancel = client.watchEvents(
    { sinceUnixMs: Date.now() },
    (e) => seen.push(e),
    () => undefined,
  );
  t.teardown(() => {
    cancel();
    client.close();
  });
  const isDenial = (e: StoredEventMessage | undefined) =>
    e?.reporterId === PAY_ID && e.event?.kind === 'policy.denied' && e.event.peerId === WEB_ID;
  // A first denial shows both followers streaming before the one that is timed.
  await roundTrip(web.upstreamPort(), Buffer.from('hi'));
  t.ok(
    await eventually(() => seen.some(isDenial) && out.includes('"policy.denied"'), 10_000),
    'both followers are streaming',
  );
  seen.length = 0;
  out = '';

  const deniedAt = performance.now();
  await roundTrip(web.upstreamPort(), Buffer.from('hi'));
  t.ok(await eventually(() => seen.some(isDenial), 1000), 'WatchEvents shows the denial');
  t.ok(performance.now() - deniedAt < 1000, 'within a second');
  t.ok(
    await eventually(() => out.includes('"policy.denied"') && out.includes(WEB_ID), 1000),
    'ca events --follow prints it',
  );
  const listed = await storedEvents();
  t.ok(listed.some(isDenial), 'ListEvents has it');
  t.ok(
    listed.some((e) => e.event?.kind === 'policy.mesh_applied'),
    'policy changes are reported',
  );
  stop();
  t.equal(await cli, 0);
});

t.test('a workload cannot widen the mesh policy', async (t) => {
  const lax = await startMeshAgent(t, env, caDir.dir, {
    ns: 'lab',
    sa: 'lax',
    appPort: app.port,
    flags: { mode: 'permissive', dryRunPolicy: true },
  });
  t.equal((await roundTrip(lax.inboundPort, Buffer.from('plain'))).toString(), 'plain');

  const version = await setPolicy(
    `mode: strict\ndefault: same-namespace\ndeny:\n  - { from: "ns/shop/*", to: "ns/pay/*" }\n`,
  );
  t.ok(await eventually(() => lax.captured.events('policy.mode_overridden').length === 1));
  const view = (await (await lax.admin('/policy')).json()) as Record<string, unknown>;
  t.match(view, { mode: 'strict', requestedMode: 'permissive', modeOverridden: true });
  t.match(view, { mesh: { version, document: { mode: 'strict', default: 'same-namespace' } } });
  t.equal((await roundTrip(lax.inboundPort, Buffer.from('plain'))).length, 0, 'plaintext refused');

  // The same-namespace default is enforced although the workload runs a dry run.
  const decision = lax.agent.explain(WEB_ID);
  t.match(decision, { allowed: false, dryRun: false, reason: 'outside-namespace' });
  const whyPay = pay.agent.explain(WEB_ID);
  t.match(whyPay, { allowed: false, layer: 'mesh' }, 'the allow list still cannot beat a deny');
});

t.test('a bad policy document changes nothing', async (t) => {
  const before = await meshVersionOf(pay);
  await t.rejects(setPolicy('mode: lax\ndeny: [{ from: "ns/sho*", to: "*" }]\n'), {
    code: 'POLICY_INVALID',
  });
  await new Promise((r) => setTimeout(r, 200));
  t.equal(await meshVersionOf(pay), before);
  t.equal(pay.captured.events('policy.mesh_rejected').length, 0);
  t.match(pay.agent.explain(WEB_ID), { allowed: false, meshVersion: before });
});

t.test('with the CA stopped the agents enforce the last policy and report later', async (t) => {
  const small = await startMeshAgent(t, env, caDir.dir, {
    ns: 'pay',
    sa: 'ledger',
    appPort: app.port,
    flags: { eventsQueueSize: '2' },
    forwardEvents: true,
  });
  const webToLedger = await startMeshAgent(t, env, caDir.dir, {
    ns: 'shop',
    sa: 'cart',
    appPort: app.port,
    flags: { upstream: [`0=127.0.0.1:${small.inboundPort}`] },
  });
  t.ok(await eventually(() => small.events?.length === 0), 'start-up events were sent');
  const port = env.ca.port;
  await env.ca.stop();

  for (let i = 0; i < 5; i++) {
    t.equal(
      (await roundTrip(webToLedger.upstreamPort(), Buffer.from('hi'))).length,
      0,
      'still denied by the mesh rule',
    );
  }
  t.equal((await roundTrip(web.upstreamPort(), Buffer.from('hi'))).length, 0);
  t.ok(await eventually(() => (small.events?.counts().dropped ?? 0) >= 3));

  env = await startTestCa(caDir.dir, { listen: { host: '127.0.0.1', port } });
  const CART_ID = 'spiffe://mesh.test/ns/shop/sa/cart';
  const LEDGER_ID = 'spiffe://mesh.test/ns/pay/sa/ledger';
  let events: StoredEventMessage[] = [];
  const arrived = async () => {
    events = await storedEvents();
    return (
      events.some((e) => e.reporterId === LEDGER_ID && e.event?.kind === 'events.dropped') &&
      events.filter((e) => e.reporterId === LEDGER_ID && e.event?.peerId === CART_ID).length >= 2
    );
  };
  let ok = false;
  for (let i = 0; i < 60 && !(ok = await arrived()); i++) {
    await new Promise((r) => setTimeout(r, 250));
  }
  t.ok(ok, 'queued denials and the drop count arrive once the CA is back');
  const dropped = events.find((e) => e.event?.kind === 'events.dropped');
  t.match(JSON.parse(dropped?.event?.detailJson ?? '{}'), { count: 3, queue_size: 2 });
  t.ok(
    events.some((e) => e.reporterId === PAY_ID && e.event?.peerId === WEB_ID),
    'the other agent reports its queued denial too',
  );
  t.match(await small.metrics(), /palisade_agent_events_dropped_total 3\b/);
});
