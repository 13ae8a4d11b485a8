import { X509Certificate } from 'node:crypto';
import type { ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';

/** Any server call whose TLS auth context can be read. */
export type AuthenticatedCall = Pick<
  ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>,
  'getAuthContext' | 'getPeer'
>;

/**
 * Returns the caller's TLS client certificate when it presented one that
 * chained to the trust bundle (node verified it in the handshake), else
 * undefined. Revocation and identity checks are the caller's job.
 */
export function verifiedPeerCertificate(call: AuthenticatedCall): X509Certificate | undefined {
  const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
  return raw ? new X509Certificate(raw) : undefined;
}
