// The CA's persistent state: issued certificates, revocations, join tokens,
// meta values, the hash-chained audit log, mesh policy versions and the
// security-event history, in one SQLite file. Synchronous and process-local;
// it depends on nothing above certs/ and logs nothing itself.
export { CaStore, type CaStoreOptions } from './ca-store.js';
export { type CertQuery } from './cert-store.js';
export { BUSY_TIMEOUT_MS } from './open-database.js';
export {
  DEFAULT_MAX_EVENTS,
  EventStore,
  type EventQuery,
  type SecurityEventInput,
  type StoredSecurityEvent,
} from './event-store.js';
export {
  PolicyStore,
  policyDocumentSha256,
  type MeshPolicySetResult,
  type MeshPolicyVersion,
} from './policy-store.js';
export { DEFAULT_LIST_LIMIT } from './store-input.js';
export { StoreError, type StoreErrorCode } from './store-error.js';
export { canonicalJson, auditHash, GENESIS_HASH } from './audit-chain.js';
export { SCHEMA_VERSION } from './schema.js';
export type {
  AuditRecord,
  AuditVerdict,
  CertRecord,
  IdentityRevocation,
  IssuedRecordInput,
  IssuedVia,
  JoinTokenRecord,
  RevocationSet,
  SerialRevocation,
} from './types.js';
