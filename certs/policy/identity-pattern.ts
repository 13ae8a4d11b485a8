import { parseSpiffeId } from '../spiffe-id.js';
import { errorMessage } from '../errors.js';
import { PolicyError } from './policy-error.js';

const SCHEME = 'spiffe://';
const WILDCARD = '*';
const SLASH = 0x2f;

// Stands in for a `*` segment while the rest of the pattern is checked by the
// SPIFFE ID parser; any valid path segment would do.
const WILDCARD_STAND_IN = '_';

/** A compiled allow-list entry: an exact SPIFFE ID or one with `*` segments. */
export interface IdentityPattern {
  /** The pattern as the operator wrote it; decisions and logs quote it. */
  readonly text: string;
  /** The full form, `spiffe://<td>/...`, relative patterns resolved against the trust domain. */
  readonly canonical: string;
  /** Returns whether `spiffeId` (already verified, e.g. from a peer certificate) matches. */
  matches(spiffeId: string): boolean;
}

/**
 * Compiles one allow-list pattern. Accepted forms: a full SPIFFE ID
 * (`spiffe://td/ns/shop/sa/web`), a path relative to `trustDomain`
 * (`ns/shop/sa/web`), and either with `*` as whole segments: a `*` in the
 * middle matches exactly one segment, a trailing `*` one or more. Throws
 * PolicyError POLICY_INVALID naming the pattern when it is none of these.
 */
export function compilePattern(text: string, trustDomain: string): IdentityPattern {
  const problem = checkPattern(text, trustDomain);
  if (problem !== undefined) {
    throw new PolicyError('POLICY_INVALID', `${JSON.stringify(text)}: ${problem}`);
  }

  const canonical = isFullForm(text) ? text : `${SCHEME}${trustDomain}/${text}`;
  // Everything before the first `*` is compared as one literal prefix, which
  // settles most peers, and all of a pattern that only ends in `*`.
  const rest = canonical.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const segments = rest.slice(slash + 1).split('/');
  const firstWildcard = segments.indexOf(WILDCARD);
  if (firstWildcard === -1) {
    return Object.freeze({ text, canonical, matches: (id: string) => id === canonical });
  }
  const literal = `${SCHEME}${rest.slice(0, slash)}/${segments
    .slice(0, firstWildcard)
    .map((s) => `${s}/`)
    .join('')}`;
  const tail = segments.slice(firstWildcard);
  const matches =
    tail.length === 1
      ? (id: string) =>
          id.length > literal.length &&
          id.charCodeAt(literal.length) !== SLASH &&
          hasPrefixAt(id, literal, 0)
      : (id: string) => hasPrefixAt(id, literal, 0) && matchSegments(id, literal.length, tail);
  return Object.freeze({ text, canonical, matches });
}

/**
 * Returns why `text` is not a valid pattern, or undefined when it is one.
 * Full forms go through the SPIFFE ID parser with each `*` segment replaced by
 * a valid stand-in, so a pattern obeys exactly the rules of the IDs it matches.
 */
function checkPattern(text: string, trustDomain: string): string | undefined {
  if (typeof text !== 'string' || text.length === 0) return 'pattern is empty';
  if (!isFullForm(text) && text.startsWith('/')) {
    return "a relative pattern must not start with '/' (write ns/<namespace>/...)";
  }

  const full = isFullForm(text) ? text : `${SCHEME}${trustDomain}/${text}`;
  const schemeEnd = full.indexOf('//') + 2;
  const pathStart = full.indexOf('/', schemeEnd);
  if (full.toLowerCase().startsWith(SCHEME) && pathStart === -1) {
    return `names a trust domain, not a workload (write ${full}/* to allow all of it)`;
  }

  const head = full.slice(0, pathStart + 1);
  const segments = full.slice(pathStart + 1).split('/');
  for (const segment of segments) {
    if (segment !== WILDCARD && segment.includes(WILDCARD)) {
      return `'*' must be a whole segment, as in ns/shop/*: ${JSON.stringify(segment)}`;
    }
  }
  const standIn = head + segments.map((s) => (s === WILDCARD ? WILDCARD_STAND_IN : s)).join('/');
  try {
    parseSpiffeId(standIn);
  } catch (err) {
    // The parser quotes the ID it saw, which the caller already names.
    const message = errorMessage(err).replaceAll(JSON.stringify(standIn), JSON.stringify(text));
    const quoted = `: ${JSON.stringify(text)}`;
    return message.endsWith(quoted) ? message.slice(0, -quoted.length) : message;
  }
  return undefined;
}

function isFullForm(text: string): boolean {
  return text.toLowerCase().startsWith('spiffe:');
}

/**
 * Walks `id` from `pos` segment by segment against the pattern's remaining
 * segments without splitting it, so a match allocates nothing. A trailing `*`
 * takes one or more segments, any other `*` exactly one.
 */
function matchSegments(id: string, start: number, segments: readonly string[]): boolean {
  const last = segments.length - 1;
  let pos = start;
  for (let i = 0; i <= last; i++) {
    const segment = segments[i] as string;
    const slash = id.indexOf('/', pos);
    const end = slash === -1 ? id.length : slash;
    if (end === pos) return false;
    if (i === last && segment === WILDCARD) return true;
    if (segment !== WILDCARD && (end - pos !== segment.length || !hasPrefixAt(id, segment, pos))) {
      return false;
    }
    if (slash === -1) return i === last;
    pos = slash + 1;
  }
  return false;
}

/**
 * Returns whether `text` holds `prefix` at `pos`. Compares from the end, where
 * patterns that share `spiffe://<td>/ns/` differ, and by char code because
 * `String.prototype.startsWith` measured several times slower on Node 20.
 */
export function hasPrefixAt(text: string, prefix: string, pos: number): boolean {
  if (text.length - pos < prefix.length) return false;
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (text.charCodeAt(pos + i) !== prefix.charCodeAt(i)) return false;
  }
  return true;
}
