// Proves, before any load, that a path's server-side proxy really does what
// the comparison claims: it speaks TLS 1.3, answers a client holding a
// certificate from the mesh CA, and refuses one without a certificate.
import { readFileSync } from 'node:fs';
import { connect, type TLSSocket } from 'node:tls';
import type { PeerCertFiles } from './peer-pki.js';

/** How long one probe may take, in ms. */
const PROBE_TIMEOUT_MS = 5_000;

/** What the probe found. */
export interface MutualTlsProbe {
  /** Protocol negotiated with a client certificate, e.g. `TLSv1.3`. */
  protocol: string;
  /** Whether the request with a client certificate got an HTTP answer. */
  isAnsweredWithCert: boolean;
  /** Whether the request without a client certificate got no HTTP answer. */
  isRefusedWithoutCert: boolean;
}

/** Whether a probe shows TLS 1.3 with a required, verified client certificate. */
export function isMutualTls13(probe: MutualTlsProbe): boolean {
  return probe.protocol === 'TLSv1.3' && probe.isAnsweredWithCert && probe.isRefusedWithoutCert;
}

/**
 * Sends one HTTP request to `address` over TLS with `clientCert`, and one
 * without a client certificate. The server's chain is checked against the
 * bundle; its name is not, since each peer names itself differently.
 */
export async function probeMutualTls(
  address: string,
  clientCert: PeerCertFiles,
): Promise<MutualTlsProbe> {
  const ca = readFileSync(clientCert.bundlePath);
  const withCert = await requestOverTls(address, {
    ca,
    cert: readFileSync(clientCert.chainPath),
    key: readFileSync(clientCert.keyPath),
  });
  const withoutCert = await requestOverTls(address, { ca });
  return {
    protocol: withCert.protocol,
    isAnsweredWithCert: withCert.answer.startsWith('HTTP/1.1 200'),
    isRefusedWithoutCert: !withoutCert.answer.startsWith('HTTP/'),
  };
}

/** Sends `GET /` and collects what comes back until the peer closes, fails or times out. */
function requestOverTls(
  address: string,
  credentials: { ca: Buffer; cert?: Buffer; key?: Buffer },
): Promise<{ protocol: string; answer: string }> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve) => {
    let answer = '';
    let protocol = '';
    const socket: TLSSocket = connect({
      host,
      port: Number(port),
      ...credentials,
      // The chain is verified against the bundle; host names differ per peer.
      checkServerIdentity: () => undefined,
    });
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ protocol, answer });
    };
    const timer = setTimeout(finish, PROBE_TIMEOUT_MS);
    socket.once('secureConnect', () => {
      protocol = socket.getProtocol() ?? '';
      socket.write('GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n');
    });
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
    });
    // A refused client certificate ends in an alert (an error) or a close.
    socket.once('error', finish);
    socket.once('close', finish);
  });
}
