import { parseDurationSeconds } from '../../certs/duration.js';
import { errorMessage } from '../../certs/errors.js';
import { LOG_LEVELS, type LogLevel } from '../../certs/log.js';
import { parseCidrList, parsePortList } from '../intercept/index.js';
import {
  compilePattern,
  httpSectionFromText,
  type HttpSettingName,
  type HttpSettingsText,
} from '../policy/index.js';

/** Prefix of every annotation Palisade reads or writes. */
export const ANNOTATION_PREFIX = 'palisade.dev/';

/** Marker written on an injected pod: its value is the Palisade version that injected it. */
export const INJECTED_ANNOTATION = 'palisade.dev/injected';

/** Namespace label that turns injection on (`enabled`) or off (`disabled`) for a namespace. */
export const INJECT_LABEL = 'palisade.dev/inject';

/** One documented annotation: key, meaning, default and accepted format. */
export interface AnnotationSpec {
  key: string;
  meaning: string;
  defaultValue: string;
  format: string;
}

/** Every `palisade.dev/` annotation, in the order the README lists them. */
export const ANNOTATION_TABLE: readonly AnnotationSpec[] = [
  {
    key: 'palisade.dev/inject',
    meaning:
      'inject the agent into this pod or not; wins over the namespace label of the same name',
    defaultValue: 'the namespace label; `palisade inject` injects unless disabled',
    format: '`enabled` or `disabled`',
  },
  {
    key: 'palisade.dev/allow',
    meaning: 'identities allowed to connect inbound (`PALISADE_ALLOW`); all others are denied',
    defaultValue: 'unset: every identity of the trust domain',
    format: 'comma list of SPIFFE IDs or patterns (`ns/shop/sa/web`, `ns/shop/*`)',
  },
  {
    key: 'palisade.dev/mode',
    meaning: 'inbound mode (`PALISADE_MODE`): mTLS only, or mTLS and plaintext',
    defaultValue: 'the mesh default mode (`--default-mode`, strict)',
    format: '`strict` or `permissive`',
  },
  {
    key: 'palisade.dev/inbound-ports',
    meaning:
      'application ports routed through the agent; declared container ports not listed are skipped',
    defaultValue: 'unset: every inbound port',
    format: 'comma list of TCP ports',
  },
  {
    key: 'palisade.dev/skip-inbound-ports',
    meaning: 'inbound ports left alone by the init step (reach the application directly)',
    defaultValue: 'none',
    format: 'comma list of TCP ports',
  },
  {
    key: 'palisade.dev/skip-outbound-ports',
    meaning: 'destination ports the application reaches directly, not through the agent',
    defaultValue: 'none',
    format: 'comma list of TCP ports',
  },
  {
    key: 'palisade.dev/skip-outbound-cidrs',
    meaning: 'destination blocks the application reaches directly, not through the agent',
    defaultValue: 'none',
    format: 'comma list of CIDR blocks (`169.254.169.254/32`, `fd00::/8`)',
  },
  {
    key: 'palisade.dev/cert-ttl',
    meaning: 'certificate lifetime the agent asks for (`PALISADE_CERT_TTL`); the CA clamps it',
    defaultValue: "the CA's default lifetime",
    format: 'duration (`30m`, `1h`, `1d`)',
  },
  {
    key: 'palisade.dev/log-level',
    meaning: "the agent's log level (`PALISADE_LOG_LEVEL`)",
    defaultValue: 'info',
    format: LOG_LEVELS.join(', '),
  },
  {
    key: 'palisade.dev/jwt-issuer',
    meaning:
      'HTTP mode: the exact `iss` access tokens must carry ' +
      '(`PALISADE_JWT_ISSUER`); needs `http-rules`',
    defaultValue: 'unset: no token checks',
    format: 'the issuer URL or name',
  },
  {
    key: 'palisade.dev/jwt-audience',
    meaning: "HTTP mode: audiences accepted in a token's `aud` (`PALISADE_JWT_AUDIENCE`)",
    defaultValue: 'unset (required with `jwt-issuer`)',
    format: 'comma list of audiences',
  },
  {
    key: 'palisade.dev/jwt-jwks',
    meaning: "HTTP mode: the token issuer's keys (`PALISADE_JWT_JWKS`)",
    defaultValue: 'unset (required with `jwt-issuer`)',
    format: 'JWKS file path in the pod, or http(s) URL',
  },
  {
    key: 'palisade.dev/http-rules',
    meaning:
      'HTTP mode: request rules, first match wins, no match denies ' +
      '(`PALISADE_HTTP_RULES`); turns HTTP mode on',
    defaultValue: 'unset: connections are spliced raw',
    format:
      "JSON array in the policy file's `http.rules` shape " +
      '(`[{"path":"/healthz","anonymous":true}]`)',
  },
  {
    key: 'palisade.dev/http-ports',
    meaning:
      'HTTP mode: application ports whose requests are judged; other ports ' +
      'are spliced raw (`PALISADE_HTTP_PORTS`)',
    defaultValue: 'unset: every inbound port',
    format: 'comma list of TCP ports',
  },
  {
    key: 'palisade.dev/proxy-cpu-request',
    meaning: "the agent container's CPU request",
    defaultValue: '50m',
    format: 'Kubernetes quantity (`100m`, `0.5`)',
  },
  {
    key: 'palisade.dev/proxy-cpu-limit',
    meaning: "the agent container's CPU limit",
    defaultValue: 'none (throttling adds latency to every connection)',
    format: 'Kubernetes quantity',
  },
  {
    key: 'palisade.dev/proxy-memory-request',
    meaning: "the agent container's memory request",
    defaultValue: '64Mi',
    format: 'Kubernetes quantity (`64Mi`, `1Gi`)',
  },
  {
    key: 'palisade.dev/proxy-memory-limit',
    meaning: "the agent container's memory limit",
    defaultValue: '256Mi',
    format: 'Kubernetes quantity',
  },
  {
    key: INJECTED_ANNOTATION,
    meaning:
      'written by the injector: the version that injected the pod; makes injection idempotent',
    defaultValue: 'set by Palisade, not by hand',
    format: 'version',
  },
];

/** Agent resources used when the annotations do not say otherwise. */
export const DEFAULT_PROXY_RESOURCES = {
  cpuRequest: '50m',
  cpuLimit: undefined,
  memoryRequest: '64Mi',
  memoryLimit: '256Mi',
} as const;

/** A pod's `palisade.dev/` annotations, validated. Unset keys are `undefined` or empty. */
export interface PodAnnotations {
  inject: 'enabled' | 'disabled' | undefined;
  allow: readonly string[];
  mode: 'strict' | 'permissive' | undefined;
  inboundPorts: readonly number[] | undefined;
  skipInboundPorts: readonly number[];
  skipOutboundPorts: readonly number[];
  skipOutboundCidrs: readonly string[];
  certTtl: string | undefined;
  logLevel: LogLevel | undefined;
  /**
   * The HTTP-mode settings as written (trimmed), already validated as one
   * http section; undefined when no `jwt-*` or `http-*` key is set.
   */
  http: HttpSettingsText | undefined;
  proxy: {
    cpuRequest: string | undefined;
    cpuLimit: string | undefined;
    memoryRequest: string | undefined;
    memoryLimit: string | undefined;
  };
}

/** The outcome of reading a pod's annotations: the values, or every problem in one reason. */
export type AnnotationParse =
  { ok: true; value: PodAnnotations } | { ok: false; reason: string; problems: readonly string[] };

// A Kubernetes resource quantity: a decimal number with an optional binary
// (Ki..Ei), decimal (n, u, m, k..E) or exponent suffix.
const QUANTITY = /^(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$/;
const KNOWN_KEYS = new Set(ANNOTATION_TABLE.map((spec) => spec.key));

/**
 * Validates every `palisade.dev/` annotation of a pod at once. An unknown
 * key under the prefix is a problem too: a misspelt `allow` would otherwise
 * leave the pod open to the whole trust domain. Other annotations are ignored.
 */
export function parseAnnotations(
  annotations: Readonly<Record<string, string>> | undefined,
  trustDomain: string,
): AnnotationParse {
  const all = annotations ?? {};
  const problems: string[] = [];
  const read = <T>(name: string, parse: (text: string) => T): T | undefined => {
    const key = `${ANNOTATION_PREFIX}${name}`;
    const text = all[key];
    if (text === undefined) return undefined;
    try {
      return parse(String(text).trim());
    } catch (err) {
      problems.push(`${key}=${JSON.stringify(text)}: ${errorMessage(err)}`);
      return undefined;
    }
  };

  for (const key of Object.keys(all).sort()) {
    if (key.startsWith(ANNOTATION_PREFIX) && !KNOWN_KEYS.has(key)) {
      problems.push(`${key}=${JSON.stringify(all[key])}: unknown annotation`);
    }
  }
  const inject = read('inject', (v) => oneOf(v, ['enabled', 'disabled'] as const));
  const allow = read('allow', (v) => {
    const patterns = splitList(v);
    if (patterns.length === 0) throw new Error('must name at least one identity');
    for (const pattern of patterns) compilePattern(pattern, trustDomain);
    return patterns;
  });
  const mode = read('mode', (v) => oneOf(v, ['strict', 'permissive'] as const));
  const inboundPorts = read('inbound-ports', nonEmpty(parsePortList));
  const skipInboundPorts = read('skip-inbound-ports', parsePortList);
  const skipOutboundPorts = read('skip-outbound-ports', parsePortList);
  const skipOutboundCidrs = read('skip-outbound-cidrs', (v) =>
    parseCidrList(v).map((cidr) => cidr.text),
  );
  const certTtl = read('cert-ttl', (v) => {
    if (!(parseDurationSeconds(v) > 0)) throw new Error('must be longer than zero');
    return v;
  });
  const logLevel = read('log-level', (v) => oneOf(v, LOG_LEVELS));
  const http = readHttp(all, trustDomain, problems);
  const quantity = (v: string) => {
    if (!QUANTITY.test(v)) throw new Error('must be a Kubernetes quantity such as 100m or 64Mi');
    return v;
  };
  const proxy = {
    cpuRequest: read('proxy-cpu-request', quantity),
    cpuLimit: read('proxy-cpu-limit', quantity),
    memoryRequest: read('proxy-memory-request', quantity),
    memoryLimit: read('proxy-memory-limit', quantity),
  };
  checkRequestWithinLimit(problems, 'cpu', proxy.cpuRequest, proxy.cpuLimit);
  checkRequestWithinLimit(problems, 'memory', proxy.memoryRequest, proxy.memoryLimit);

  if (problems.length > 0) return { ok: false, reason: problems.join('; '), problems };
  return {
    ok: true,
    value: {
      inject,
      allow: allow ?? [],
      mode,
      inboundPorts,
      skipInboundPorts: skipInboundPorts ?? [],
      skipOutboundPorts: skipOutboundPorts ?? [],
      skipOutboundCidrs: skipOutboundCidrs ?? [],
      certTtl,
      logLevel,
      http,
      proxy,
    },
  };
}

/** The annotation that carries each http setting. */
const HTTP_ANNOTATIONS: Readonly<Record<HttpSettingName, string>> = {
  issuer: `${ANNOTATION_PREFIX}jwt-issuer`,
  audience: `${ANNOTATION_PREFIX}jwt-audience`,
  jwks: `${ANNOTATION_PREFIX}jwt-jwks`,
  rules: `${ANNOTATION_PREFIX}http-rules`,
  ports: `${ANNOTATION_PREFIX}http-ports`,
};

/**
 * Reads the `jwt-*` and `http-*` annotations and validates them together as
 * the agent will (the policy's checkHttpSection), so a pod the agent would
 * refuse to start is refused at admission instead.
 */
function readHttp(
  all: Readonly<Record<string, string>>,
  trustDomain: string,
  problems: string[],
): HttpSettingsText | undefined {
  const texts: Partial<Record<HttpSettingName, string>> = {};
  for (const [setting, key] of Object.entries(HTTP_ANNOTATIONS) as [HttpSettingName, string][]) {
    const text = all[key];
    if (text !== undefined) texts[setting] = String(text).trim();
  }
  const result = httpSectionFromText(texts, trustDomain);
  if (result === undefined) return undefined;
  if (!result.ok) {
    for (const { setting, problem } of result.problems) {
      const key = HTTP_ANNOTATIONS[setting];
      problems.push(`${key}=${JSON.stringify(all[key] ?? '')}: ${problem}`);
    }
    return undefined;
  }
  return Object.freeze(texts);
}

/** The value of a Kubernetes quantity in base units (cores, bytes). */
export function quantityValue(text: string): number {
  const match = QUANTITY.exec(text);
  if (!match) return NaN;
  const base = Number(match[1]);
  const suffix = match[3] ?? '';
  if (/^[eE]/.test(suffix)) return base * 10 ** Number(suffix.slice(1));
  const binary = ['Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'].indexOf(suffix);
  if (binary >= 0) return base * 1024 ** (binary + 1);
  const decimal: Record<string, number> = {
    '': 1,
    n: 1e-9,
    u: 1e-6,
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    P: 1e15,
    E: 1e18,
  };
  return base * (decimal[suffix] ?? NaN);
}

function checkRequestWithinLimit(
  problems: string[],
  resource: string,
  request: string | undefined,
  limit: string | undefined,
): void {
  if (request === undefined || limit === undefined) return;
  if (quantityValue(request) > quantityValue(limit)) {
    problems.push(
      `${ANNOTATION_PREFIX}proxy-${resource}-request=${JSON.stringify(request)}: must not exceed ${ANNOTATION_PREFIX}proxy-${resource}-limit (${limit})`,
    );
  }
}

function oneOf<T extends string>(text: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(text)) {
    const names = choices.length === 2 ? choices.join(' or ') : `one of ${choices.join(', ')}`;
    throw new Error(`must be ${names}`);
  }
  return text as T;
}

function nonEmpty<T>(parse: (text: string) => T[]): (text: string) => T[] {
  return (text) => {
    const values = parse(text);
    if (values.length === 0) throw new Error('must not be empty');
    return values;
  };
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
