import { connect, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import t, { type Test } from 'tap';
import { createAgentMetrics } from '../../../agent/metrics.js';
import {
  PeerRejectedError,
  TransparentOutbound,
  type PeerDialer,
} from '../../../agent/outbound/index.js';
import { LiveConnections } from '../../../agent/tls/index.js';
import { captureLog } from '../../helpers/log-capture.js';
import { roundTrip, startEchoApp } from '../../helpers/mesh-fixture.js';

/** Starts a transparent listener whose "original destination" is whatever `dst` says. */
async function start(
  t: Test,
  options: { external: 'pass' | 'refuse'; dst: () => { address: string; port: number } },
) {
  const captured = captureLog('outbound');
  const registry = new Registry();
  const metrics = createAgentMetrics(registry);
  const dialed: string[] = [];
  const dialer = {
    dial: (host: string, port: number) => {
      dialed.push(`${host}:${port}`);
      return Promise.reject(new PeerRejectedError('untrusted', 'stub peer', undefined));
    },
  } as unknown as PeerDialer;
  const outbound = new TransparentOutbound(
    {
      listen: { host: '127.0.0.1', port: 0 },
      isMeshAddress: (address) => address.startsWith('10.213.'),
      external: options.external,
      agentPorts: [15106, 15101, 15120],
    },
    {
      dialer,
      live: new LiveConnections({ log: captured.log, metrics }),
      log: captured.log,
      metrics,
      originalDst: options.dst,
    },
  );
  const address = await outbound.start();
  t.teardown(() => {
    outbound.destroyAll();
    return outbound.stopAccepting();
  });
  return { port: Number(address.split(':').pop()), captured, registry, dialed };
}

function closedBy(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    socket.once('close', () => resolve());
    socket.resume();
  });
}

t.test('refuses a connection with no original destination', async (t) => {
  const env = await start(t, {
    external: 'pass',
    dst: () => {
      throw new Error('not redirected');
    },
  });
  await closedBy(env.port);
  t.match(env.captured.lines.at(-1), { msg: 'connection refused', reason: 'no-original-dst' });
});

t.test('refuses a connection whose original destination is the agent itself', async (t) => {
  let port = 0;
  const env = await start(t, { external: 'pass', dst: () => ({ address: '127.0.0.1', port }) });
  port = env.port;
  await closedBy(env.port);
  t.match(env.captured.lines.at(-1), { msg: 'connection refused', reason: 'loop' });
  t.same(env.dialed, [], 'nothing was dialled');
});

t.test('refuses destinations outside the mesh when told to, without dialling them', async (t) => {
  const env = await start(t, {
    external: 'refuse',
    dst: () => ({ address: '192.0.2.7', port: 80 }),
  });
  await closedBy(env.port);
  t.match(env.captured.lines.at(-1), { reason: 'external-refused', target: '192.0.2.7:80' });
  t.match(
    await env.registry.metrics(),
    /palisade_agent_connections_total\{direction="outbound",result="refused"\} 1/,
  );
});

t.test('passes destinations outside the mesh through as plain TCP', async (t) => {
  const app = await startEchoApp(t);
  const env = await start(t, {
    external: 'pass',
    dst: () => ({ address: '127.0.0.1', port: app.port }),
  });
  const echoed = await roundTrip(env.port, Buffer.from('plain through'));
  t.equal(echoed.toString(), 'plain through');
  t.match(await env.registry.metrics(), /result="passthrough"\} 1/);
});

t.test('dials mesh destinations with mutual TLS and logs a refused peer', async (t) => {
  const env = await start(t, {
    external: 'refuse',
    dst: () => ({ address: '10.213.0.2', port: 8080 }),
  });
  await closedBy(env.port);
  t.same(env.dialed, ['10.213.0.2:8080'], 'dialled the original destination');
  t.match(env.captured.events('peer.rejected'), [
    { reason: 'untrusted', target: '10.213.0.2:8080' },
  ]);
});
