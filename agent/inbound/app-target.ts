import type { Socket } from 'node:net';
import type { HostPort } from '../../certs/host-port.js';

/** Where a connection or stream goes, or why it goes nowhere. */
export type TargetResult =
  { ok: true; addr: HostPort } | { ok: false; reason: string; detail: string };

/**
 * Where accepted connections and mux streams are forwarded: the configured
 * application address, or with transparent interception the original
 * destination port on 127.0.0.1, never one of the agent's own ports (that
 * would loop). Remembers each accepted connection's target by its raw socket.
 */
export class AppTargets {
  private readonly byRaw = new WeakMap<Socket, HostPort>();

  constructor(
    private readonly options: {
      appAddr: HostPort | undefined;
      agentPorts?: readonly number[] | undefined;
      /** Reads a redirected connection's original destination (SO_ORIGINAL_DST). */
      originalDst?: ((socket: Socket) => { address: string; port: number }) | undefined;
      /** The inbound listener's bound port, itself one of the agent's ports. */
      boundPort: () => number;
    },
  ) {}

  /**
   * Resolves an accepted connection's target (the configured app address, or
   * the original destination port) and, when there is one, remembers it for
   * `of`.
   */
  resolve(socket: Socket): TargetResult {
    const target = this.targetOf(socket);
    if (target.ok) this.byRaw.set(socket, target.addr);
    return target;
  }

  /**
   * The target of an accepted connection, by its raw socket. Throws when
   * none was resolved, since every accepted connection has one.
   */
  of(raw: Socket | undefined): HostPort {
    const target = (raw && this.byRaw.get(raw)) ?? this.options.appAddr;
    if (!target) throw new Error('no application target for an accepted connection');
    return target;
  }

  /**
   * Where a stream goes: the configured app address, or with interception
   * the port its OPEN names (the original destination port the dialer saw),
   * never one of the agent's own. Port 0 means the session's own target.
   */
  forStream(raw: Socket, port: number): TargetResult {
    if (this.options.appAddr) return { ok: true, addr: this.options.appAddr };
    if (port === 0) return { ok: true, addr: this.of(raw) };
    if (this.isAgentPort(port)) {
      return { ok: false, reason: 'loop', detail: `stream port ${port} is the agent` };
    }
    return { ok: true, addr: { host: '127.0.0.1', port } };
  }

  private targetOf(socket: Socket): TargetResult {
    const readOriginal = this.options.originalDst;
    if (this.options.appAddr) return { ok: true, addr: this.options.appAddr };
    if (!readOriginal) return { ok: false, reason: 'no-app', detail: 'no application address' };
    let port: number;
    try {
      port = readOriginal(socket).port;
    } catch (err) {
      return { ok: false, reason: 'no-original-dst', detail: (err as Error).message };
    }
    // A connection made straight to one of the agent's own ports was not
    // redirected and names no application port; forwarding it would loop.
    if (this.isAgentPort(port)) {
      return {
        ok: false,
        reason: 'loop',
        detail: `original destination port ${port} is the agent`,
      };
    }
    return { ok: true, addr: { host: '127.0.0.1', port } };
  }

  private isAgentPort(port: number): boolean {
    return port === this.options.boundPort() || (this.options.agentPorts?.includes(port) ?? false);
  }
}
