import { createRequire } from 'node:module';

import type { parseDocument as ParseDocument } from 'yaml';

import { invalidPolicy } from './policy-error.js';

// The YAML parser costs megabytes of heap and tens of milliseconds to load,
// and most processes that use policies never read YAML: the agent gets the
// mesh policy as JSON and may have no policy file. So it is loaded on the
// first call, synchronously, so that parsing stays a plain function. Under
// Node, `import 'yaml'` and `require('yaml')` resolve to the same CommonJS
// build, so there is one instance of it whichever way it is reached.

/** Most aliases one document may expand, so a "billion laughs" document stays small. */
const MAX_ALIAS_COUNT = 100;

const requireFromHere = createRequire(import.meta.url);

let parseDocumentOnce: typeof ParseDocument | undefined;

/**
 * Parses a policy document written as YAML or JSON (JSON is YAML) into a
 * plain value, loading the parser on the first call. Throws PolicyError
 * POLICY_INVALID naming `source` and every syntax error; an empty document
 * gives null or undefined, for the caller to refuse in its own words.
 */
export function readYamlValue(text: string, source: string): unknown {
  parseDocumentOnce ??= (requireFromHere('yaml') as { parseDocument: typeof ParseDocument })
    .parseDocument;
  const doc = parseDocumentOnce(text);
  if (doc.errors.length > 0) {
    throw invalidPolicy(
      source,
      doc.errors.map((e) => `not valid YAML or JSON: ${e.message.split('\n', 1)[0] ?? ''}`),
    );
  }
  return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
}
