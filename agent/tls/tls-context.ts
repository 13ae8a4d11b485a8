import { randomBytes } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';

/** Ciphersuites Palisade offers: TLS 1.3 only, AES-GCM first (hardware accelerated). */
export const TLS13_CIPHERSUITES =
  'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

/** The workload's certificate and the roots it trusts, PEM. */
export interface TlsMaterial {
  keyPem: string;
  certChainPem: string;
  trustBundlePem: readonly string[];
}

/**
 * Holds the agent's current TLS material and builds secure contexts from it.
 * Servers are told of each change (they call `setSecureContext`), so live
 * connections keep their context while new handshakes use the new one. The
 * session-ticket keys are made once per process and reused in every context,
 * so tickets issued before a rotation still resume after it.
 */
export class TlsContextHolder {
  private readonly ticketKeys = randomBytes(48);
  private readonly listeners = new Set<(options: SecureContextOptions) => void>();
  private material: TlsMaterial | undefined;
  private clientContext: SecureContext | undefined;

  /** Whether material has been loaded. */
  get isLoaded(): boolean {
    return this.material !== undefined;
  }

  /** Replaces the material; every registered server gets the new options. */
  update(material: TlsMaterial): void {
    this.material = material;
    const options = this.serverOptions();
    this.clientContext = createSecureContext(this.baseOptions());
    for (const listener of this.listeners) listener(options);
  }

  /** Options for `tls.createServer` / `setSecureContext`: TLS 1.3 only, stable ticket keys. */
  serverOptions(): SecureContextOptions {
    return { ...this.baseOptions(), ticketKeys: this.ticketKeys };
  }

  /** A secure context for dialling peers (client side), rebuilt on every update. */
  client(): SecureContext {
    if (!this.clientContext) throw new Error('TLS material not loaded');
    return this.clientContext;
  }

  /** Calls `listener` with new server options on every update; returns the unsubscribe function. */
  onUpdate(listener: (options: SecureContextOptions) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private baseOptions(): SecureContextOptions {
    if (!this.material) throw new Error('TLS material not loaded');
    return {
      key: this.material.keyPem,
      cert: this.material.certChainPem,
      ca: [...this.material.trustBundlePem],
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ciphers: TLS13_CIPHERSUITES,
    };
  }
}
