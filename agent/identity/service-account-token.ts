import { readFileSync } from 'node:fs';

import { PalisadeError, errorMessage } from '../../certs/errors.js';
import { workloadId } from '../../certs/spiffe-id.js';

const SUBJECT = /^system:serviceaccount:([^:]+):([^:]+)$/;

/**
 * Reads a projected service-account token file. Called before every use: the
 * kubelet rewrites the file as it rotates the token. Throws PalisadeError
 * TOKEN_FILE_UNREADABLE (the token itself never goes into the message).
 */
export function readServiceAccountToken(path: string): string {
  let token: string;
  try {
    token = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new PalisadeError(
      'TOKEN_FILE_UNREADABLE',
      `cannot read service-account token file ${path}: ${errorMessage(err)}`,
      { cause: err },
    );
  }
  if (token === '') {
    throw new PalisadeError('TOKEN_FILE_UNREADABLE', `service-account token file ${path} is empty`);
  }
  return token;
}

/**
 * The workload SPIFFE ID a service-account token names, from its `sub` claim
 * `system:serviceaccount:<ns>:<sa>`. The token is decoded, NOT verified: the
 * CA verifies it; the agent only needs to know which identity to ask for.
 * Throws PalisadeError TOKEN_MALFORMED, or SPIFFE_ID_INVALID for bad names.
 */
export function spiffeIdFromServiceAccountToken(token: string, trustDomain: string): string {
  let subject: unknown;
  try {
    subject = jwtPayloadOf(token)['sub'];
  } catch (err) {
    throw new PalisadeError('TOKEN_MALFORMED', 'service-account token is not a JWT', {
      cause: err,
    });
  }
  const match = typeof subject === 'string' ? SUBJECT.exec(subject) : null;
  if (!match) {
    throw new PalisadeError(
      'TOKEN_MALFORMED',
      'service-account token subject is not system:serviceaccount:<namespace>:<name>',
    );
  }
  return workloadId(trustDomain, match[1] as string, match[2] as string);
}

// A compact JWS is `header.payload.signature`, each part base64url; the
// payload is a JSON object. Decoding it needs no JOSE library (the agent
// would load one only for this), and nothing here is trusted: the CA verifies.
function jwtPayloadOf(token: string): Record<string, unknown> {
  const parts = token.split('.');
  if (parts.length !== 3 || !/^[\w-]+$/.test(parts[1] ?? '')) {
    throw new Error('not a compact JWS of three base64url parts');
  }
  const payload: unknown = JSON.parse(
    Buffer.from(parts[1] as string, 'base64url').toString('utf8'),
  );
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw new Error('JWT payload is not a JSON object');
  }
  return payload as Record<string, unknown>;
}
