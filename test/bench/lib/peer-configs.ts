// Configuration files of the comparison's peers, as pure functions: the same
// two-hop path as Palisade's (a client-side proxy taking plain TCP, mutual
// TLS 1.3 between the two proxies with client certificates verified on both
// sides, a server-side proxy handing plain TCP to the app), each proxy left at
// its distribution's defaults for threads, workers and session reuse.
import type { PeerCertFiles } from './peer-pki.js';

/** The peers the comparison knows. */
export const PEER_NAMES = ['haproxy', 'stunnel', 'nginx'] as const;

/** One of the peers. */
export type PeerName = (typeof PEER_NAMES)[number];

/** Which side of the two-hop path one proxy instance plays. */
export type PeerSide = 'client' | 'server';

/** Where Debian's libnginx-mod-stream puts the stream module. */
export const NGINX_STREAM_MODULE_PATH = '/usr/lib/nginx/modules/ngx_stream_module.so';

/** Worker connections of Debian's stock nginx.conf. */
const NGINX_WORKER_CONNECTIONS = 768;

/** Everything one proxy instance's configuration names. */
export interface PeerInstancePlan {
  side: PeerSide;
  /** The instance's own directory: pid file, logs. */
  dir: string;
  /** `127.0.0.1:<port>` it listens on: plain TCP (client side) or TLS (server side). */
  listenAddress: string;
  /** `127.0.0.1:<port>` it forwards to: the server side (client side) or the app. */
  forwardAddress: string;
  /** Its own certificate: the client one on the client side, the server one on the server side. */
  cert: PeerCertFiles;
  /** The DNS name the client side expects in the server's certificate. */
  serverName: string;
}

/** A rendered configuration and how to run the proxy on it in the foreground. */
export interface PeerLaunch {
  /** File name of the configuration inside the instance's directory. */
  configFile: string;
  config: string;
  command: string;
  /** Arguments; `{config}` stands for the configuration file's path. */
  args: string[];
}

/** Renders the configuration of one instance of `peer` and its command line. */
export function planPeerLaunch(peer: PeerName, plan: PeerInstancePlan): PeerLaunch {
  switch (peer) {
    case 'haproxy':
      return {
        configFile: 'haproxy.cfg',
        config: haproxyConfig(plan),
        command: 'haproxy',
        // -db: stay in the foreground, no daemon, so the bench owns the process.
        args: ['-db', '-f', '{config}'],
      };
    case 'stunnel':
      return {
        configFile: 'stunnel.conf',
        config: stunnelConfig(plan),
        command: 'stunnel',
        args: ['{config}'],
      };
    case 'nginx':
      return {
        configFile: 'nginx.conf',
        config: nginxConfig(plan),
        command: 'nginx',
        // -e: the error log from the start, before nginx reads its configuration.
        args: ['-p', plan.dir, '-e', `${plan.dir}/error.log`, '-c', '{config}'],
      };
  }
}

/** HAProxy in TCP mode; nbthread left unset, so it runs one thread per core. */
export function haproxyConfig(plan: PeerInstancePlan): string {
  const { cert } = plan;
  const tls =
    plan.side === 'server'
      ? `ssl crt ${cert.combinedPath} ca-file ${cert.bundlePath} verify required ssl-min-ver TLSv1.3`
      : '';
  const upstreamTls =
    plan.side === 'client'
      ? ` ssl crt ${cert.combinedPath} ca-file ${cert.bundlePath} verify required` +
        ` verifyhost ${plan.serverName} sni str(${plan.serverName}) ssl-min-ver TLSv1.3`
      : '';
  return [
    'global',
    `  pidfile ${plan.dir}/haproxy.pid`,
    '',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    '',
    'frontend listen',
    `  bind ${plan.listenAddress} ${tls}`.trimEnd(),
    '  default_backend forward',
    '',
    'backend forward',
    `  server next ${plan.forwardAddress}${upstreamTls}`,
    '',
  ].join('\n');
}

/** stunnel in the foreground; Debian builds it with a thread per connection. */
export function stunnelConfig(plan: PeerInstancePlan): string {
  const { cert } = plan;
  return [
    'foreground = yes',
    `pid = ${plan.dir}/stunnel.pid`,
    `output = ${plan.dir}/stunnel.log`,
    'debug = warning',
    '',
    `[${plan.side}]`,
    ...(plan.side === 'client' ? ['client = yes', `checkHost = ${plan.serverName}`] : []),
    `accept = ${plan.listenAddress}`,
    `connect = ${plan.forwardAddress}`,
    `cert = ${cert.chainPath}`,
    `key = ${cert.keyPath}`,
    `CAfile = ${cert.bundlePath}`,
    // verifyChain checks the peer's chain up to CAfile and, on the server
    // side, makes a client certificate mandatory.
    'verifyChain = yes',
    'sslVersionMin = TLSv1.3',
    '',
  ].join('\n');
}

/** nginx's stream module; `worker_processes auto` starts one worker per core. */
export function nginxConfig(plan: PeerInstancePlan): string {
  const { cert } = plan;
  // The chain is leaf, intermediate, root: a depth of 2 (nginx's default is 1).
  const sideLines =
    plan.side === 'server'
      ? [
          `    listen ${plan.listenAddress} ssl;`,
          `    ssl_certificate ${cert.chainPath};`,
          `    ssl_certificate_key ${cert.keyPath};`,
          `    ssl_client_certificate ${cert.bundlePath};`,
          '    ssl_verify_client on;',
          '    ssl_verify_depth 2;',
          '    ssl_protocols TLSv1.3;',
        ]
      : [
          `    listen ${plan.listenAddress};`,
          '    proxy_ssl on;',
          `    proxy_ssl_certificate ${cert.chainPath};`,
          `    proxy_ssl_certificate_key ${cert.keyPath};`,
          `    proxy_ssl_trusted_certificate ${cert.bundlePath};`,
          '    proxy_ssl_verify on;',
          '    proxy_ssl_verify_depth 2;',
          `    proxy_ssl_name ${plan.serverName};`,
          '    proxy_ssl_server_name on;',
          '    proxy_ssl_protocols TLSv1.3;',
        ];
  return [
    `load_module ${NGINX_STREAM_MODULE_PATH};`,
    'daemon off;',
    'worker_processes auto;',
    `pid ${plan.dir}/nginx.pid;`,
    `error_log ${plan.dir}/error.log warn;`,
    '',
    `events { worker_connections ${NGINX_WORKER_CONNECTIONS}; }`,
    '',
    'stream {',
    '  server {',
    ...sideLines,
    `    proxy_pass ${plan.forwardAddress};`,
    '  }',
    '}',
    '',
  ].join('\n');
}
