import type { Socket } from 'node:net';

/** The accepted TCP socket under a TLS socket (the socket itself when it is not wrapped). */
export function rawSocketOf(socket: Socket): Socket {
  return (socket as unknown as { _parent?: Socket })._parent ?? socket;
}
