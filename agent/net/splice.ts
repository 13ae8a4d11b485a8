import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** What a finished splice moved, counted on the plaintext side. */
export interface SpliceResult {
  /** Bytes the application side sent towards the peer. */
  bytesFromApp: number;
  /** Bytes the peer side delivered to the application. */
  bytesToApp: number;
  /** The first socket error, if the splice ended on one. */
  error: Error | undefined;
}

/**
 * Pipes a plaintext application socket and a peer stream both ways until
 * both are closed. A half-close (FIN) on one side is passed on as a
 * half-close on the other, so request/response protocols that end their
 * writing side first keep working. An error on either side destroys both.
 * Byte counts come from the plaintext socket, so TLS overhead is excluded.
 */
export function splice(app: Socket, peer: Duplex, onDone: (result: SpliceResult) => void): void {
  let error: Error | undefined;
  let open = 2;
  const finish = () => {
    if (--open > 0) return;
    onDone({ bytesFromApp: app.bytesRead, bytesToApp: app.bytesWritten, error });
  };
  const fail = (err: Error) => {
    error ??= err;
    app.destroy();
    peer.destroy();
  };
  app.once('close', finish);
  peer.once('close', finish);
  app.on('error', fail);
  peer.on('error', fail);
  app.pipe(peer);
  peer.pipe(app);
  app.resume();
  peer.resume();
}
