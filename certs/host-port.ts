import type { AddressInfo, Server } from 'node:net';
import { PalisadeError } from './errors.js';

/** A listen or dial address. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses `HOST:PORT`, `[v6]:PORT` or `:PORT` (all interfaces). Port 0 asks
 * the kernel for a free port. Throws ADDRESS_INVALID naming the input.
 */
export function parseHostPort(input: string, defaultHost = '127.0.0.1'): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(input.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new PalisadeError('ADDRESS_INVALID', `not a HOST:PORT address: ${JSON.stringify(input)}`);
  }
  const host = match[1] ?? (match[2] || defaultHost);
  return { host, port };
}

/** Formats an address for gRPC targets and logs, bracketing IPv6 hosts. */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Starts `server` listening on `address` and resolves with the bound port
 * (port 0 resolved); rejects with the listen error (EADDRINUSE, EACCES...).
 */
export function listenOn(server: Server, address: HostPort): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
