import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { Test } from 'tap';
import { startAgent, type RunningAgent } from '../../agent/app.js';
import { loadAgentConfig, type AgentFlags } from '../../agent/config/agent-config.js';
import { EventQueue } from '../../agent/events/index.js';
import { createLogger } from '../../certs/log.js';
import { captureLog, type CapturedLog } from './log-capture.js';
import type { TestCa } from './ca-fixture.js';

/** A TCP echo server on loopback that honours half-close. */
export async function startEchoApp(t: Test): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  return { server, port: (server.address() as AddressInfo).port };
}

/** An agent started for a test, with its log captured. */
export interface MeshAgent {
  agent: RunningAgent;
  id: string;
  captured: CapturedLog;
  registry: Registry;
  /** The queue of security events for the CA, when the agent forwards them. */
  events: EventQueue | undefined;
  inboundPort: number;
  /** Local port of the n-th explicit upstream. */
  upstreamPort(n?: number): number;
  metrics(): Promise<string>;
  admin(path: string, init?: RequestInit): Promise<Response>;
}

/**
 * Starts an agent for `spiffe://<td>/ns/<ns>/sa/<sa>` against the test CA,
 * bootstrapped with a fresh join token, all listeners on loopback port 0.
 * With `forwardEvents`, its logger feeds an event queue sent to the CA, as
 * `palisade agent` wires it (queue size from the config).
 */
export async function startMeshAgent(
  t: Test,
  env: TestCa,
  caDir: string,
  options: {
    ns: string;
    sa: string;
    appPort: number;
    flags?: Partial<AgentFlags>;
    forwardEvents?: boolean;
  },
): Promise<MeshAgent> {
  const id = `spiffe://${env.ca.trustDomain}/ns/${options.ns}/sa/${options.sa}`;
  const admin = env.admin();
  const token = await admin.createJoinToken({ spiffeId: id, ttlSeconds: 600 });
  admin.close();
  const config = loadAgentConfig(
    {
      caAddr: env.ca.address,
      caBundle: join(caDir, 'bundle.pem'),
      joinToken: token.token,
      id,
      appAddr: `127.0.0.1:${options.appPort}`,
      inboundListen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      inboundHandshakeTimeout: '2s',
      ...options.flags,
    },
    {},
  );
  const events =
    options.forwardEvents && config.events.queueSize > 0
      ? new EventQueue(config.events.queueSize)
      : undefined;
  const captured = events
    ? captureForwardedLog(`agent-${options.sa}`, events)
    : captureLog(`agent-${options.sa}`);
  const registry = new Registry();
  const agent = await startAgent(config, {
    log: captured.log,
    registry,
    ...(events ? { events } : {}),
  });
  t.teardown(() => agent.stop(0));
  await agent.ready;
  const portOf = (address: string | undefined) => Number(address?.split(':').pop());
  return {
    agent,
    id,
    captured,
    registry,
    events,
    inboundPort: portOf(agent.inboundAddress()),
    upstreamPort: (n = 0) => portOf(agent.upstreamAddresses()[n]),
    metrics: () => registry.metrics(),
    admin: (path, init) => fetch(`http://${agent.adminAddress}${path}`, init),
  };
}

/** Like captureLog, with every security event also recorded in `queue`. */
function captureForwardedLog(component: string, queue: EventQueue): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({
    component,
    level: 'debug',
    destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
    onEvent: queue.record,
  });
  return { log, lines, events: (name) => lines.filter((l) => l['event'] === name) };
}

/** Connects to a local port and resolves once connected. */
export function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Sends `payload`, half-closes, and resolves with everything received until the peer closes. */
export function roundTrip(port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () =>
      socket.end(payload),
    );
    socket.on('data', (c: Buffer) => chunks.push(c));
    // A refused connection may end in a reset; what arrived is the answer.
    socket.once('error', () => undefined);
    socket.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** Resolves when the far end ends or closes `socket`, with the milliseconds since `sinceMs`. */
export function closedWithin(socket: Socket, sinceMs: () => number): Promise<number> {
  return new Promise((resolve) => {
    const done = () => resolve(performance.now() - sinceMs());
    if (socket.destroyed || socket.readableEnded) done();
    socket.once('end', done);
    socket.once('close', done);
    socket.resume();
  });
}

/** Polls `check` every 20 ms until it is true or `timeoutMs` passes; resolves with the result. */
export async function eventually(check: () => boolean, timeoutMs = 3000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

/** Writes `text` and resolves with the first answer, or rejects after `timeoutMs`. */
export function ping(socket: Socket, text = 'ping', timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      resolve(chunk.toString());
    });
    socket.write(text);
  });
}
