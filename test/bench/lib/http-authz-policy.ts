// The HTTP-mode policy of the bench's `http-authz` scenario: an ES256 signing
// key made here with jose, its public half written as a JWKS file, a policy
// file whose `http` section trusts that file and requires a scope on every
// GET of `/`, and one access token carrying the scope for wrk to send.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

/** The `iss` the policy expects and the bench's tokens carry. */
const BENCH_ISSUER = 'https://issuer.bench.local';

/** The audience the policy accepts. */
const BENCH_AUDIENCE = 'bench-app';

/** The scope the policy's rule requires. */
export const BENCH_SCOPE = 'bench.read';

/** Key id of the bench's signing key, named in the token header and the JWKS. */
const BENCH_KID = 'bench-key-1';

/** Lifetime of the bench's token, in seconds: far longer than any run. */
const TOKEN_TTL_SECONDS = 3600;

/** What the scenario needs: the policy to start the agent with and the token to send. */
export interface HttpAuthzPolicy {
  /** Path of the YAML policy file, for `--policy-file`. */
  policyFile: string;
  /** Path of the JWKS file the policy names. */
  jwksFile: string;
  /** A signed access token carrying {@link BENCH_SCOPE}. */
  token: string;
}

/**
 * Makes a fresh ES256 key, writes `jwks.json` and `http-policy.yaml` into
 * `dir`, and signs a token that the policy accepts. `allowedPeerId` is the
 * one peer the policy's allow list admits (agent A).
 */
export async function writeHttpAuthzPolicy(
  dir: string,
  allowedPeerId: string,
): Promise<HttpAuthzPolicy> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const publicJwk = { ...(await exportJWK(publicKey)), kid: BENCH_KID, alg: 'ES256', use: 'sig' };
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, `${JSON.stringify({ keys: [publicJwk] })}\n`);

  const policyFile = join(dir, 'http-policy.yaml');
  writeFileSync(
    policyFile,
    [
      `allow: [${JSON.stringify(allowedPeerId)}]`,
      'http:',
      '  jwt:',
      `    issuer: ${JSON.stringify(BENCH_ISSUER)}`,
      `    audience: ${JSON.stringify(BENCH_AUDIENCE)}`,
      `    jwks: ${JSON.stringify(jwksFile)}`,
      '  rules:',
      `    - { methods: [GET], path: /, scopes: [${BENCH_SCOPE}] }`,
      '',
    ].join('\n'),
  );

  const nowSeconds = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({
    sub: 'bench-user',
    client_id: 'bench-client',
    scope: BENCH_SCOPE,
  })
    .setProtectedHeader({ alg: 'ES256', kid: BENCH_KID })
    .setIssuer(BENCH_ISSUER)
    .setAudience(BENCH_AUDIENCE)
    .setIssuedAt(nowSeconds)
    .setExpirationTime(nowSeconds + TOKEN_TTL_SECONDS)
    .sign(privateKey);
  return { policyFile, jwksFile, token };
}
