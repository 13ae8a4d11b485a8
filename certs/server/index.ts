// The CA's gRPC services: Workload (Sign, WatchTrust, ReportEvents) and Admin,
// the TLS credentials they are served with, and the one table of gRPC status
// codes. They call the authority and the event feed; they hold no state of
// their own and never import agent/.
export { adminService, type AdminDeps } from './admin-service.js';
export { grpcStatusFor, GRPC_STATUS_BY_CODE } from './status-codes.js';
export { CaServerCredentials, type ServingIdentity } from './tls-credentials.js';
export { verifiedPeer, type AuthenticatedCall } from './peer.js';
export {
  meshPolicyRecord,
  workloadService,
  signResponse,
  trustUpdate,
} from './workload-service.js';
