import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { formatHostPort, listenOn, type HostPort } from './host-port.js';

/**
 * Serves `/metrics`, `/healthz` and `/readyz` over plain HTTP. Readiness is
 * asked of `isReady` on each request; everything else answers 404.
 */
export async function startMetricsServer(options: {
  listen: HostPort;
  registry: Registry;
  isReady: () => boolean;
}): Promise<{ server: Server; address: string; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ready = options.isReady();
      res
        .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ready ? 'ready\n' : 'not ready\n');
    } else if (path === '/metrics') {
      options.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  const port = await listenOn(server, options.listen);
  return { server, port, address: formatHostPort({ host: options.listen.host, port }) };
}
