import { parseDurationSeconds } from '../../certs/duration.js';
import { compilePattern, describeValue, type IdentityPattern } from '../../certs/policy/index.js';

/** Clock skew allowed on `exp` and `nbf` when the policy names none, in seconds. */
export const DEFAULT_JWT_CLOCK_SKEW_SECONDS = 30;

/** Largest clock skew a policy may allow, in seconds; more would stretch every token's life. */
export const MAX_JWT_CLOCK_SKEW_SECONDS = 300;

const SECTION_KEYS = new Set(['jwt', 'rules', 'ports']);
const JWT_KEYS = new Set(['issuer', 'audience', 'jwks', 'clockSkew']);
const RULE_KEYS = new Set(['methods', 'path', 'prefix', 'peers', 'scopes', 'clients', 'anonymous']);

/** Highest TCP port number. */
const MAX_PORT = 65535;

// RFC 9110 5.6.2 token characters: what a method name may be made of.
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Z]+$/;

// A scope token per RFC 6749 3.3: printable ASCII except space, `"` and `\`.
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/** Where access tokens come from and what they must say (the policy's `http.jwt`). */
export interface JwtSettings {
  /** The exact `iss` a token must carry. */
  readonly issuer: string;
  /** Audiences accepted; a token's `aud` must include one of them. */
  readonly audience: readonly string[];
  /** The issuer's keys: a JWKS file path or an http(s) URL. */
  readonly jwks: string;
  /** Allowance on `exp` and `nbf`, in seconds. */
  readonly clockSkewSeconds: number;
}

/** One request rule; a request is matched against rules in written order. */
export interface HttpRule {
  /** `rules[<index>]`, how decisions, logs and `/why` name the rule. */
  readonly name: string;
  /** Upper-case methods matched; undefined matches any method. */
  readonly methods: readonly string[] | undefined;
  /** The path matched, always starting with `/`. */
  readonly path: string;
  /** When true, `path` also matches everything below it (whole segments only). */
  readonly prefix: boolean;
  /** Peer identities the rule applies to; undefined applies to any peer. */
  readonly peers: readonly IdentityPattern[] | undefined;
  /** Scopes the token must all carry. */
  readonly scopes: readonly string[];
  /** Client ids (`client_id` or `azp`) of which the token must carry one; undefined allows any. */
  readonly clients: readonly string[] | undefined;
  /** When true, the request needs no token at all (health checks). */
  readonly anonymous: boolean;
}

/** The validated `http` section of a policy: token settings and request rules. */
export interface HttpSection {
  /** Token settings; undefined only when every rule is anonymous. */
  readonly jwt: JwtSettings | undefined;
  readonly rules: readonly HttpRule[];
  /**
   * Application ports whose connections go through the HTTP stage; the
   * others keep the raw splice. Undefined means every inbound port.
   */
  readonly ports: readonly number[] | undefined;
}

/** A validated section, or every problem prefixed with its place (`http.rules[1].path`). */
export type HttpSectionResult =
  { ok: true; section: HttpSection } | { ok: false; problems: string[] };

/**
 * Validates the raw `http` value of a policy document and compiles its peer
 * patterns against `trustDomain`. Unknown keys, wrong types, relative paths,
 * a rule that needs a token without a `jwt` block, and an anonymous rule that
 * also asks for scopes or clients are all problems; none throws.
 */
export function checkHttpSection(value: unknown, trustDomain: string): HttpSectionResult {
  if (!isMapping(value))
    return { ok: false, problems: ['http: must be a mapping of jwt, rules and ports'] };
  const problems: string[] = [];
  problems.push(...unknownKeys(value, SECTION_KEYS, 'http'));

  const jwt = value['jwt'] === undefined ? undefined : checkJwt(value['jwt'], problems);
  const rawRules = value['rules'];
  const rules: HttpRule[] = [];
  if (!Array.isArray(rawRules) || rawRules.length === 0) {
    problems.push(
      'http.rules: must be a non-empty list of rules (no rule would deny every request)',
    );
  } else {
    rawRules.forEach((raw: unknown, i) => {
      const rule = checkRule(raw, i, trustDomain, problems);
      if (rule === undefined) return;
      if (!rule.anonymous && value['jwt'] === undefined) {
        problems.push(`http.rules[${i}]: needs a token, so http.jwt must be given`);
      }
      rules.push(rule);
    });
  }

  const ports = checkPorts(value['ports'], problems);

  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, section: Object.freeze({ jwt, rules: Object.freeze(rules), ports }) };
}

/** Whether connections to application port `appPort` go through the HTTP stage under `section`. */
export function judgesPort(section: HttpSection | undefined, appPort: number): boolean {
  if (section === undefined) return false;
  return section.ports === undefined || section.ports.includes(appPort);
}

/**
 * The http section as flags, environment or annotations carry it: each field
 * is the text of one setting. `rules` is a JSON array in the policy file's
 * `rules` shape; `audience` and `ports` are comma lists.
 */
export interface HttpSettingsText {
  readonly issuer?: string | undefined;
  readonly audience?: string | undefined;
  readonly jwks?: string | undefined;
  readonly rules?: string | undefined;
  readonly ports?: string | undefined;
}

/** Which setting of {@link HttpSettingsText} a problem of {@link httpSectionFromText} is about. */
export type HttpSettingName = keyof HttpSettingsText;

/** One problem of an http section built from settings, with the setting that carried it. */
export interface HttpSettingProblem {
  readonly setting: HttpSettingName;
  readonly problem: string;
}

/** Either a validated section or every problem, each tied to its setting. */
export type HttpSettingsResult =
  { ok: true; section: HttpSection } | { ok: false; problems: readonly HttpSettingProblem[] };

/**
 * Builds the raw `http` value from setting texts and validates it with
 * {@link checkHttpSection}, so flags, environment and annotations accept
 * exactly what a policy file does. Returns undefined when no setting is
 * given (no http section); the jwt block is built when any of issuer,
 * audience or jwks is given, and then the missing ones are problems.
 */
export function httpSectionFromText(
  text: HttpSettingsText,
  trustDomain: string,
): HttpSettingsResult | undefined {
  const given = (v: string | undefined) => v !== undefined && v.trim() !== '';
  const { issuer, audience, jwks, rules, ports } = text;
  if (![issuer, audience, jwks, rules, ports].some(given)) return undefined;

  const problems: HttpSettingProblem[] = [];
  const raw: Record<string, unknown> = {};
  if ([issuer, audience, jwks].some(given)) {
    raw['jwt'] = {
      issuer: given(issuer) ? issuer?.trim() : undefined,
      audience: given(audience) ? splitList(audience as string) : undefined,
      jwks: given(jwks) ? jwks?.trim() : undefined,
    };
  }
  if (given(rules)) {
    try {
      raw['rules'] = JSON.parse(rules as string) as unknown;
    } catch (err) {
      problems.push({
        setting: 'rules',
        problem: `http.rules: not valid JSON (${(err as Error).message})`,
      });
      // A placeholder keeps "rules missing" from being reported as well.
      raw['rules'] = [{ path: '/', anonymous: true }];
    }
  }
  if (given(ports)) {
    raw['ports'] = splitList(ports as string).map((p) => (/^\d{1,5}$/.test(p) ? Number(p) : p));
  }
  const checked = checkHttpSection(raw, trustDomain);
  if (!checked.ok) {
    problems.push(...checked.problems.map((problem) => ({ setting: settingOf(problem), problem })));
  }
  if (problems.length > 0 || !checked.ok) return { ok: false, problems };
  return { ok: true, section: checked.section };
}

function settingOf(problem: string): HttpSettingName {
  if (problem.startsWith('http.jwt.issuer')) return 'issuer';
  if (problem.startsWith('http.jwt.audience')) return 'audience';
  if (problem.startsWith('http.jwt.jwks')) return 'jwks';
  if (problem.startsWith('http.ports')) return 'ports';
  return 'rules';
}

function checkPorts(value: unknown, problems: string[]): readonly number[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) {
    problems.push(`http.ports: ${describeValue(value)}: must be a non-empty list of TCP ports`);
    return undefined;
  }
  const ports: number[] = [];
  value.forEach((item: unknown, j) => {
    if (typeof item === 'number' && Number.isInteger(item) && item >= 1 && item <= MAX_PORT) {
      if (!ports.includes(item)) ports.push(item);
    } else {
      problems.push(
        `http.ports[${j}]: ${describeValue(item)}: must be a TCP port from 1 to ${MAX_PORT}`,
      );
    }
  });
  return Object.freeze(ports);
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function checkJwt(value: unknown, problems: string[]): JwtSettings | undefined {
  if (!isMapping(value)) {
    problems.push('http.jwt: must be a mapping of issuer, audience, jwks and clockSkew');
    return undefined;
  }
  const before = problems.length;
  problems.push(...unknownKeys(value, JWT_KEYS, 'http.jwt'));

  const issuer = value['issuer'];
  if (typeof issuer !== 'string' || issuer === '') {
    problems.push(`http.jwt.issuer: ${describeValue(issuer)}: must be the issuer's exact iss`);
  }
  const rawAudience = value['audience'];
  const audience = typeof rawAudience === 'string' ? [rawAudience] : rawAudience;
  if (
    !Array.isArray(audience) ||
    audience.length === 0 ||
    audience.some((a) => typeof a !== 'string' || a === '')
  ) {
    problems.push(
      `http.jwt.audience: ${describeValue(rawAudience)}: must be a string or list of strings`,
    );
  }
  const jwks = value['jwks'];
  if (typeof jwks !== 'string' || jwks === '') {
    problems.push(`http.jwt.jwks: ${describeValue(jwks)}: must be a JWKS file path or http(s) URL`);
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(jwks) && !/^https?:\/\//i.test(jwks)) {
    problems.push(`http.jwt.jwks: ${JSON.stringify(jwks)}: only http and https URLs are fetched`);
  }
  let clockSkewSeconds = DEFAULT_JWT_CLOCK_SKEW_SECONDS;
  const skew = value['clockSkew'];
  if (skew !== undefined) {
    try {
      clockSkewSeconds = typeof skew === 'number' ? skew : parseDurationSeconds(String(skew));
      if (!Number.isFinite(clockSkewSeconds) || clockSkewSeconds < 0) throw new Error('negative');
      if (clockSkewSeconds > MAX_JWT_CLOCK_SKEW_SECONDS) {
        problems.push(
          `http.jwt.clockSkew: ${describeValue(skew)}: ` +
            `at most ${MAX_JWT_CLOCK_SKEW_SECONDS} seconds`,
        );
      }
    } catch {
      // The parser's own wording is replaced by one that names the field.
      problems.push(`http.jwt.clockSkew: ${describeValue(skew)}: must be a duration such as 30s`);
    }
  }

  if (problems.length > before) return undefined;
  return Object.freeze({
    issuer: issuer as string,
    audience: Object.freeze([...(audience as string[])]),
    jwks: jwks as string,
    clockSkewSeconds,
  });
}

function checkRule(
  value: unknown,
  i: number,
  trustDomain: string,
  problems: string[],
): HttpRule | undefined {
  const at = `http.rules[${i}]`;
  if (!isMapping(value)) {
    problems.push(`${at}: must be a mapping such as { path: /orders, scopes: [orders.read] }`);
    return undefined;
  }
  const before = problems.length;
  problems.push(...unknownKeys(value, RULE_KEYS, at));

  const methods = stringList(value['methods'], `${at}.methods`, problems, (m) =>
    METHOD.test(m) ? undefined : 'must be an upper-case HTTP method such as GET',
  );
  const path = value['path'];
  if (typeof path !== 'string' || !path.startsWith('/')) {
    problems.push(`${at}.path: ${describeValue(path)}: must be a path starting with /`);
  } else if (/[?#]/.test(path) || hasDotSegment(path)) {
    problems.push(`${at}.path: ${JSON.stringify(path)}: must not hold ?, # or . and .. segments`);
  }
  const prefix = flag(value['prefix'], `${at}.prefix`, problems);
  const anonymous = flag(value['anonymous'], `${at}.anonymous`, problems);
  const scopes = stringList(value['scopes'], `${at}.scopes`, problems, (s) =>
    SCOPE.test(s) ? undefined : 'must be one scope token, without spaces',
  );
  const clients = stringList(value['clients'], `${at}.clients`, problems, () => undefined);
  const peerTexts = stringList(value['peers'], `${at}.peers`, problems, () => undefined);
  const peers = peerTexts?.flatMap((text, j) => {
    try {
      return [compilePattern(text, trustDomain)];
    } catch (err) {
      problems.push(`${at}.peers[${j}]: ${(err as Error).message}`);
      return [];
    }
  });
  if (anonymous && (scopes !== undefined || clients !== undefined)) {
    problems.push(`${at}: an anonymous rule cannot also require scopes or clients`);
  }

  if (problems.length > before) return undefined;
  return Object.freeze({
    name: `rules[${i}]`,
    methods: methods && Object.freeze(methods),
    path: path as string,
    prefix,
    peers: peers && Object.freeze(peers),
    scopes: Object.freeze(scopes ?? []),
    clients: clients && Object.freeze(clients),
    anonymous,
  });
}

function stringList(
  value: unknown,
  at: string,
  problems: string[],
  check: (item: string) => string | undefined,
): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) {
    problems.push(`${at}: ${describeValue(value)}: must be a non-empty list`);
    return undefined;
  }
  const items: string[] = [];
  value.forEach((item: unknown, j) => {
    const problem = typeof item === 'string' && item !== '' ? check(item) : 'must be a string';
    if (problem !== undefined) problems.push(`${at}[${j}]: ${describeValue(item)}: ${problem}`);
    else items.push(item as string);
  });
  return items;
}

function flag(value: unknown, at: string, problems: string[]): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean')
    problems.push(`${at}: ${describeValue(value)}: must be true or false`);
  return value === true;
}

function unknownKeys(value: Record<string, unknown>, known: Set<string>, at: string): string[] {
  return Object.keys(value)
    .filter((key) => !known.has(key))
    .map((key) => `${at}.${key}: unknown key (known: ${[...known].join(', ')})`);
}

function hasDotSegment(path: string): boolean {
  return path.split('/').some((s) => s === '.' || s === '..');
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
