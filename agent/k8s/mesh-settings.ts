import { PalisadeError, errorMessage } from '../../certs/errors.js';
import { parseMeshPolicyText, PolicyError, type MeshPolicy } from '../../certs/policy/index.js';
import { parseHostPort } from '../../certs/host-port.js';
import { DEFAULT_TRUST_DOMAIN, parseTrustDomain } from '../../certs/spiffe-id.js';
import { parseCidr } from '../intercept/index.js';

/** Namespace every Palisade control-plane object lives in. */
export const SYSTEM_NAMESPACE = 'palisade-system';

/** Image repository of the agent, CA and webhook; the tag is the Palisade version. */
export const IMAGE_REPOSITORY = 'ghcr.io/palisade/palisade';

/** Address agents use to reach the CA inside the cluster. */
export const IN_CLUSTER_CA_ADDR = `palisade-ca.${SYSTEM_NAMESPACE}.svc:15112`;

/** Destinations dialled with mutual TLS unless told otherwise: the private IPv4 ranges. */
export const DEFAULT_MESH_CIDRS: readonly string[] = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
];

/** Settings that hold for the whole mesh, shared by `inject`, `webhook` and `install`. */
export interface MeshSettings {
  readonly trustDomain: string;
  /** CA gRPC address written into every agent's `PALISADE_CA_ADDR`. */
  readonly caAddr: string;
  /** Image of the init step and the agent. */
  readonly image: string;
  /** The Palisade version, written as the `palisade.dev/injected` marker. */
  readonly version: string;
  /** Destinations the agents dial with mutual TLS (`PALISADE_MESH_CIDRS`). */
  readonly meshCidrs: readonly string[];
  /** Inbound mode of pods without a `palisade.dev/mode` annotation. */
  readonly defaultMode: 'strict' | 'permissive';
  /**
   * The mesh policy pods are checked against at injection (`--mesh-policy`),
   * with the file it came from; undefined checks nothing beyond annotations.
   */
  readonly meshPolicy: { readonly policy: MeshPolicy; readonly source: string } | undefined;
}

/** Flags that set the mesh settings, as commander hands them over. */
export interface MeshFlags {
  trustDomain?: string;
  caAddr?: string;
  image?: string;
  meshCidrs?: string;
  defaultMode?: string;
  /** Path of a mesh policy document (`--mesh-policy`); read by the command. */
  meshPolicy?: string;
}

/** A mesh policy document's text and where it came from, as the command read it. */
export interface MeshPolicyText {
  readonly text: string;
  readonly source: string;
}

/**
 * Builds the mesh settings from flags over the defaults, and the mesh policy
 * from `meshPolicy` (the text of `--mesh-policy`, read by the caller) with
 * the parser the CA uses. Throws CONFIG_INVALID naming every bad flag and
 * its value, every problem of the mesh policy, and a `--default-mode
 * permissive` that a strict mesh policy forbids.
 */
export function buildMeshSettings(
  flags: MeshFlags,
  version: string,
  meshPolicy?: MeshPolicyText,
): MeshSettings {
  const problems: string[] = [];
  const check = (flag: string, value: string | undefined, parse: (v: string) => unknown) => {
    if (value === undefined) return;
    try {
      parse(value);
    } catch (err) {
      problems.push(`${flag}=${JSON.stringify(value)}: ${errorMessage(err)}`);
    }
  };
  const trustDomain = flags.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  check('--trust-domain', trustDomain, parseTrustDomain);
  const caAddr = flags.caAddr ?? IN_CLUSTER_CA_ADDR;
  check('--ca-addr', caAddr, (v) => parseHostPort(v));
  const image = flags.image ?? `${IMAGE_REPOSITORY}:${version}`;
  check('--image', image, (v) => {
    if (!/^[a-z0-9][\w.\-/:@]*$/i.test(v)) throw new Error('is not an image reference');
  });
  const meshCidrs = flags.meshCidrs
    ? flags.meshCidrs.split(',').map((s) => s.trim())
    : [...DEFAULT_MESH_CIDRS];
  for (const cidr of meshCidrs) check('--mesh-cidrs', cidr, parseCidr);
  const defaultMode = flags.defaultMode ?? 'strict';
  if (defaultMode !== 'strict' && defaultMode !== 'permissive') {
    problems.push(`--default-mode=${JSON.stringify(defaultMode)}: must be strict or permissive`);
  }
  let mesh: MeshSettings['meshPolicy'];
  if (meshPolicy !== undefined) {
    try {
      mesh = {
        policy: parseMeshPolicyText(meshPolicy.text, meshPolicy.source, trustDomain),
        source: meshPolicy.source,
      };
    } catch (err) {
      const found = err instanceof PolicyError ? err.problems : [errorMessage(err)];
      for (const problem of found) {
        problems.push(`--mesh-policy=${JSON.stringify(meshPolicy.source)}: ${problem}`);
      }
    }
  }
  if (mesh?.policy.mode === 'strict' && defaultMode === 'permissive') {
    problems.push(
      `--default-mode="permissive": the mesh policy (${mesh.source}) requires strict (mode: strict)`,
    );
  }
  if (problems.length > 0) {
    throw new PalisadeError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`);
  }
  return Object.freeze({
    trustDomain,
    caAddr,
    image,
    version,
    meshCidrs: Object.freeze(meshCidrs),
    defaultMode: defaultMode as 'strict' | 'permissive',
    meshPolicy: mesh,
  });
}
