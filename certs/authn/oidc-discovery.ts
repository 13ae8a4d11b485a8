import fs from 'node:fs/promises';
import https from 'node:https';

import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';

import { PalisadeError, errorMessage } from '../errors.js';

/** The `--sa-jwks` values that mean: discover the keys from the API server. */
export const JWKS_DISCOVERY_VALUES: readonly string[] = ['kubernetes', 'oidc'];

/** Where the API server is reached from inside a pod when the environment says nothing. */
export const DEFAULT_API_SERVER_URL = 'https://kubernetes.default.svc';

/** The pod's own service-account token, sent as the bearer credential. */
export const DEFAULT_SA_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** The cluster CA that signs the API server's serving certificate. */
export const DEFAULT_SA_CA_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt';

/** Longest a fetched key set is used before it is fetched again, in milliseconds. */
export const DEFAULT_JWKS_MAX_AGE_MS = 10 * 60_000;

/** Shortest gap between two fetches forced by an unknown `kid` or a failure, in milliseconds. */
export const DEFAULT_JWKS_COOLDOWN_MS = 30_000;

const FETCH_TIMEOUT_MS = 5000;
const API_SERVER_JWKS_PATH = '/openid/v1/jwks';
const MAX_DOCUMENT_BYTES = 256 * 1024;

/** Settings of a KubernetesJwks source; every field has an in-cluster default. */
export interface KubernetesJwksOptions {
  /** API server base URL; default `https://kubernetes.default.svc`. */
  apiServerUrl?: string;
  /** File holding the bearer token; re-read on every fetch, as the kubelet rotates it. */
  tokenFile?: string;
  /** PEM file of the CA that signs the API server's certificate. */
  caFile?: string;
  /** Age after which the keys are fetched again; default 10 minutes. */
  maxAgeMs?: number;
  /** Shortest gap between fetches caused by an unknown key or a failure; default 30 s. */
  cooldownMs?: number;
  /** Per-request timeout; default 5 s. */
  timeoutMs?: number;
  /** Clock in milliseconds since the epoch, injectable for tests. */
  nowMs?: () => number;
}

type KeyArgs = Parameters<JWTVerifyGetKey>;

interface LoadedKeys {
  issuer: string;
  keys: JWTVerifyGetKey;
  fetchedAtMs: number;
}

/** True when a `--sa-jwks` value asks for discovery rather than naming a file or URL. */
export function isJwksDiscovery(jwks: string): boolean {
  return JWKS_DISCOVERY_VALUES.includes(jwks.trim().toLowerCase());
}

/**
 * The API server URL a pod should use, from `KUBERNETES_SERVICE_HOST` and
 * `KUBERNETES_SERVICE_PORT` when both the host is set, else the default.
 * Pure: the environment comes in.
 */
export function apiServerUrlFromEnv(env: Readonly<Record<string, string | undefined>>): string {
  const host = env.KUBERNETES_SERVICE_HOST?.trim();
  if (!host) return DEFAULT_API_SERVER_URL;
  const port = env.KUBERNETES_SERVICE_PORT?.trim() || '443';
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * The service-account issuer's keys, found by OIDC discovery on the API
 * server: GET `/.well-known/openid-configuration` with the pod's bearer
 * token and the cluster CA, then its `jwks_uri` the same way (from the API
 * server's `/openid/v1/jwks` when `jwks_uri` names another origin, so the
 * token never leaves the API server). The keys are cached,
 * fetched again after `maxAgeMs` and when a token names an unknown `kid`
 * (at most once per `cooldownMs`); a failed fetch keeps the last good keys.
 * Fetch failures throw PalisadeError JWKS_UNAVAILABLE naming the URL and
 * the status.
 */
export class KubernetesJwks {
  readonly #apiServer: URL;
  readonly #tokenFile: string;
  readonly #caFile: string;
  readonly #maxAgeMs: number;
  readonly #cooldownMs: number;
  readonly #timeoutMs: number;
  readonly #nowMs: () => number;
  #loaded: LoadedKeys | undefined;
  #lastAttemptMs = Number.NEGATIVE_INFINITY;
  #inFlight: Promise<void> | undefined;

  /** Validates the options; throws CONFIG_INVALID naming each bad one. Does no I/O. */
  constructor(opts: KubernetesJwksOptions = {}) {
    const problems: string[] = [];
    let apiServer: URL | undefined;
    try {
      apiServer = new URL(opts.apiServerUrl ?? DEFAULT_API_SERVER_URL);
      if (apiServer.protocol !== 'https:') problems.push('apiServerUrl must be https');
    } catch {
      problems.push(`apiServerUrl ${JSON.stringify(opts.apiServerUrl)} is not a URL`);
    }
    const positive = (name: string, value: number) => {
      if (!Number.isFinite(value) || value <= 0) problems.push(`${name} must be positive`);
      return value;
    };
    this.#maxAgeMs = positive('maxAgeMs', opts.maxAgeMs ?? DEFAULT_JWKS_MAX_AGE_MS);
    this.#cooldownMs = positive('cooldownMs', opts.cooldownMs ?? DEFAULT_JWKS_COOLDOWN_MS);
    this.#timeoutMs = positive('timeoutMs', opts.timeoutMs ?? FETCH_TIMEOUT_MS);
    if (problems.length > 0 || !apiServer) {
      throw new PalisadeError('CONFIG_INVALID', `kubernetes jwks: ${problems.join('; ')}`);
    }

    this.#apiServer = apiServer;
    this.#tokenFile = opts.tokenFile ?? DEFAULT_SA_TOKEN_FILE;
    this.#caFile = opts.caFile ?? DEFAULT_SA_CA_FILE;
    this.#nowMs = opts.nowMs ?? Date.now;
  }

  /** The issuer the discovery document names; fetches first if nothing is cached. */
  async issuer(): Promise<string> {
    return (await this.#current()).issuer;
  }

  /**
   * A jose key getter over the cached keys, refreshed first when stale. An
   * unknown `kid` triggers one rate-limited refetch before it is refused.
   */
  async keys(): Promise<JWTVerifyGetKey> {
    await this.#current();
    return (header: KeyArgs[0], token: KeyArgs[1]) => this.#select(header, token);
  }

  async #select(header: KeyArgs[0], token: KeyArgs[1]) {
    const loaded = this.#loaded;
    if (!loaded) throw new PalisadeError('JWKS_UNAVAILABLE', 'no issuer keys are loaded');
    try {
      return await loaded.keys(header, token);
    } catch (err) {
      // A key rotation on the API server shows up as a token whose kid we do
      // not hold yet; refetch, but rate-limited so forged kids cannot make
      // the CA hammer the API server.
      if (!(err instanceof errors.JWKSNoMatchingKey) || !this.#mayAttempt()) throw err;
      await this.#refresh();
      if (this.#loaded === loaded) throw err;
      return (this.#loaded as LoadedKeys).keys(header, token);
    }
  }

  async #current(): Promise<LoadedKeys> {
    const loaded = this.#loaded;
    const isStale = !loaded || this.#nowMs() - loaded.fetchedAtMs >= this.#maxAgeMs;
    if (isStale && (!loaded || this.#mayAttempt())) {
      try {
        await this.#refresh();
      } catch (err) {
        // Keep serving the last good keys through an API server outage.
        if (!loaded) throw err;
      }
    }
    return this.#loaded ?? (loaded as LoadedKeys);
  }

  #mayAttempt(): boolean {
    return this.#nowMs() - this.#lastAttemptMs >= this.#cooldownMs;
  }

  #refresh(): Promise<void> {
    // Concurrent verifications share one fetch.
    this.#inFlight ??= this.#fetch().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #fetch(): Promise<void> {
    this.#lastAttemptMs = this.#nowMs();
    const ca = await readSetting(this.#caFile, 'CA file');
    const token = (await readSetting(this.#tokenFile, 'token file')).trim();

    const discoveryUrl = new URL('/.well-known/openid-configuration', this.#apiServer);
    const discovery = await getJson(discoveryUrl, { ca, token, timeoutMs: this.#timeoutMs });
    const document = (typeof discovery === 'object' && discovery !== null ? discovery : {}) as {
      issuer?: unknown;
      jwks_uri?: unknown;
    };
    const { issuer, jwks_uri: jwksUri } = document;
    if (typeof issuer !== 'string' || issuer === '' || typeof jwksUri !== 'string') {
      throw unavailable(`GET ${discoveryUrl.href}: document lacks issuer or jwks_uri`);
    }
    let advertised: URL;
    try {
      advertised = new URL(jwksUri, this.#apiServer);
    } catch (err) {
      throw unavailable(`GET ${discoveryUrl.href}: jwks_uri is not a URL`, err);
    }

    // The bearer token is the CA's own credential and only ever goes to the
    // API server. A jwks_uri on another origin (the API server's external
    // address, or a public OIDC bucket) is read from the API server instead,
    // which serves the same keys at /openid/v1/jwks whatever it advertises.
    const jwksUrl =
      advertised.origin === this.#apiServer.origin
        ? advertised
        : new URL(API_SERVER_JWKS_PATH, this.#apiServer);
    const jwks = await getJson(jwksUrl, { ca, token, timeoutMs: this.#timeoutMs });
    let keys: JWTVerifyGetKey;
    try {
      keys = createLocalJWKSet(jwks as JSONWebKeySet);
    } catch (err) {
      throw unavailable(`GET ${jwksUrl.href}: not a JWKS: ${errorMessage(err)}`, err);
    }
    this.#loaded = { issuer, keys, fetchedAtMs: this.#nowMs() };
  }
}

async function readSetting(path: string, what: string): Promise<string> {
  try {
    return await fs.readFile(path, 'utf8');
  } catch (err) {
    throw unavailable(`${what} ${path} is unreadable: ${errorMessage(err)}`, err);
  }
}

function getJson(
  url: URL,
  opts: { ca: string; token?: string; timeoutMs: number },
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      url,
      {
        // No pooled connections: fetches are minutes apart and a kept-alive
        // socket would outlive a CA file rotation.
        agent: false,
        ca: opts.ca,
        headers: {
          accept: 'application/json',
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
        },
        timeout: opts.timeoutMs,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          res.resume();
          const hint = status === 401 || status === 403 ? ' (bearer token refused)' : '';
          reject(unavailable(`GET ${url.href}: status ${status}${hint}`));
          return;
        }
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > MAX_DOCUMENT_BYTES) {
            req.destroy(unavailable(`GET ${url.href}: body exceeds ${MAX_DOCUMENT_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (err) => reject(unavailable(`GET ${url.href}: ${errorMessage(err)}`, err)));
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          } catch (err) {
            reject(unavailable(`GET ${url.href}: body is not JSON`, err));
          }
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(unavailable(`GET ${url.href}: no answer within ${opts.timeoutMs} ms`)),
    );
    req.on('error', (err) => {
      if (err instanceof PalisadeError) reject(err);
      else reject(unavailable(`GET ${url.href}: ${errorMessage(err)}`, err));
    });
  });
}

function unavailable(message: string, cause?: unknown): PalisadeError {
  return new PalisadeError('JWKS_UNAVAILABLE', message, cause === undefined ? {} : { cause });
}
