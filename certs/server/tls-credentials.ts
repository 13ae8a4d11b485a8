import { ServerCredentials } from '@grpc/grpc-js';

/** The CA's serving key and chain, PEM. */
export interface ServingIdentity {
  keyPem: string;
  /** Leaf first, then the intermediate. */
  chainPem: string;
  /** Roots a client certificate must chain to. */
  trustBundlePem: string;
}

/**
 * gRPC server credentials for the CA: TLS 1.3, a client certificate requested
 * but not required (workloads without one bootstrap with a token; renewals and
 * admin calls present one), and hot-swappable when the serving certificate or
 * trust bundle changes. Whether a presented certificate chained to the bundle
 * is read per call from the auth context.
 */
export class CaServerCredentials extends ServerCredentials {
  constructor(identity: ServingIdentity) {
    super(
      { requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' },
      contextOptions(identity),
    );
  }

  /** Replaces the serving certificate and trust bundle for new handshakes. */
  update(identity: ServingIdentity): void {
    this.updateSecureContextOptions(contextOptions(identity));
  }

  override _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

function contextOptions(identity: ServingIdentity) {
  return {
    key: identity.keyPem,
    cert: identity.chainPem,
    ca: identity.trustBundlePem,
  };
}
