import { parseAllDocuments, Document } from 'yaml';
import { PalisadeError } from '../../certs/errors.js';
import { injectWorkload, type InjectOptions, type InjectOutcome } from './inject.js';
import type { MeshSettings } from './mesh-settings.js';
import { isObject } from './workloads.js';

/** Injected YAML and one line per workload saying what happened to it. */
export interface InjectManifestsResult {
  yaml: string;
  summary: { name: string; outcome: InjectOutcome }[];
}

/**
 * Runs the injector over every document of a multi-document YAML text.
 * Documents that are not changed are written back as they came, comments
 * included. Throws YAML_INVALID on unparsable input and ANNOTATION_INVALID,
 * naming each workload and each bad annotation, when any is refused.
 */
export function injectManifests(
  text: string,
  settings: MeshSettings,
  options: InjectOptions = {},
): InjectManifestsResult {
  const documents = parseAllDocuments(text);
  if (!Array.isArray(documents)) throw new PalisadeError('YAML_INVALID', 'not a YAML stream');
  const parts: string[] = [];
  const summary: InjectManifestsResult['summary'] = [];
  const refusals: string[] = [];
  for (const doc of documents) {
    if (doc.errors.length > 0) {
      throw new PalisadeError('YAML_INVALID', `invalid YAML: ${doc.errors[0]?.message ?? ''}`);
    }
    const object: unknown = doc.toJS();
    if (!isObject(object)) {
      if (object !== null && object !== undefined) parts.push(doc.toString().replace(/^---\n/, ''));
      continue;
    }
    const name = nameOf(object);
    const result = injectWorkload(object, settings, options);
    if (!result.ok) {
      refusals.push(`${name}: ${result.reason}`);
      continue;
    }
    if (result.outcome !== 'not-a-workload') summary.push({ name, outcome: result.outcome });
    const written =
      result.outcome === 'injected' ? new Document(result.object).toString() : doc.toString();
    // Separators are written once, between documents, whatever the input used.
    parts.push(written.replace(/^---\n/, ''));
  }
  if (refusals.length > 0) {
    throw new PalisadeError('ANNOTATION_INVALID', refusals.join('; '));
  }
  return { yaml: parts.join('---\n'), summary };
}

function nameOf(object: Record<string, unknown>): string {
  const meta = isObject(object.metadata) ? object.metadata : {};
  const ns = typeof meta.namespace === 'string' ? `${meta.namespace}/` : '';
  return `${String(object.kind).toLowerCase()}/${ns}${String(meta.name ?? '')}`;
}
