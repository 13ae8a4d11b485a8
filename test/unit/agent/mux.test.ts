import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import {
  DEFAULT_STREAM_WINDOW_BYTES,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameType,
  GoawayCode,
  MAX_FRAME_PAYLOAD_BYTES,
  MuxProtocolError,
  MuxSession,
  ResetCode,
  StreamResetError,
  encodeFrame,
  type MuxStream,
} from '../../../agent/mux/index.js';

/** Two connected TCP sockets on loopback. */
async function socketPair(t: Test): Promise<[Socket, Socket]> {
  const server = createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = connect({
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    allowHalfOpen: true,
  });
  const serverSide = await accepted;
  server.close();
  t.teardown(() => {
    client.destroy();
    serverSide.destroy();
  });
  return [client, serverSide];
}

/** A client and a server session over a socket pair, and the server's streams as they open. */
async function sessionPair(
  t: Test,
  windowBytes?: number,
): Promise<{ client: MuxSession; server: MuxSession; accepted: () => Promise<MuxStream> }> {
  const [a, b] = await socketPair(t);
  const options = windowBytes ? { windowBytes } : {};
  const client = new MuxSession(a, { role: 'client', ...options });
  // Teardown destroys the sockets under streams still open; their errors are expected.
  const openStream = client.openStream.bind(client);
  client.openStream = (port) => openStream(port).on('error', () => undefined);
  const server = new MuxSession(b, { role: 'server', ...options });
  const queue: MuxStream[] = [];
  const waiting: ((s: MuxStream) => void)[] = [];
  server.on('stream', (stream: MuxStream) => {
    stream.on('error', () => undefined);
    const waiter = waiting.shift();
    if (waiter) waiter(stream);
    else queue.push(stream);
  });
  const accepted = () =>
    new Promise<MuxStream>((resolve) => {
      const ready = queue.shift();
      if (ready) resolve(ready);
      else waiting.push(resolve);
    });
  return { client, server, accepted };
}

function readAll(stream: MuxStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

function pattern(bytes: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

const SAMPLE_FRAMES = [
  encodeFrame(FrameType.OPEN, 1, Buffer.from([0x1f, 0x90])),
  encodeFrame(FrameType.DATA, 1, Buffer.from('hello')),
  encodeFrame(FrameType.DATA, 3, Buffer.alloc(0)),
  encodeFrame(FrameType.WINDOW, 1, Buffer.from([0, 4, 0, 0])),
  encodeFrame(FrameType.FIN, 1),
  encodeFrame(FrameType.RST, 3, Buffer.from([0, ResetCode.CANCEL])),
  encodeFrame(FrameType.PING, 0, Buffer.alloc(8, 7)),
  encodeFrame(FrameType.PONG, 0, Buffer.alloc(8, 7)),
  encodeFrame(FrameType.GOAWAY, 0, Buffer.from([0, GoawayCode.NORMAL])),
  encodeFrame(FrameType.DATA, 5, pattern(MAX_FRAME_PAYLOAD_BYTES, 1)),
];

t.test('the codec round-trips every frame type', async (t) => {
  const { frames, error } = new FrameDecoder().push(Buffer.concat(SAMPLE_FRAMES));
  t.equal(error, undefined);
  t.equal(frames.length, SAMPLE_FRAMES.length);
  frames.forEach((frame, n) => {
    const again = encodeFrame(frame.type, frame.streamId, frame.payload);
    t.ok(again.equals(SAMPLE_FRAMES[n] as Buffer), `frame ${n} (type ${frame.type}) re-encodes`);
  });
});

t.test('frames split at every byte boundary decode the same', async (t) => {
  const bytes = Buffer.concat(SAMPLE_FRAMES.slice(0, 9));
  for (let cut = 0; cut <= bytes.length; cut++) {
    const decoder = new FrameDecoder();
    const first = decoder.push(bytes.subarray(0, cut));
    const second = decoder.push(bytes.subarray(cut));
    const frames = [...first.frames, ...second.frames];
    if (frames.length !== 9 || first.error || second.error) {
      t.fail(`split at ${cut} gave ${frames.length} frames`);
      return;
    }
  }
  const big = SAMPLE_FRAMES[9] as Buffer;
  const decoder = new FrameDecoder();
  const got = [];
  for (let i = 0; i < big.length; i++) got.push(...decoder.push(big.subarray(i, i + 1)).frames);
  t.equal(got.length, 1, 'a 64 KiB frame fed one byte at a time decodes once');
  t.ok(got[0]?.payload.equals(pattern(MAX_FRAME_PAYLOAD_BYTES, 1)));
});

t.test('bad headers are refused before any payload is awaited', async (t) => {
  const header = (type: number, flags: number, id: number, length: number) => {
    const b = Buffer.alloc(FRAME_HEADER_BYTES);
    b[0] = type;
    b[1] = flags;
    b.writeUInt32BE(id, 2);
    b.writeUInt32BE(length, 6);
    return b;
  };
  const cases: [string, Buffer][] = [
    ['bad-type', header(0, 0, 1, 0)],
    ['bad-type', header(9, 0, 1, 0)],
    ['bad-flags', header(FrameType.DATA, 1, 1, 0)],
    ['bad-length', header(FrameType.DATA, 0, 1, MAX_FRAME_PAYLOAD_BYTES + 1)],
    ['bad-length', header(FrameType.OPEN, 0, 1, 3)],
    ['bad-length', header(FrameType.WINDOW, 0, 1, 0xffffffff)],
    ['bad-stream-id', header(FrameType.PING, 0, 1, 8)],
    ['bad-stream-id', header(FrameType.DATA, 0, 0, 0)],
  ];
  for (const [code, bytes] of cases) {
    const decoder = new FrameDecoder();
    t.equal(decoder.push(bytes).error?.code, code, `${bytes.toString('hex')} -> ${code}`);
    t.equal(decoder.push(SAMPLE_FRAMES[1] as Buffer).frames.length, 0, 'and nothing after it');
  }
});

t.test('a peer breaking the protocol gets GOAWAY and the session closes', async (t) => {
  const cases: [string, Buffer][] = [
    ['bad-type', Buffer.from([0x42, 0, 0, 0, 0, 1, 0, 0, 0, 0])],
    ['unknown-stream', encodeFrame(FrameType.DATA, 9, Buffer.from('x'))],
    ['bad-stream-id', encodeFrame(FrameType.OPEN, 2, Buffer.from([0, 80]))],
    [
      'flow-control',
      Buffer.concat([
        encodeFrame(FrameType.OPEN, 1, Buffer.from([0, 80])),
        // The first is credited back at once (the reader has room), the
        // second fills the reader, the third overruns what is left.
        encodeFrame(FrameType.DATA, 1, pattern(40_000, 0)),
        encodeFrame(FrameType.DATA, 1, pattern(40_000, 0)),
        encodeFrame(FrameType.DATA, 1, pattern(40_000, 0)),
      ]),
    ],
  ];
  for (const [reason, bytes] of cases) {
    const [raw, b] = await socketPair(t);
    const errors: MuxProtocolError[] = [];
    const server = new MuxSession(b, {
      role: 'server',
      windowBytes: 64 * 1024,
      onProtocolError: (e) => errors.push(e),
    });
    server.on('stream', (s: MuxStream) => s.on('error', () => undefined));
    const received: Buffer[] = [];
    raw.on('data', (c: Buffer) => received.push(c));
    const closed = new Promise<void>((resolve) => server.once('close', resolve));
    raw.write(bytes);
    raw.once('end', () => raw.end());
    await closed;
    t.equal(errors[0]?.reason, reason, `${reason}: reported`);
    t.equal(errors[0]?.code, 'MUX_PROTOCOL_ERROR');
    const frames = new FrameDecoder().push(Buffer.concat(received)).frames;
    const goaway = frames.find((f) => f.type === FrameType.GOAWAY);
    t.equal(goaway?.payload.readUInt16BE(0), GoawayCode.PROTOCOL_ERROR, `${reason}: GOAWAY sent`);
  }
});

t.test('streams carry bytes both ways and half-close each way', async (t) => {
  const { client, accepted } = await sessionPair(t);
  const outgoing = client.openStream(8080);
  const incoming = await accepted();
  t.equal(incoming.port, 8080, 'OPEN carries the application port');
  const request = pattern(700_000, 3);
  const gotRequest = readAll(incoming);
  outgoing.end(request);
  t.ok((await gotRequest).equals(request), 'client -> server, then FIN');
  t.notOk(incoming.writableEnded, 'the server can still write after the client half-closed');
  const response = pattern(300_000, 9);
  const gotResponse = readAll(outgoing);
  incoming.end(response);
  t.ok((await gotResponse).equals(response), 'server -> client, then FIN');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(client.streamCount, 0, 'a stream ended both ways is released');
});

t.test('a paused reader does not stop another stream, and holds only its credit', async (t) => {
  const { client, accepted } = await sessionPair(t);
  const stalled = client.openStream(1);
  const stalledIn = await accepted();
  const moving = client.openStream(2);
  const movingIn = await accepted();
  stalledIn.pause();
  const big = pattern(4 * DEFAULT_STREAM_WINDOW_BYTES, 5);
  let isStalledDone = false;
  stalled.write(big, () => (isStalledDone = true));
  const payload = pattern(1024 * 1024, 6);
  const got = readAll(movingIn);
  moving.end(payload);
  t.ok((await got).equals(payload), 'the other stream delivered all its bytes');
  t.notOk(isStalledDone, 'the stalled write is still waiting for credit');
  t.ok(
    stalledIn.readableLength <= DEFAULT_STREAM_WINDOW_BYTES + 64 * 1024,
    `the paused stream buffers ${stalledIn.readableLength} bytes, within its window`,
  );
  const rest = readAll(stalledIn);
  stalled.end();
  stalledIn.resume();
  t.equal((await rest).length, big.length, 'resuming the reader delivers the rest');
});

t.test('destroying a stream resets it on the other side', async (t) => {
  const { client, accepted } = await sessionPair(t);
  const outgoing = client.openStream(1);
  const incoming = await accepted();
  const error = new Promise<Error>((resolve) => incoming.once('error', resolve));
  outgoing.on('error', () => undefined);
  outgoing.destroy();
  const err = await error;
  t.ok(err instanceof StreamResetError);
  t.equal((err as StreamResetError).resetCode, ResetCode.CANCEL);
  t.equal((err as StreamResetError).code, 'MUX_STREAM_RESET');

  const second = client.openStream(2);
  const secondIn = await accepted();
  const reset = new Promise<Error>((resolve) => second.once('error', resolve));
  secondIn.reset(ResetCode.APP_UNREACHABLE);
  t.equal(((await reset) as StreamResetError).resetCode, ResetCode.APP_UNREACHABLE);
});

t.test('ping is answered, and a drained session closes with its last stream', async (t) => {
  const { client, server, accepted } = await sessionPair(t);
  await client.ping();
  t.pass('PONG received');
  const stream = client.openStream(1);
  const incoming = await accepted();
  client.drain();
  t.notOk(client.isAvailable, 'a draining session takes no new streams');
  t.throws(() => client.openStream(2), { code: 'MUX_UNAVAILABLE' });
  const closed = new Promise((resolve) => server.once('close', resolve));
  incoming.resume();
  stream.resume();
  stream.end();
  incoming.end();
  await closed;
  t.ok(client.closed || server.closed, 'the connection closed once the stream ended');
});

t.test('a session refuses streams past its limit', async (t) => {
  const [a, b] = await socketPair(t);
  const client = new MuxSession(a, { role: 'client', maxStreams: 2 });
  const server = new MuxSession(b, { role: 'server', maxStreams: 1 });
  server.on('stream', (s: MuxStream) => s.on('error', () => undefined));
  client.openStream(1).on('error', () => undefined);
  const refused = client.openStream(1);
  const err = await new Promise<Error>((resolve) => refused.once('error', resolve));
  t.equal((err as StreamResetError).resetCode, ResetCode.REFUSED, 'the server refuses the second');
  t.notOk(client.isAvailable === true && client.streamCount >= 2, 'the client counts its limit');
});
