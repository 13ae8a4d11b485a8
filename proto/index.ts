// Loads the CA's gRPC contract (ca.proto) at run time and declares the
// TypeScript shape of each message as proto-loader delivers it (camelCase
// fields, 64-bit integers as numbers, defaults filled in). Keep these types in
// step with ca.proto: they are the only hand-kept mirror of it.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** Absolute path of ca.proto; the build copies proto/ next to the compiled code. */
export const CA_PROTO_PATH = fileURLToPath(new URL('./ca.proto', import.meta.url));

/** Options shared by the server and every client, so both see the same shapes. */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  oneofs: true,
};

/** The two services of ca.proto as grpc-js service definitions and client constructors. */
export interface CaServices {
  workload: grpc.ServiceDefinition;
  admin: grpc.ServiceDefinition;
  WorkloadClient: grpc.ServiceClientConstructor;
  AdminClient: grpc.ServiceClientConstructor;
}

let cached: CaServices | undefined;

/** Loads ca.proto once per process and returns its services. */
export function loadCaServices(): CaServices {
  if (cached) return cached;
  const definition = protoLoader.loadSync(CA_PROTO_PATH, LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    palisade: {
      ca: { v1: { Workload: grpc.ServiceClientConstructor; Admin: grpc.ServiceClientConstructor } };
    };
  };
  const { Workload, Admin } = pkg.palisade.ca.v1;
  cached = {
    workload: Workload.service,
    admin: Admin.service,
    WorkloadClient: Workload,
    AdminClient: Admin,
  };
  return cached;
}

export interface SignRequest {
  csrPem: string;
  ttlSeconds: number;
  serviceAccountToken?: string;
  joinToken?: string;
  renewal?: boolean;
  proof?: 'serviceAccountToken' | 'joinToken' | 'renewal';
}

export interface SignResponse {
  spiffeId: string;
  serial: string;
  certChainPem: string[];
  trustBundlePem: string[];
  notBeforeUnixMs: number;
  notAfterUnixMs: number;
  trustVersion: number;
}

export interface WatchTrustRequest {
  knownVersion: number;
}

export interface TrustUpdate {
  version: number;
  trustBundlePem: string[];
  revokedSerials: string[];
  revokedIds: string[];
  publishedUnixMs: number;
  /** Absent only from a CA older than the mesh policy. */
  meshPolicy?: MeshPolicyRecord | null;
}

export interface IssueRequest {
  spiffeId: string;
  csrPem: string;
  ttlSeconds: number;
}

export interface RevokeRequest {
  serial?: string;
  spiffeId?: string;
  target?: 'serial' | 'spiffeId';
  reason: string;
}

export interface RevokeResponse {
  serials: string[];
  spiffeId: string;
  alreadyRevoked: boolean;
  trustVersion: number;
}

export interface UnrevokeRequest {
  spiffeId: string;
}

export interface UnrevokeResponse {
  wasRevoked: boolean;
  trustVersion: number;
}

export interface ListRequest {
  revokedOnly: boolean;
  includeExpired: boolean;
  spiffeId: string;
  limit: number;
}

export interface CertificateRecordMessage {
  serial: string;
  spiffeId: string;
  notBeforeUnixMs: number;
  notAfterUnixMs: number;
  issuedUnixMs: number;
  issuedVia: string;
  revoked: boolean;
}

export interface RevokedSerialMessage {
  serial: string;
  spiffeId: string;
  reason: string;
  revokedUnixMs: number;
  notAfterUnixMs: number;
}

export interface RevokedIdentityMessage {
  spiffeId: string;
  reason: string;
  revokedUnixMs: number;
}

export interface ListResponse {
  certificates: CertificateRecordMessage[];
  revokedSerials: RevokedSerialMessage[];
  revokedIds: RevokedIdentityMessage[];
}

export interface CreateJoinTokenRequest {
  spiffeId: string;
  ttlSeconds: number;
}

export interface CreateJoinTokenResponse {
  token: string;
  spiffeId: string;
  expiresUnixMs: number;
}

export interface RotateIntermediateRequest {
  ttlSeconds: number;
}

export interface RotateIntermediateResponse {
  oldSerial: string;
  newSerial: string;
  notAfterUnixMs: number;
}

export type StatusRequest = Record<string, never>;

export interface StatusResponse {
  trustDomain: string;
  version: string;
  startedUnixMs: number;
  rootSerial: string;
  rootNotAfterUnixMs: number;
  intermediateSerial: string;
  intermediateNotAfterUnixMs: number;
  trustVersion: number;
  watchers: number;
  certificatesTotal: number;
  certificatesActive: number;
  certificatesRevoked: number;
  revokedIds: number;
  keyType: string;
  rootKeyPresent: boolean;
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
}

export type GetCrlRequest = Record<string, never>;

export interface GetCrlResponse {
  crlPem: string;
  crlNumber: number;
}

export interface MeshPolicyRecord {
  version: number;
  documentJson: string;
  setUnixMs: number;
  setBy: string;
  source: string;
}

export interface SetPolicyRequest {
  document: string;
  source: string;
}

export type GetPolicyRequest = Record<string, never>;

export interface PolicyHistoryRequest {
  limit: number;
}

export interface PolicyHistoryResponse {
  policies: MeshPolicyRecord[];
}

export interface SecurityEventMessage {
  kind: string;
  atUnixMs: number;
  peerId: string;
  direction: string;
  reason: string;
  rule: string;
  detailJson: string;
}

export interface ReportEventsRequest {
  events: SecurityEventMessage[];
}

export interface ReportEventsResponse {
  accepted: number;
}

export interface StoredEventMessage {
  id: number;
  reporterId: string;
  receivedUnixMs: number;
  event: SecurityEventMessage | null;
}

export interface ListEventsRequest {
  sinceUnixMs: number;
  identityPattern: string;
  limit: number;
  afterId: number;
}

export interface ListEventsResponse {
  events: StoredEventMessage[];
}
