import type { sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import { errorCode, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { CaMetrics } from '../metrics.js';
import { grpcStatusFor } from './status-codes.js';

/** What every handler wrapper needs to report refusals. */
export interface HandlerContext {
  log: Logger;
  metrics: CaMetrics;
}

/**
 * Wraps a unary handler: its value answers the call; a thrown error answers
 * with the status of its code and a message naming the problem, is counted,
 * and is logged as the security event `event`. Internal failures answer
 * INTERNAL without detail and are logged at error level.
 */
export function unaryHandler<Req, Res>(
  ctx: HandlerContext,
  rpc: string,
  event: string,
  handle: (call: ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    Promise.resolve()
      .then(() => handle(call))
      .then(
        (value) => callback(null, value),
        (err: unknown) => {
          const code = errorCode(err);
          ctx.metrics.rejections.inc({ rpc, code });
          if (code === 'INTERNAL') {
            ctx.log.error({ rpc, err_code: code, err: errorMessage(err) }, 'request failed');
            callback({ code: grpcStatusFor(code), details: 'internal error' });
            return;
          }
          ctx.log.warn(
            { event, rpc, err_code: code, reason: errorMessage(err), peer: call.getPeer() },
            'request rejected',
          );
          callback({ code: grpcStatusFor(code), details: `${code}: ${errorMessage(err)}` });
        },
      );
  };
}
