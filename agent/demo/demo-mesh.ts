import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Registry } from 'prom-client';
import { startCa, type RunningCa } from '../../certs/ca.js';
import { initCaDir, readAdminCredential } from '../../certs/ca-dir.js';
import { CaClient } from '../../certs/client/index.js';
import { createLogger, type Logger } from '../../certs/log.js';
import { startAgent, type RunningAgent } from '../app.js';
import { loadAgentConfig } from '../config/agent-config.js';

/** Trust domain of the demo mesh. */
export const DEMO_TRUST_DOMAIN = 'demo.palisade';

const DEMO_PASSPHRASE = 'demo-passphrase-not-a-secret';

/** Issuer of the demo's OAuth 2.0 access tokens, made at run time. */
export const DEMO_TOKEN_ISSUER = 'https://issuer.demo.palisade';

/** One service of the demo: an HTTP app and its agent, with the agent's security events. */
export interface DemoService {
  name: string;
  id: string;
  agent: RunningAgent;
  app: Server;
  events: Record<string, unknown>[];
  /** Local port of the explicit upstream to orders, when the service has one. */
  upstreamPort: number | undefined;
  /** Local ports of all explicit upstreams, in the order given (web: orders, payments). */
  upstreamPorts: number[];
  inboundPort: number;
}

/** The whole demo mesh on loopback. */
export interface DemoMesh {
  dir: string;
  ca: RunningCa;
  admin: CaClient;
  services: Record<'web' | 'orders' | 'batch' | 'payments', DemoService>;
  /** Access tokens for payments: one with the `payments.read` scope, one without. */
  tokens: { withScope: string; withoutScope: string };
  stop(): Promise<void>;
}

/**
 * Starts a CA and four services on loopback, each behind its own agent:
 * orders allows only web; web and batch each have an upstream to orders;
 * payments allows web and judges each HTTP request by its access token.
 */
export async function startDemoMesh(): Promise<DemoMesh> {
  const dir = mkdtempSync(join(tmpdir(), 'palisade-demo-'));
  const passphrase = { value: DEMO_PASSPHRASE };
  initCaDir({
    dir,
    trustDomain: DEMO_TRUST_DOMAIN,
    keyType: 'ecdsa-p256',
    force: false,
    passphrase,
  });
  const ca = await startCa(
    {
      dir,
      listen: { host: '127.0.0.1', port: 0 },
      metricsListen: undefined,
      defaultTtlSeconds: 3600,
      maxTtlSeconds: 86400,
      saJwks: undefined,
      saIssuer: undefined,
      passphrase,
      sweepIntervalMs: 60_000,
    },
    {
      log: createLogger({ component: 'ca', level: 'silent' }),
      registry: new Registry(),
      version: 'demo',
    },
  );
  const cred = readAdminCredential(dir);
  const admin = new CaClient({
    address: ca.address,
    trustBundlePem: cred.bundlePem,
    trustDomain: DEMO_TRUST_DOMAIN,
    credential: { keyPem: cred.keyPem, certChainPem: cred.certPem },
  });

  const orders = await startService({ name: 'orders', dir, ca, admin, allow: ['ns/demo/sa/web'] });
  const { policyFile, tokens } = await writeTokenPolicy(dir);
  const payments = await startService({ name: 'payments', dir, ca, admin, policyFile });
  const upstream = [`0=127.0.0.1:${orders.inboundPort}@${orders.id}`];
  const webUpstream = [...upstream, `0=127.0.0.1:${payments.inboundPort}@${payments.id}`];
  const web = await startService({ name: 'web', dir, ca, admin, upstream: webUpstream });
  const batch = await startService({ name: 'batch', dir, ca, admin, upstream });
  const services = { web, orders, batch, payments };

  return {
    dir,
    ca,
    admin,
    services,
    tokens,
    stop: async () => {
      for (const service of Object.values(services)) {
        await service.agent.stop(0);
        service.app.closeAllConnections();
        await new Promise<void>((resolve) => service.app.close(() => resolve()));
      }
      admin.close();
      await ca.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The answer to one HTTP call made through the mesh. */
export interface CallResult {
  ok: boolean;
  status: number | undefined;
  body: string;
  error: string | undefined;
}

/** GETs `path` from 127.0.0.1:`port` with a fresh connection; never rejects. */
export function httpGet(
  port: number,
  path = '/',
  headers: Record<string, string> = {},
): Promise<CallResult> {
  return new Promise((resolve) => {
    const options = { host: '127.0.0.1', port, path, headers, agent: false, timeout: 3000 };
    const req = request(options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () =>
        resolve({ ok: res.statusCode === 200, status: res.statusCode, body, error: undefined }),
      );
      res.on('error', (err) =>
        resolve({ ok: false, status: res.statusCode, body, error: err.message }),
      );
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) =>
      resolve({ ok: false, status: undefined, body: '', error: err.message }),
    );
    req.end();
  });
}

/** Sends raw plaintext bytes to a port and reports whether any answer came back. */
export function plaintextProbe(port: number): Promise<CallResult> {
  return new Promise((resolve) => {
    let body = '';
    const socket = connect({ host: '127.0.0.1', port }, () =>
      socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
    );
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (body += chunk));
    socket.on('error', () => undefined);
    socket.on('close', () =>
      resolve({
        ok: body.length > 0,
        status: undefined,
        body,
        error: body ? undefined : 'connection closed',
      }),
    );
  });
}

async function startService(options: {
  name: string;
  dir: string;
  ca: RunningCa;
  admin: CaClient;
  allow?: string[];
  policyFile?: string;
  upstream?: string[];
}): Promise<DemoService> {
  const id = `spiffe://${DEMO_TRUST_DOMAIN}/ns/demo/sa/${options.name}`;
  const app = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive' });
    res.end(JSON.stringify({ service: options.name, path: req.url }));
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appPort = (app.address() as AddressInfo).port;
  const token = await options.admin.createJoinToken({ spiffeId: id, ttlSeconds: 300 });
  const config = loadAgentConfig(
    {
      caAddr: options.ca.address,
      caBundle: join(options.dir, 'bundle.pem'),
      joinToken: token.token,
      id,
      appAddr: `127.0.0.1:${appPort}`,
      inboundListen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      ...(options.allow ? { allow: options.allow } : {}),
      ...(options.policyFile ? { policyFile: options.policyFile } : {}),
      ...(options.upstream ? { upstream: options.upstream } : {}),
    },
    {},
  );
  const events: Record<string, unknown>[] = [];
  const log: Logger = createLogger({
    component: `agent-${options.name}`,
    level: 'info',
    destination: {
      write: (line: string) => {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        if (parsed['event']) events.push(parsed);
      },
    },
  });
  const agent = await startAgent(config, { log, registry: new Registry() });
  await agent.ready;
  const portOf = (address: string | undefined) => Number(address?.split(':').pop());
  const upstreamPorts = agent.upstreamAddresses().map(portOf);
  return {
    name: options.name,
    id,
    agent,
    app,
    events,
    upstreamPort: upstreamPorts[0],
    upstreamPorts,
    inboundPort: portOf(agent.inboundAddress()),
  };
}

/**
 * Makes an issuer key, writes its JWKS and the payments policy (allow web;
 * GET /payments needs the `payments.read` scope) into `dir`, and signs one
 * token with that scope and one without.
 */
async function writeTokenPolicy(
  dir: string,
): Promise<{ policyFile: string; tokens: DemoMesh['tokens'] }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwksFile = join(dir, 'issuer-jwks.json');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'demo-1', alg: 'ES256', use: 'sig' };
  writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
  const policyFile = join(dir, 'payments-policy.yaml');
  writeFileSync(
    policyFile,
    [
      'allow: [ns/demo/sa/web]',
      'http:',
      `  jwt: { issuer: ${DEMO_TOKEN_ISSUER}, audience: payments, jwks: ${JSON.stringify(jwksFile)} }`,
      '  rules:',
      '    - { methods: [GET], path: /payments, prefix: true, scopes: [payments.read] }',
      '    - { path: /healthz, anonymous: true }',
      '',
    ].join('\n'),
  );
  const sign = (scope: string) =>
    new SignJWT({ scope, client_id: 'web-frontend', sub: 'alice' })
      .setProtectedHeader({ alg: 'ES256', kid: 'demo-1' })
      .setIssuer(DEMO_TOKEN_ISSUER)
      .setAudience('payments')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
  return {
    policyFile,
    tokens: { withScope: await sign('payments.read'), withoutScope: await sign('profile') },
  };
}
