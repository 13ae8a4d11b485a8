// The stream multiplexer `palisade-mux/1`: many application connections as
// streams over one verified mutual-TLS connection between two agents, with
// per-stream credit. It knows nothing of TLS verification, policy or the
// proxies that use it, and imports nothing from agent/.
export {
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameType,
  GoawayCode,
  MAX_FRAME_PAYLOAD_BYTES,
  ResetCode,
  encodeFrame,
  type Frame,
  type FrameError,
  type FrameTypeNumber,
} from './frame-codec.js';
export { MuxStream, StreamResetError } from './mux-stream.js';
export {
  DEFAULT_MAX_STREAMS,
  DEFAULT_STREAM_WINDOW_BYTES,
  MUX_ALPN,
  MuxProtocolError,
  MuxSession,
  type MuxRole,
  type MuxSessionOptions,
} from './mux-session.js';
