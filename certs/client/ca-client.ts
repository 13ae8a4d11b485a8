import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import * as pb from '../../proto/index.js';
import { PalisadeError } from '../errors.js';
import { caId } from '../spiffe-id.js';

/** How long a unary call may take before it fails with DEADLINE_EXCEEDED. */
const DEFAULT_DEADLINE_MS = 10_000;

/** Where the CA is and how to recognise it. */
export interface CaClientOptions {
  /** `HOST:PORT` of the CA. */
  address: string;
  /** Roots the CA's serving certificate must chain to, PEM. */
  trustBundlePem: string;
  /** Trust domain whose CA identity the server must present. */
  trustDomain: string;
  /** Client certificate for renewal and admin calls. */
  credential?: { keyPem: string; certChainPem: string };
  deadlineMs?: number;
}

/** A failed CA call: `code` is the CA's error code when it sent one, else the gRPC status name. */
export class CaClientError extends PalisadeError {
  readonly grpcCode: grpc.status;

  constructor(code: string, grpcCode: grpc.status, message: string, cause: unknown) {
    super(code, message, { cause });
    this.name = 'CaClientError';
    this.grpcCode = grpcCode;
  }
}

type Unary = (
  request: unknown,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response: unknown) => void,
) => grpc.ClientUnaryCall;

type ServerStream<Res> = (request: unknown) => grpc.ClientReadableStream<Res>;

/**
 * A gRPC client for both CA services. The CA is recognised by its SPIFFE ID
 * (`spiffe://<td>/ns/palisade-system/sa/palisade-ca`) in a certificate that
 * chains to the trust bundle, never by host name, so any address works.
 */
export class CaClient {
  private readonly workload: grpc.Client;
  private readonly admin: grpc.Client;
  private readonly deadlineMs: number;

  constructor(options: CaClientOptions) {
    const expectedId = caId(options.trustDomain);
    const credentials = grpc.credentials.createSsl(
      Buffer.from(options.trustBundlePem),
      options.credential ? Buffer.from(options.credential.keyPem) : null,
      options.credential ? Buffer.from(options.credential.certChainPem) : null,
      { checkServerIdentity: (_host, cert) => checkCaIdentity(cert, expectedId) },
    );
    const services = pb.loadCaServices();
    const channelOptions: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': 4 * 1024 * 1024,
      // Host names play no part in recognising the CA; keep SNI off IP literals.
      'grpc.ssl_target_name_override': 'palisade-ca',
      'grpc.default_authority': 'palisade-ca',
    };
    this.workload = new services.WorkloadClient(options.address, credentials, channelOptions);
    this.admin = new services.AdminClient(options.address, credentials, channelOptions);
    this.deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  }

  sign(request: Partial<pb.SignRequest> & { csrPem: string }): Promise<pb.SignResponse> {
    return this.call(this.workload, 'Sign', { ttlSeconds: 0, ...request });
  }

  /**
   * Opens a WatchTrust stream. `onUpdate` gets every trust state, `onEnd` the
   * error (or undefined) when the stream ends. Returns a function that cancels it.
   */
  watchTrust(
    knownVersion: number,
    onUpdate: (update: pb.TrustUpdate) => void,
    onEnd: (err: CaClientError | undefined) => void,
  ): () => void {
    return this.stream(this.workload, 'WatchTrust', { knownVersion }, onUpdate, onEnd);
  }

  /** Sends a batch of security events; the CA takes the reporter from this client's certificate. */
  reportEvents(events: pb.SecurityEventMessage[]): Promise<pb.ReportEventsResponse> {
    return this.call(this.workload, 'ReportEvents', { events });
  }

  issue(request: pb.IssueRequest): Promise<pb.SignResponse> {
    return this.call(this.admin, 'Issue', request);
  }

  revoke(request: pb.RevokeRequest): Promise<pb.RevokeResponse> {
    return this.call(this.admin, 'Revoke', request);
  }

  unrevoke(request: pb.UnrevokeRequest): Promise<pb.UnrevokeResponse> {
    return this.call(this.admin, 'Unrevoke', request);
  }

  list(request: Partial<pb.ListRequest>): Promise<pb.ListResponse> {
    return this.call(this.admin, 'List', request);
  }

  createJoinToken(request: pb.CreateJoinTokenRequest): Promise<pb.CreateJoinTokenResponse> {
    return this.call(this.admin, 'CreateJoinToken', request);
  }

  rotateIntermediate(
    request: pb.RotateIntermediateRequest,
  ): Promise<pb.RotateIntermediateResponse> {
    return this.call(this.admin, 'RotateIntermediate', request);
  }

  status(): Promise<pb.StatusResponse> {
    return this.call(this.admin, 'Status', {});
  }

  getCrl(): Promise<pb.GetCrlResponse> {
    return this.call(this.admin, 'GetCrl', {});
  }

  setPolicy(request: pb.SetPolicyRequest): Promise<pb.MeshPolicyRecord> {
    return this.call(this.admin, 'SetPolicy', request);
  }

  getPolicy(): Promise<pb.MeshPolicyRecord> {
    return this.call(this.admin, 'GetPolicy', {});
  }

  policyHistory(request: Partial<pb.PolicyHistoryRequest>): Promise<pb.PolicyHistoryResponse> {
    return this.call(this.admin, 'PolicyHistory', request);
  }

  listEvents(request: Partial<pb.ListEventsRequest>): Promise<pb.ListEventsResponse> {
    return this.call(this.admin, 'ListEvents', request);
  }

  /**
   * Opens a WatchEvents stream: the stored events matching `request`, then
   * each new one. `onEnd` gets the error (or undefined) when the stream ends.
   * Returns a function that cancels it.
   */
  watchEvents(
    request: Partial<pb.ListEventsRequest>,
    onEvent: (event: pb.StoredEventMessage) => void,
    onEnd: (err: CaClientError | undefined) => void,
  ): () => void {
    return this.stream(this.admin, 'WatchEvents', request, onEvent, onEnd);
  }

  /** Closes both channels; calls in flight fail with CANCELLED. */
  close(): void {
    this.workload.close();
    this.admin.close();
  }

  private stream<Res>(
    client: grpc.Client,
    method: string,
    request: unknown,
    onData: (message: Res) => void,
    onEnd: (err: CaClientError | undefined) => void,
  ): () => void {
    const fn = (client as unknown as Record<string, ServerStream<Res>>)[
      method
    ] as ServerStream<Res>;
    const stream = fn.call(client, request);
    let ended = false;
    const end = (err: CaClientError | undefined) => {
      if (ended) return;
      ended = true;
      onEnd(err);
    };
    stream.on('data', onData);
    stream.on('error', (err: grpc.ServiceError) => {
      end(err.code === grpc.status.CANCELLED ? undefined : toClientError(err));
    });
    stream.on('end', () => end(undefined));
    return () => stream.cancel();
  }

  private call<Res>(client: grpc.Client, method: string, request: unknown): Promise<Res> {
    const fn = (client as unknown as Record<string, Unary>)[method] as Unary;
    return new Promise((resolve, reject) => {
      fn.call(client, request, { deadline: Date.now() + this.deadlineMs }, (err, response) => {
        if (err) reject(toClientError(err));
        else resolve(response as Res);
      });
    });
  }
}

/** Turns a gRPC error into a CaClientError, recovering the CA's `CODE: message` detail. */
export function toClientError(err: grpc.ServiceError): CaClientError {
  const match = /^([A-Z][A-Z0-9_]+): (.*)$/s.exec(err.details ?? '');
  if (match) return new CaClientError(match[1] as string, err.code, match[2] as string, err);
  const name = grpc.status[err.code] ?? 'UNKNOWN';
  const message =
    err.code === grpc.status.UNAVAILABLE
      ? `CA unreachable: ${err.details}`
      : `${name}: ${err.details || err.message}`;
  return new CaClientError(name, err.code, message, err);
}

function checkCaIdentity(cert: PeerCertificate, expectedId: string): Error | undefined {
  const sans = (cert.subjectaltname ?? '').split(', ');
  if (sans.includes(`URI:${expectedId}`)) return undefined;
  return new PalisadeError(
    'CA_IDENTITY_MISMATCH',
    `server is not the CA: expected ${expectedId}, got ${cert.subjectaltname ?? 'no SAN'}`,
  );
}
