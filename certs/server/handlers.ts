import {
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';
import { errorCode, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { CaMetrics } from '../metrics.js';
import { grpcStatusFor } from './status-codes.js';

/** Bytes a stream's reader may leave unread before the CA ends the stream. */
const MAX_STREAM_BUFFER_BYTES = 4 * 1024 * 1024;

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
        (err: unknown) => callback(refusal(ctx, rpc, event, err, call.getPeer())),
      );
  };
}

/**
 * Ends a server stream with the status of `err`, counted and logged like a
 * refused unary call (security event `event`).
 */
export function refuseStream(
  ctx: HandlerContext,
  rpc: string,
  event: string,
  call: ServerWritableStream<unknown, unknown>,
  err: unknown,
): void {
  call.emit('error', refusal(ctx, rpc, event, err, call.getPeer()));
}

/**
 * Writes one message to a server stream unless its reader has fallen more
 * than MAX_STREAM_BUFFER_BYTES behind: then the stream ends with
 * RESOURCE_EXHAUSTED (the reader reconnects) and false is returned, so a
 * reader that stops reading never makes the CA buffer without bound.
 */
export function writeBounded<Res>(
  ctx: HandlerContext,
  call: ServerWritableStream<unknown, Res>,
  message: Res,
  what: string,
): boolean {
  if (!call.writable) return false;
  if (call.writableLength > MAX_STREAM_BUFFER_BYTES) {
    ctx.log.warn(
      { peer: call.getPeer(), stream: what, buffered_bytes: call.writableLength },
      'slow stream reader dropped',
    );
    call.emit('error', { code: status.RESOURCE_EXHAUSTED, details: `${what} reader too slow` });
    return false;
  }
  call.write(message);
  return true;
}

/**
 * Calls `close` once when a server stream ends, however it ends (cancelled
 * by the client, closed, or failed).
 */
export function onStreamEnd(call: ServerWritableStream<unknown, unknown>, close: () => void): void {
  let closed = false;
  const once = () => {
    if (closed) return;
    closed = true;
    close();
  };
  call.on('cancelled', once);
  call.on('close', once);
  call.on('error', once);
}

function refusal(ctx: HandlerContext, rpc: string, event: string, err: unknown, peer: string) {
  const code = errorCode(err);
  ctx.metrics.rejections.inc({ rpc, code });
  if (code === 'INTERNAL') {
    ctx.log.error({ rpc, err_code: code, err: errorMessage(err) }, 'request failed');
    return { code: grpcStatusFor(code), details: 'internal error' };
  }
  ctx.log.warn({ event, rpc, err_code: code, reason: errorMessage(err), peer }, 'request rejected');
  return { code: grpcStatusFor(code), details: `${code}: ${errorMessage(err)}` };
}
