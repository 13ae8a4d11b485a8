import { createServer, type AddressInfo } from 'node:net';

/**
 * Finds a TCP port free on `host` by binding port 0 and closing the socket.
 * Another process may take the port before the caller binds it; on a bench
 * machine that race is rare enough to surface as a start-up failure.
 */
export function pickFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
