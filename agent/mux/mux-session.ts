import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { PalisadeError } from '../../certs/errors.js';
import {
  FrameDecoder,
  FrameType,
  GoawayCode,
  ResetCode,
  encodeHeader,
  u16,
  type Frame,
  type FrameTypeNumber,
} from './frame-codec.js';
import { MuxStream, type StreamHost } from './mux-stream.js';

/** The ALPN protocol name under which agents speak this multiplexer. */
export const MUX_ALPN = 'palisade-mux/1';

/**
 * Credit each stream starts with, each way, in bytes. 1 MiB: with 256 KiB
 * the side-by-side benchmark's bulk transfer ran at about 0.5x HAProxy on a
 * loaded machine (the credit ran out before a WINDOW came back), with 1 MiB
 * at about 0.8x. It bounds what one stream's slow reader can make the agent
 * buffer.
 */
export const DEFAULT_STREAM_WINDOW_BYTES = 1024 * 1024;

/** Most streams open at once on one session; the dialer opens another session past it. */
export const DEFAULT_MAX_STREAMS = 1000;

/** How long a closing session waits for the peer to close its side, in milliseconds. */
const CLOSE_GRACE_MS = 5_000;

/**
 * Which end of the TLS connection a session is: the dialer opens streams,
 * the server takes them.
 */
export type MuxRole = 'client' | 'server';

/** Settings of a session; both ends must agree on the window. */
export interface MuxSessionOptions {
  role: MuxRole;
  windowBytes?: number;
  maxStreams?: number;
  /** Called once when the peer breaks the protocol, before the session closes. */
  onProtocolError?: (error: MuxProtocolError) => void;
}

/** The peer broke the protocol; the session sent GOAWAY and closed. `reason` is bounded. */
export class MuxProtocolError extends PalisadeError {
  readonly reason: string;

  constructor(reason: string, detail: string) {
    super('MUX_PROTOCOL_ERROR', `mux protocol error (${reason}): ${detail}`);
    this.name = 'MuxProtocolError';
    this.reason = reason;
  }
}

/**
 * One long-lived connection between two agents (a verified TLS socket)
 * carrying many application connections as streams. The client opens
 * streams (odd ids, increasing); the server is told of each with a `stream`
 * event. Frames written within one tick are corked into one TLS write. Any
 * frame the peer should not have sent ends the session with GOAWAY. Events:
 * `stream` (server), `idle` (the last stream closed), `close`.
 */
export class MuxSession extends EventEmitter implements StreamHost {
  private readonly streams = new Map<number, MuxStream>();
  private readonly decoder = new FrameDecoder();
  private readonly windowBytes: number;
  private readonly maxStreams: number;
  private readonly writeWaiters: (() => void)[] = [];
  private readonly pings: (() => void)[] = [];
  private nextStreamId = 1;
  private lastPeerStreamId = 0;
  private isCorked = false;
  private isGoingAway = false;
  private isDraining = false;
  private isClosing = false;
  private isClosed = false;

  constructor(
    private readonly socket: Duplex,
    private readonly options: MuxSessionOptions,
  ) {
    super();
    this.windowBytes = options.windowBytes ?? DEFAULT_STREAM_WINDOW_BYTES;
    this.maxStreams = options.maxStreams ?? DEFAULT_MAX_STREAMS;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.flushWaiters());
    socket.on('error', () => socket.destroy());
    // The peer ended the session: nothing more will arrive for any stream.
    socket.on('end', () => socket.destroy());
    socket.once('close', () => this.onClose());
    socket.resume();
  }

  /** Streams open now. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Whether a new stream may be opened here now. */
  get isAvailable(): boolean {
    const isOpen = !this.isClosed && !this.isGoingAway && !this.isDraining;
    return isOpen && this.streams.size < this.maxStreams;
  }

  /** Whether the session's connection has closed. */
  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * Opens a stream to application port `port` (client only). Throws
   * MUX_UNAVAILABLE when the session is full, draining or closed.
   */
  openStream(port: number): MuxStream {
    if (this.options.role !== 'client') throw new Error('only the dialing side opens streams');
    if (!this.isAvailable)
      throw new PalisadeError('MUX_UNAVAILABLE', 'session takes no new streams');
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new MuxStream(id, port, this, this.windowBytes);
    this.streams.set(id, stream);
    this.send(FrameType.OPEN, id, u16(port));
    return stream;
  }

  /** Takes no new streams and closes the connection once the last stream has closed. */
  drain(): void {
    this.isDraining = true;
    if (this.streams.size === 0) this.close();
  }

  /** Sends GOAWAY with `code`, ends every stream and closes the connection. */
  close(code: number = GoawayCode.NORMAL): void {
    if (this.isClosing || this.isClosed) return;
    this.isClosing = true;
    this.isGoingAway = true;
    this.send(FrameType.GOAWAY, 0, u16(code));
    this.uncork();
    this.socket.end();
    this.resetAll('session closed');
    // A peer that never closes its side does not keep the connection open.
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** Destroys the connection and every stream at once. */
  destroy(): void {
    this.socket.destroy();
  }

  /** Resolves when the peer answers a PING; rejects if the session closes first. */
  ping(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.isClosed) {
        reject(new PalisadeError('MUX_UNAVAILABLE', 'session closed'));
        return;
      }
      const onClose = () => reject(new PalisadeError('MUX_UNAVAILABLE', 'session closed'));
      this.once('close', onClose);
      this.pings.push(() => {
        this.off('close', onClose);
        resolve();
      });
      this.send(FrameType.PING, 0, Buffer.alloc(8));
    });
  }

  /** Writes one frame, corked with the others of this tick; false when the socket is full. */
  send(type: number, streamId: number, payload?: Buffer): boolean {
    if (this.isClosed || this.socket.writableEnded) return false;
    if (!this.isCorked) {
      this.isCorked = true;
      this.socket.cork();
      process.nextTick(() => this.uncork());
    }
    const length = payload?.length ?? 0;
    const isHeaderRoomy = this.socket.write(
      encodeHeader(type as FrameTypeNumber, streamId, length),
    );
    return payload && length > 0 ? this.socket.write(payload) : isHeaderRoomy;
  }

  /** Runs `callback` once the socket is below its high-water mark. */
  whenWritable(callback: () => void): void {
    if (!this.socket.writableNeedDrain || this.isClosed) callback();
    else this.writeWaiters.push(callback);
  }

  /** Forgets a closed stream; an idle draining session closes. */
  release(streamId: number): void {
    if (!this.streams.delete(streamId) || this.streams.size > 0) return;
    this.emit('idle');
    if (this.isDraining || this.isGoingAway) this.close();
  }

  private uncork(): void {
    if (!this.isCorked) return;
    this.isCorked = false;
    this.socket.uncork();
  }

  private flushWaiters(): void {
    const waiters = this.writeWaiters.splice(0);
    for (const waiter of waiters) waiter();
  }

  private onData(chunk: Buffer): void {
    if (this.isClosed) return;
    const { frames, error } = this.decoder.push(chunk);
    for (const frame of frames) {
      if (this.isClosed) return;
      const problem = this.onFrame(frame);
      if (problem) {
        this.fail(problem[0], problem[1]);
        return;
      }
    }
    if (error) this.fail(error.code, error.detail);
  }

  /** Handles one frame; returns [reason, detail] when it breaks the protocol. */
  private onFrame(frame: Frame): [string, string] | undefined {
    const { type, streamId, payload } = frame;
    switch (type) {
      case FrameType.OPEN:
        return this.onOpen(streamId, payload.readUInt16BE(0));
      case FrameType.PING:
        this.send(FrameType.PONG, 0, Buffer.from(payload));
        return undefined;
      case FrameType.PONG:
        this.pings.shift()?.();
        return undefined;
      case FrameType.GOAWAY:
        this.isGoingAway = true;
        if (this.streams.size === 0) this.close();
        return undefined;
      default:
        return this.onStreamFrame(type, streamId, payload);
    }
  }

  private onOpen(streamId: number, port: number): [string, string] | undefined {
    if (this.options.role !== 'server') return ['unexpected-open', `OPEN ${streamId} to a client`];
    if (streamId % 2 !== 1 || streamId <= this.lastPeerStreamId) {
      return ['bad-stream-id', `OPEN ${streamId} after ${this.lastPeerStreamId}`];
    }
    this.lastPeerStreamId = streamId;
    if (!this.isAvailable) {
      this.send(FrameType.RST, streamId, u16(ResetCode.REFUSED));
      return undefined;
    }
    const stream = new MuxStream(streamId, port, this, this.windowBytes);
    this.streams.set(streamId, stream);
    this.emit('stream', stream);
    return undefined;
  }

  private onStreamFrame(
    type: FrameTypeNumber,
    streamId: number,
    payload: Buffer,
  ): [string, string] | undefined {
    const stream = this.streams.get(streamId);
    if (!stream) {
      // Frames for a stream that already closed race our RST; frames for one
      // never opened are the peer's mistake.
      const highest =
        this.options.role === 'server' ? this.lastPeerStreamId : this.nextStreamId - 2;
      return streamId > highest
        ? ['unknown-stream', `frame type ${type} on ${streamId}`]
        : undefined;
    }
    switch (type) {
      case FrameType.DATA:
        return stream.receiveData(payload)
          ? undefined
          : ['flow-control', `DATA of ${payload.length} bytes beyond credit on ${streamId}`];
      case FrameType.WINDOW:
        return stream.receiveWindow(payload.readUInt32BE(0))
          ? undefined
          : ['flow-control', `bad WINDOW increment on ${streamId}`];
      case FrameType.FIN:
        stream.receiveFin();
        return undefined;
      default: {
        const code = payload.readUInt16BE(0);
        stream.receiveReset(code, `stream reset by the peer (code ${code})`);
        return undefined;
      }
    }
  }

  private fail(reason: string, detail: string): void {
    this.options.onProtocolError?.(new MuxProtocolError(reason, detail));
    this.close(GoawayCode.PROTOCOL_ERROR);
  }

  private resetAll(message: string): void {
    for (const stream of [...this.streams.values()]) stream.receiveReset(ResetCode.CANCEL, message);
  }

  private onClose(): void {
    this.isClosed = true;
    this.resetAll('session closed');
    this.flushWaiters();
    this.emit('close');
  }
}
