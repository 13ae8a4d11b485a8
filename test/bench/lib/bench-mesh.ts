// The two-hop mesh the data-path bench measures, started the way an operator
// would: `palisade ca init` and `ca serve`, an app server, agent B in front
// of it and agent A with an explicit upstream to B, each agent joining with a
// token from `palisade ca token create`. With the HTTP-mode agent, a second
// server-side agent B' whose policy file has an `http` section stands in
// front of the same app server, and agent A has a second upstream to it.
// Everything on 127.0.0.1.
import { join } from 'node:path';
import { workloadId } from '../../../certs/spiffe-id.js';
import { runPalisade, startAgentProcess, type AgentProcess } from './agent-process.js';
import type { PerAgent } from './agent-report.js';
import { startAppServerProcess, type AppServerProcess } from './app-server.js';
import { startCaProcess, type CaProcess } from './ca-process.js';
import { pickFreePort } from './free-port.js';
import { writeHttpAuthzPolicy } from './http-authz-policy.js';

/** Trust domain of the bench's throwaway CA. */
export const TRUST_DOMAIN = 'bench.local';

/** Namespace of every bench identity. */
export const BENCH_NAMESPACE = 'bench';

/** Identity of agent A, which carries the app client's connections out. */
export const CLIENT_ID = workloadId(TRUST_DOMAIN, BENCH_NAMESPACE, 'app-client');

/** Identity of agent B, which carries them in to the app server. */
export const SERVER_ID = workloadId(TRUST_DOMAIN, BENCH_NAMESPACE, 'app-server');

/** Identity of the HTTP-mode agent B', which checks tokens before the app server. */
export const HTTP_SERVER_ID = workloadId(TRUST_DOMAIN, BENCH_NAMESPACE, 'app-server-http');

/** Passphrase of the bench's throwaway CA, handed over as PALISADE_CA_PASSPHRASE. */
export const CA_PASSPHRASE = 'bench-passphrase-not-secret';

/** The processes of one run. */
export interface BenchMesh {
  ca: CaProcess;
  /** The `palisade ca init` directory (keys, bundle, admin credential). */
  caDir: string;
  app: AppServerProcess;
  agents: PerAgent<AgentProcess>;
  /** Where the app client connects through the mesh: agent A's upstream port. */
  meshAddress: string;
  /** The HTTP-mode path, when it was asked for. */
  http?: HttpMeshPath;
}

/** The path client -> agent A -> mutual TLS -> agent B' (HTTP mode, token checks) -> app. */
export interface HttpMeshPath {
  /** Agent B', whose policy has an `http` section requiring a scope. */
  agent: AgentProcess;
  /** Agent A's upstream port that leads to B'. */
  meshAddress: string;
  /** An access token carrying the scope B' requires. */
  token: string;
}

/** Where the mesh keeps its files, and how each stop is handed back. */
export interface BenchMeshOptions {
  /** A fresh directory the caller removes; the CA directory goes inside it. */
  workDir: string;
  /** When set, each agent writes a CPU profile into its directory on exit. */
  profileDirs?: PerAgent<string> & { bHttp?: string };
  /** Each process's stop is pushed here as soon as it runs, so a failure still stops it. */
  stops: (() => Promise<void>)[];
  /** Also start the HTTP-mode agent B' and give agent A an upstream to it. */
  isHttpPathWanted?: boolean;
}

/**
 * Starts the CA, the app server, agent B (and B' when asked), then agent A;
 * resolves once every agent is ready.
 */
export async function startBenchMesh(options: BenchMeshOptions): Promise<BenchMesh> {
  const { stops, profileDirs } = options;
  const caDir = join(options.workDir, 'ca');
  const env = { ...process.env, PALISADE_CA_PASSPHRASE: CA_PASSPHRASE };
  await runPalisade(['ca', 'init', '--dir', caDir, '--trust-domain', TRUST_DOMAIN], env);
  const ca = await startCaProcess({ dir: caDir, passphrase: CA_PASSPHRASE });
  stops.push(() => ca.stop());
  const app = await startAppServerProcess();
  stops.push(() => app.stop());

  const token = async (id: string) => {
    const args = ['ca', 'token', 'create', '--dir', caDir, '--ca-addr', ca.address, '--id', id];
    return (await runPalisade(args)).trim();
  };
  const freeAddress = async () => `127.0.0.1:${await pickFreePort()}`;
  const commonFlags = async (id: string) => [
    ...['--ca-addr', ca.address, '--ca-bundle', join(caDir, 'bundle.pem')],
    ...['--id', id, '--app-addr', app.address],
    ...['--inbound-listen', await freeAddress(), '--admin-listen', await freeAddress()],
    // Info is the default level and the lowest that logs `agent.ready`.
    ...['--drain-timeout', '1s', '--log-level', 'info'],
  ];

  const b = await startAgentProcess({
    args: [...(await commonFlags(SERVER_ID)), '--allow', CLIENT_ID],
    env: { PALISADE_JOIN_TOKEN: await token(SERVER_ID) },
    ...(profileDirs ? { cpuProfileDir: profileDirs.b } : {}),
  });
  stops.push(() => b.stop());

  let httpAgent: { agent: AgentProcess; token: string } | undefined;
  if (options.isHttpPathWanted) {
    const policy = await writeHttpAuthzPolicy(options.workDir, CLIENT_ID);
    const agent = await startAgentProcess({
      args: [...(await commonFlags(HTTP_SERVER_ID)), '--policy-file', policy.policyFile],
      env: { PALISADE_JOIN_TOKEN: await token(HTTP_SERVER_ID) },
      ...(profileDirs?.bHttp ? { cpuProfileDir: profileDirs.bHttp } : {}),
    });
    stops.push(() => agent.stop());
    httpAgent = { agent, token: policy.token };
  }

  const upstreamPort = await pickFreePort();
  const httpUpstream = httpAgent
    ? [
        ...['--allow', HTTP_SERVER_ID],
        // Port 0: the agent binds a free one and names it in `agent.ready`.
        ...['--upstream', `0=${httpAgent.agent.inboundAddress}@${HTTP_SERVER_ID}`],
      ]
    : [];
  const a = await startAgentProcess({
    args: [
      ...(await commonFlags(CLIENT_ID)),
      ...['--allow', SERVER_ID, '--upstream', `${upstreamPort}=${b.inboundAddress}@${SERVER_ID}`],
      ...httpUpstream,
    ],
    env: { PALISADE_JOIN_TOKEN: await token(CLIENT_ID) },
    ...(profileDirs ? { cpuProfileDir: profileDirs.a } : {}),
  });
  stops.push(() => a.stop());
  const meshAddress = a.upstreamAddresses[0];
  if (!meshAddress) throw new Error('agent A reported no upstream address');
  if (!httpAgent) return { ca, caDir, app, agents: { a, b }, meshAddress };
  const httpMeshAddress = a.upstreamAddresses[1];
  if (!httpMeshAddress) throw new Error("agent A reported no upstream address for agent B'");
  return {
    ca,
    caDir,
    app,
    agents: { a, b },
    meshAddress,
    http: { agent: httpAgent.agent, meshAddress: httpMeshAddress, token: httpAgent.token },
  };
}
