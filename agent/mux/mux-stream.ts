import { Duplex } from 'node:stream';
import { PalisadeError } from '../../certs/errors.js';
import { FrameType, MAX_FRAME_PAYLOAD_BYTES, ResetCode, u16, u32 } from './frame-codec.js';

/** Buffered bytes at which a stream's readable side stops taking more (backpressure). */
const READABLE_HIGH_WATER_BYTES = 64 * 1024;

/** A stream reset by the peer (RST) or ended by its session; `resetCode` says why. */
export class StreamResetError extends PalisadeError {
  readonly resetCode: number;

  constructor(resetCode: number, message: string) {
    super('MUX_STREAM_RESET', message);
    this.name = 'StreamResetError';
    this.resetCode = resetCode;
  }
}

/** What a stream needs from its session. */
export interface StreamHost {
  /** Sends a frame; returns false when the session's socket is above its high-water mark. */
  send(type: number, streamId: number, payload?: Buffer): boolean;
  /** Calls `callback` once the session's socket can take more (at once when it can). */
  whenWritable(callback: () => void): void;
  /** Forgets a stream that has closed. */
  release(streamId: number): void;
}

/**
 * One application connection carried over a mux session, as a Duplex:
 * writing sends DATA within the credit the peer gave, `end()` sends FIN
 * (half-close), and destroying it before both sides ended sends RST. Read
 * bytes are credited back to the peer (WINDOW) as the reader consumes them,
 * so a paused reader holds up only its own stream.
 */
export class MuxStream extends Duplex {
  /** Bytes this side may still send before the peer gives more credit. */
  private sendCredit: number;
  /** Bytes the peer may still send before we give more credit. */
  private receiveCredit: number;
  /** Bytes consumed since the last WINDOW we sent. */
  private uncredited = 0;
  private isReaderFull = false;
  private blocked: { chunk: Buffer; callback: (err?: Error | null) => void } | undefined;
  private isFinSent = false;
  private isFinReceived = false;
  private isResetReceived = false;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Stream bytes received from the peer (DATA payloads), as a socket counts them. */
  bytesRead = 0;
  /** Stream bytes sent to the peer (DATA payloads). */
  bytesWritten = 0;

  constructor(
    /** The stream id, unique within its session. */
    readonly id: number,
    /** The application port the opener asked for. */
    readonly port: number,
    private readonly host: StreamHost,
    private readonly windowBytes: number,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: READABLE_HIGH_WATER_BYTES });
    this.sendCredit = windowBytes;
    this.receiveCredit = windowBytes;
  }

  /** Socket compatibility: a stream has no Nagle delay to turn off. */
  setNoDelay(): this {
    return this;
  }

  /** Socket compatibility: keep-alive belongs to the session's socket. */
  setKeepAlive(): this {
    return this;
  }

  /**
   * As `Socket.setTimeout`: emits `timeout` after `ms` without bytes either
   * way (0 turns it off). The HTTP stage's keep-alive timeout relies on it.
   */
  setTimeout(ms: number, onTimeout?: () => void): this {
    if (onTimeout) this.once('timeout', onTimeout);
    clearTimeout(this.idleTimer);
    this.idleTimer =
      ms > 0 && !this.destroyed ? setTimeout(() => this.emit('timeout'), ms).unref() : undefined;
    return this;
  }

  /**
   * Delivers a DATA frame; returns false when the peer overran its credit or
   * sent after its FIN (protocol errors).
   */
  receiveData(payload: Buffer): boolean {
    if (payload.length > this.receiveCredit || this.isFinReceived) return false;
    this.receiveCredit -= payload.length;
    this.bytesRead += payload.length;
    this.idleTimer?.refresh();
    this.uncredited += payload.length;
    // The payload is a view into the session's receive buffer; pushing it
    // keeps that buffer alive only until the reader consumes it.
    if (!this.push(payload)) this.isReaderFull = true;
    else this.maybeCredit();
    return true;
  }

  /** Adds credit from a WINDOW frame; returns false when it would overflow (a protocol error). */
  receiveWindow(increment: number): boolean {
    if (increment === 0 || this.sendCredit + increment > 2 ** 31 - 1) return false;
    this.sendCredit += increment;
    const blocked = this.blocked;
    if (blocked) {
      this.blocked = undefined;
      this.sendChunk(blocked.chunk, blocked.callback);
    }
    return true;
  }

  /** The peer half-closed. */
  receiveFin(): void {
    if (this.isFinReceived) return;
    this.isFinReceived = true;
    this.push(null);
  }

  /** The peer reset the stream, or the session ended under it. */
  receiveReset(code: number, message: string): void {
    this.isResetReceived = true;
    this.destroy(new StreamResetError(code, message));
  }

  /** Resets the stream with `code` (RST to the peer) and destroys it. */
  reset(code: number): void {
    if (this.destroyed) return;
    this.sendReset(code);
    this.destroy();
  }

  override _read(): void {
    this.isReaderFull = false;
    this.maybeCredit();
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (err?: Error | null) => void,
  ): void {
    this.sendChunk(chunk, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.isFinSent = true;
    this.host.send(FrameType.FIN, this.id);
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    clearTimeout(this.idleTimer);
    if (!(this.isFinSent && this.isFinReceived) && !this.isResetReceived) {
      this.sendReset(ResetCode.CANCEL);
    }
    this.blocked?.callback(err ?? new StreamResetError(ResetCode.CANCEL, 'stream destroyed'));
    this.blocked = undefined;
    this.host.release(this.id);
    callback(err);
  }

  private sendReset(code: number): void {
    if (this.isResetReceived) return;
    this.isResetReceived = true;
    this.host.send(FrameType.RST, this.id, u16(code));
  }

  /** Sends as much of `chunk` as the credit allows; the rest waits for WINDOW. */
  private sendChunk(chunk: Buffer, callback: (err?: Error | null) => void): void {
    let offset = 0;
    this.idleTimer?.refresh();
    while (offset < chunk.length && this.sendCredit > 0) {
      const size = Math.min(chunk.length - offset, this.sendCredit, MAX_FRAME_PAYLOAD_BYTES);
      this.host.send(FrameType.DATA, this.id, chunk.subarray(offset, offset + size));
      this.sendCredit -= size;
      this.bytesWritten += size;
      offset += size;
    }
    if (offset < chunk.length) {
      this.blocked = { chunk: chunk.subarray(offset), callback };
      return;
    }
    // Calling back only once the session's socket drains is what stops the
    // source (the application socket piped in) while TLS is behind.
    this.host.whenWritable(callback);
  }

  /** Gives credit back once half the window was consumed and the reader has room. */
  private maybeCredit(): void {
    if (this.isReaderFull || this.uncredited < this.windowBytes / 2 || this.destroyed) return;
    this.host.send(FrameType.WINDOW, this.id, u32(this.uncredited));
    this.receiveCredit += this.uncredited;
    this.uncredited = 0;
  }
}
