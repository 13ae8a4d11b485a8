/** Bytes of a frame header: type (1), flags (1), stream id (4), payload length (4). */
export const FRAME_HEADER_BYTES = 10;

/** Largest payload a frame may carry, in bytes; a longer one is a protocol error. */
export const MAX_FRAME_PAYLOAD_BYTES = 64 * 1024;

/** Largest credit a stream may hold, in bytes (HTTP/2's limit, RFC 9113 6.9.1). */
export const MAX_WINDOW_BYTES = 2 ** 31 - 1;

/** The frame types of `palisade-mux/1`. */
export const FrameType = {
  /** Opens a stream; payload: the target application port (u16). */
  OPEN: 1,
  /** Stream bytes; payload: the bytes. */
  DATA: 2,
  /** Gives the sender more credit on a stream; payload: the increment in bytes (u32). */
  WINDOW: 3,
  /** The sender will send no more on the stream (half-close). */
  FIN: 4,
  /** Aborts a stream; payload: a reset reason code (u16). */
  RST: 5,
  /** Liveness probe on stream 0; payload: 8 opaque bytes echoed by PONG. */
  PING: 6,
  /** Answer to PING with the same 8 bytes. */
  PONG: 7,
  /** The sender opens and accepts no more streams; payload: a goaway code (u16). */
  GOAWAY: 8,
} as const;

/** A frame type number. */
export type FrameTypeNumber = (typeof FrameType)[keyof typeof FrameType];

/** Why a stream was reset, as carried by RST. */
export const ResetCode = {
  /** One side stopped using the stream before it ended. */
  CANCEL: 1,
  /** The stream was not taken: too many streams, or the session is going away. */
  REFUSED: 2,
  /** The receiving agent could not connect to the application. */
  APP_UNREACHABLE: 3,
  /** The peer is no longer admitted (revoked, untrusted, expired or denied by policy). */
  NOT_ADMITTED: 4,
} as const;

/** Why a session is going away, as carried by GOAWAY. */
export const GoawayCode = {
  /** Orderly: the sender is draining or stopping. */
  NORMAL: 0,
  /** The receiver of this GOAWAY broke the protocol. */
  PROTOCOL_ERROR: 1,
  /** The receiver of this GOAWAY is no longer admitted. */
  NOT_ADMITTED: 2,
} as const;

/** One decoded frame. `payload` is a view into the received bytes, not a copy. */
export interface Frame {
  type: FrameTypeNumber;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** A frame the decoder refuses: the peer broke the protocol and the session must end. */
export interface FrameError {
  code: 'bad-type' | 'bad-flags' | 'bad-length' | 'bad-stream-id';
  detail: string;
}

/** Exact payload length of the fixed-size frame types; DATA is 0..MAX. */
const FIXED_PAYLOAD: Readonly<Record<number, number>> = {
  [FrameType.OPEN]: 2,
  [FrameType.WINDOW]: 4,
  [FrameType.FIN]: 0,
  [FrameType.RST]: 2,
  [FrameType.PING]: 8,
  [FrameType.PONG]: 8,
  [FrameType.GOAWAY]: 2,
};

/** Frame types that belong to the session (stream id 0) rather than a stream. */
const SESSION_TYPES: ReadonlySet<number> = new Set([
  FrameType.PING,
  FrameType.PONG,
  FrameType.GOAWAY,
]);

/** Encodes a frame header for `payloadBytes` bytes of payload. */
export function encodeHeader(
  type: FrameTypeNumber,
  streamId: number,
  payloadBytes: number,
): Buffer {
  return writeHeader(Buffer.allocUnsafe(FRAME_HEADER_BYTES), type, streamId, payloadBytes);
}

/** Encodes a whole frame (header and payload) into one buffer. */
export function encodeFrame(type: FrameTypeNumber, streamId: number, payload?: Buffer): Buffer {
  const length = payload?.length ?? 0;
  const frame = writeHeader(
    Buffer.allocUnsafe(FRAME_HEADER_BYTES + length),
    type,
    streamId,
    length,
  );
  payload?.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/** Writes a frame header at the start of `buf` (no flags); returns `buf`. */
function writeHeader(
  buf: Buffer,
  type: FrameTypeNumber,
  streamId: number,
  payloadBytes: number,
): Buffer {
  buf[0] = type;
  buf[1] = 0;
  buf.writeUInt32BE(streamId, 2);
  buf.writeUInt32BE(payloadBytes, 6);
  return buf;
}

/** A u16 payload (OPEN port, RST and GOAWAY codes). */
export function u16(value: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(value, 0);
  return b;
}

/** A u32 payload (WINDOW increment). */
export function u32(value: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(value, 0);
  return b;
}

/**
 * Splits a byte stream into frames, whatever the chunk boundaries. It never
 * trusts the peer: a header is checked (known type, no flags, stream id fits
 * the type, length within the limit and exact for fixed-size types) before
 * its payload is awaited, so a bad length never makes it buffer. After the
 * first error it decodes nothing more.
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes the frame being awaited needs in all; until then chunks are only queued. */
  private neededBytes = 0;
  private failed: FrameError | undefined;

  /** Feeds received bytes; returns the frames they complete, or the error that ends the session. */
  push(chunk: Buffer): { frames: Frame[]; error?: FrameError } {
    const frames: Frame[] = [];
    if (this.failed) return { frames, error: this.failed };
    let buf = chunk;
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      // A large frame arrives in many TLS records: join them once, not per record.
      if (this.pendingBytes < this.neededBytes) return { frames };
      buf = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let offset = 0;
    this.neededBytes = FRAME_HEADER_BYTES;
    while (buf.length - offset >= FRAME_HEADER_BYTES) {
      const type = buf[offset] as number;
      const flags = buf[offset + 1] as number;
      const streamId = buf.readUInt32BE(offset + 2);
      const length = buf.readUInt32BE(offset + 6);
      const error = checkHeader(type, flags, streamId, length);
      if (error) {
        this.failed = error;
        return { frames, error };
      }
      const end = offset + FRAME_HEADER_BYTES + length;
      if (buf.length < end) {
        this.neededBytes = end - offset;
        break;
      }
      frames.push({
        type: type as FrameTypeNumber,
        flags,
        streamId,
        payload: buf.subarray(offset + FRAME_HEADER_BYTES, end),
      });
      offset = end;
    }
    if (offset < buf.length) {
      const rest = buf.subarray(offset);
      this.pending.push(rest);
      this.pendingBytes = rest.length;
    }
    return { frames };
  }
}

function checkHeader(
  type: number,
  flags: number,
  streamId: number,
  length: number,
): FrameError | undefined {
  if (type < FrameType.OPEN || type > FrameType.GOAWAY) {
    return { code: 'bad-type', detail: `unknown frame type ${type}` };
  }
  if (flags !== 0) return { code: 'bad-flags', detail: `flags ${flags} on frame type ${type}` };
  const fixed = FIXED_PAYLOAD[type];
  if (fixed !== undefined ? length !== fixed : length > MAX_FRAME_PAYLOAD_BYTES) {
    return { code: 'bad-length', detail: `length ${length} on frame type ${type}` };
  }
  if (SESSION_TYPES.has(type) !== (streamId === 0)) {
    return { code: 'bad-stream-id', detail: `stream id ${streamId} on frame type ${type}` };
  }
  return undefined;
}
