/** Default CA gRPC address (workload and admin APIs), shared by agent and CA config. */
export const DEFAULT_CA_ADDR = '127.0.0.1:15112';
