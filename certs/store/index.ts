// The CA's persistent state: issued certificates, revocations, join tokens,
// meta values and the hash-chained audit log, in one SQLite file. Synchronous
// and process-local; it depends on nothing above certs/ and logs nothing itself.
export { CaStore, BUSY_TIMEOUT_MS } from './ca-store.js';
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
