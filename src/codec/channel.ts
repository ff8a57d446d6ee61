/**
 * Packets over any byte stream (TCP, TLS, WebSocket): the only place that reads or writes
 * bytes. One read path (framer → mqtt-packet parser → `onPacket`), one write path that
 * batches the writes of one callback (cork, uncork on nextTick) and reports backpressure, one error path,
 * and an idempotent `close()`.
 */
import { isUtf8 } from 'node:buffer';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { Packet } from 'mqtt-packet';
import { bodyStart } from './bytes.js';
import { type ConnectLayout, connectLayout, encodeConnect, rememberConnect } from './connect-frame.js';
import {
  type FrameSink,
  parseFrame,
  parserSettingsFor,
  type VersionSettings,
  versionSettings,
} from './frame-parser.js';
import { FrameError, type FrameReceiver, Framer } from './framer.js';
import { publishProperties, rememberPublish, restoreOrder } from './property-order.js';
import mqtt from './quiet-mqtt-packet.js';

/**
 * An MQTT 3.1/3.1.1 PUBLISH frame (topic already checked) offered before it is parsed, by the
 * offsets of its parts; returns true when the handler took it whole.
 */
export type RawPublishHandler = (
  frame: Buffer,
  qos: number,
  messageId: number,
  topicStart: number,
  topicEnd: number,
  payloadStart: number,
) => boolean;

export interface ChannelEvents {
  onPacket(packet: Packet, bytes: number): void;
  /** The channel failed (bad bytes, oversize packet, socket error) or the peer closed; called once. */
  onClose(reason: string, error?: Error): void;
  /** The peer's write buffer drained after `write` returned false. */
  onDrain(): void;
  /** A last packet to send before a failed channel closes (e.g. CONNACK 1 for an unknown protocol level). */
  lastWords?(reason: string): Packet | undefined;
  /**
   * An MQTT 3.1/3.1.1 PUBLISH frame (topic already checked) offered before it is parsed, by
   * the offsets of its parts; true when the handler took it whole (it is then not parsed and
   * `onPacket` is not called): the north side drops a device's echoed uplinks this way.
   */
  onRawPublish?: RawPublishHandler;
}

export interface ChannelOptions {
  maxPacketBytes: number;
  /** Protocol version for parsing; 0 lets the first CONNECT decide (south side). */
  protocolVersion: 3 | 4 | 5 | 0;
  /** Called with the packet type and size of every packet written (metrics). */
  onWritten?: (cmd: string, bytes: number) => void;
}

/** The channel a stream feeds, kept on the stream for the shared listeners below. */
const CHANNEL = Symbol('PacketChannel');
type Fed = Duplex & { [CHANNEL]: PacketChannel };

function onStreamData(this: Fed, chunk: Buffer): void {
  this[CHANNEL].streamData(chunk);
}
function onStreamDrain(this: Fed): void {
  this[CHANNEL].streamDrain();
}
function onStreamError(this: Fed, err: Error): void {
  this[CHANNEL].streamGone(err);
}
function onStreamGone(this: Fed): void {
  this[CHANNEL].streamGone();
}

export class PacketChannel implements FrameSink, FrameReceiver {
  private readonly framer: Framer;
  private closed = false;
  /** True between the first write of a callback (a socket read, a timer) and the uncork after it. */
  corked = false;
  private genOpts: VersionSettings;
  /** Set when a write returned false; cleared on 'drain'. */
  blocked = false;
  lastReadAt = Date.now();
  /** mqtt-packet's parser settings for this connection (see frame-parser.ts). */
  parserSettings: object;
  /** The frame being parsed, its size, its layout when it is a CONNECT, and an MQTT 5 payload length. */
  private current: Buffer = NO_BYTES;
  private frameBytes = 0;
  private connect: ConnectLayout | undefined;
  private expectPayload = -1;
  private readonly onWritten: ChannelOptions['onWritten'];

  constructor(
    readonly stream: Duplex,
    private readonly events: ChannelEvents,
    opts: ChannelOptions,
  ) {
    // The options object is not kept (two channels per idle device): only the write counter.
    this.onWritten = opts.onWritten;
    this.genOpts = versionSettings(opts.protocolVersion || 4);
    this.parserSettings = parserSettingsFor(opts.protocolVersion || undefined);
    this.framer = new Framer(opts.maxPacketBytes, this);
    // The stream's listeners are functions shared by every channel, finding theirs through
    // the stream: no closures per connection (two channels per device).
    (stream as Fed)[CHANNEL] = this;
    stream.on('data', onStreamData);
    stream.on('drain', onStreamDrain);
    stream.on('error', onStreamError);
    stream.on('close', onStreamGone);
    stream.on('end', onStreamGone);
  }

  /** The stream's 'data': frames from the chunk (the listener is shared, see the constructor). */
  streamData(chunk: Buffer): void {
    if (this.closed) return;
    try {
      this.framer.push(chunk);
    } catch (err) {
      // A frame error is the peer's fault; anything else thrown while handling a packet is
      // ours: either way only this connection closes.
      this.fail(
        err instanceof FrameError
          ? err.code === 'MDP_ERR_PACKET_TOO_LARGE'
            ? 'packet_too_large'
            : 'malformed_packet'
          : 'internal_error',
        err as Error,
      );
    }
  }

  /** The stream's 'drain'. */
  streamDrain(): void {
    this.blocked = false;
    this.events.onDrain();
  }

  /** The stream's 'error' (`err`), or its 'close' / 'end' (none). */
  streamGone(err?: Error): void {
    if (err) this.fail('socket_error', err);
    else this.fail('peer_closed');
  }

  /** FrameSink: a packet parsed from the current frame. */
  onParsed(p: Packet): void {
    // Keepalive counts whole packets, not bytes: a trickled, never-finished packet does not.
    this.lastReadAt = Date.now();
    // mqtt-packet lets an MQTT 5 property overrun the property length into the payload.
    if (this.expectPayload >= 0 && p.cmd === 'publish' && p.payload.length !== this.expectPayload) {
      this.fail('malformed_packet', new Error('MQTT 5 properties overrun their length'));
      return;
    }
    // User properties keep the order they came in when the packet is written again.
    if (p.cmd === 'publish') {
      if (p.properties?.userProperties) rememberPublish(p.properties, this.current);
    } else if (p.cmd === 'connect') rememberConnect(p, this.current, this.connect);
    this.events.onPacket(p, this.frameBytes);
  }

  /** FrameSink: mqtt-packet refused the current frame. */
  onParseError(err: Error): void {
    this.fail(
      /protocol version/i.test(err.message) ? 'unsupported_protocol_version' : 'malformed_packet',
      err,
    );
  }

  /** FrameReceiver: one whole packet's bytes from the framer. */
  onFrame(frame: Buffer): void {
    if (this.closed) return;
    this.expectPayload = -1;
    const type = frame[0]! >> 4;
    // MQTT 3.1 leaves the flag bits of PUBREL, SUBSCRIBE and UNSUBSCRIBE unchecked (a resent
    // PUBREL carries DUP), as mosquitto does; mqtt-packet demands 0x2: give it that.
    if (this.genOpts.protocolVersion === 3 && FLAGS_2.has(type)) frame[0] = (type << 4) | 2;
    if (type === PUBLISH) {
      if (!validTopicBytes(frame)) {
        this.fail('malformed_topic');
        return;
      }
      if (this.genOpts.protocolVersion === 5) this.expectPayload = v5PayloadLength(frame);
      else if (this.events.onRawPublish && this.offerRaw(frame)) {
        this.lastReadAt = Date.now();
        return;
      }
    } else if (type === CONNECT) {
      // Flag rules and surplus bytes mqtt-packet does not check: closed without a CONNACK.
      this.connect = connectLayout(frame);
      if (this.connect?.violation) {
        this.fail('malformed_packet', new Error(this.connect.violation));
        return;
      }
    }
    this.current = frame;
    this.frameBytes = frame.length;
    try {
      parseFrame(frame, this);
    } finally {
      // An idle connection must not keep its last socket chunk alive.
      this.current = NO_BYTES;
      this.connect = undefined;
    }
  }

  /** Protocol version used to generate packets (and to parse, once known). */
  setProtocolVersion(v: 3 | 4 | 5): void {
    this.genOpts = versionSettings(v);
  }

  /** Writes one packet; false when the peer is not keeping up (wait for onDrain). */
  write(packet: Packet): boolean {
    if (this.closed) return false;
    let buf: Buffer;
    try {
      if (packet.cmd === 'connect') buf = encodeConnect(packet, this.genOpts);
      else {
        buf = mqtt.generate(packet, this.genOpts);
        if (packet.cmd === 'publish' && packet.properties?.userProperties)
          restoreOrder(packet.properties, buf, publishProperties);
      }
    } catch (err) {
      this.fail('generate_failed', err as Error);
      return false;
    }
    this.onWritten?.(packet.cmd, buf.length);
    if (!this.corked) {
      this.corked = true;
      this.stream.cork();
      process.nextTick(uncork, this);
    }
    const ok = this.stream.write(buf);
    if (!ok) this.blocked = true;
    return ok;
  }

  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    if (!this.closed) this.stream.resume();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Flushes what was written, then closes the stream. Idempotent. */
  end(): void {
    if (this.closed) return;
    this.closeFlushing();
    this.stream.end();
    // A peer that never reads must not keep the socket forever.
    setTimeout(() => this.stream.destroy(), 2000).unref();
  }

  /**
   * Flushes what was written and lets the peer close first (a broker closes the connection
   * on DISCONNECT), ending this side after `waitMs` if it has not: the side that closes first
   * keeps the connection's TIME_WAIT, and a client's is one of its ephemeral ports toward
   * that broker for a minute. Idempotent.
   */
  endAfterPeer(waitMs: number): void {
    if (this.closed) return;
    this.closeFlushing();
    const stream = this.stream;
    const timer = setTimeout(() => {
      stream.end();
      setTimeout(() => stream.destroy(), 2000).unref();
    }, waitMs);
    timer.unref();
    stream.once('close', () => clearTimeout(timer));
  }

  /** No more reads or writes; what this event-loop turn wrote goes out now. */
  private closeFlushing(): void {
    this.closed = true;
    if (this.corked) {
      this.corked = false;
      this.stream.uncork();
    }
  }

  /** Closes at once without flushing. Idempotent. */
  destroy(): void {
    this.closed = true;
    this.stream.destroy();
  }

  /**
   * Closes at once; on a plain TCP socket with nothing left to write, with a reset (RST),
   * which leaves no TIME_WAIT on this side (see `endAfterPeer`). The peer sees a lost
   * connection either way. Idempotent.
   */
  reset(): void {
    this.closed = true;
    resetStream(this.stream);
  }

  /** Offers a v3.1/3.1.1 PUBLISH frame to `onRawPublish`; false when malformed (the parser says why). */
  private offerRaw(frame: Buffer): boolean {
    let off = 1;
    while (off < 5 && (frame[off]! & 0x80) !== 0) off++;
    off++;
    if (off + 2 > frame.length) return false;
    const topicStart = off + 2;
    const topicEnd = topicStart + frame.readUInt16BE(off);
    const qos = (frame[0]! >> 1) & 3;
    const payloadStart = qos > 0 ? topicEnd + 2 : topicEnd;
    if (qos === 3 || payloadStart > frame.length) return false;
    const messageId = qos > 0 ? frame.readUInt16BE(topicEnd) : 0;
    if (qos > 0 && messageId === 0) return false;
    return this.events.onRawPublish!(frame, qos, messageId, topicStart, topicEnd, payloadStart);
  }

  private fail(reason: string, err?: Error): void {
    if (this.closed) {
      return;
    }
    const last = this.events.lastWords?.(reason);
    if (last) {
      this.write(last);
      this.end();
    } else {
      this.closed = true;
      this.stream.destroy();
    }
    this.events.onClose(reason, err);
  }
}

const NO_BYTES = Buffer.alloc(0);

const CONNECT = 1;
const PUBLISH = 3;
/** PUBREL, SUBSCRIBE, UNSUBSCRIBE: fixed header flags 0x2 from MQTT 3.1.1 on. */
const FLAGS_2 = new Set([6, 8, 10]);

/**
 * A PUBLISH topic must be well-formed UTF-8 without U+0000 (MQTT-1.5.3-1, -2). The parser
 * would silently replace bad sequences, so the raw bytes are checked here.
 */
function validTopicBytes(frame: Buffer): boolean {
  const off = bodyStart(frame);
  if (off + 2 > frame.length) return true; // too short: the parser reports it
  const start = off + 2;
  const end = Math.min(start + frame.readUInt16BE(off), frame.length);
  // ASCII (nearly every topic) is checked in place; from the first other byte on, the rest
  // is checked as UTF-8 (an ASCII prefix is whole characters).
  for (let i = start; i < end; i++) {
    const c = frame[i]!;
    if (c === 0) return false;
    if (c >= 0x80) {
      const rest = frame.subarray(i, end);
      return rest.indexOf(0) === -1 && isUtf8(rest);
    }
  }
  return true;
}

/** Payload length of an MQTT 5 PUBLISH frame by its declared lengths, or -1 when unreadable. */
function v5PayloadLength(frame: Buffer): number {
  const props = publishProperties(frame);
  return props ? frame.length - props.end : -1;
}

/**
 * Closes a stream at once: with a TCP reset (no TIME_WAIT on this side) when it is a
 * connected plain TCP socket with nothing left to write, else with `destroy()`. A TLS socket
 * cannot be reset (Node throws ERR_INVALID_HANDLE_TYPE: its handle is the TLS layer's).
 */
export function resetStream(stream: Duplex): void {
  const s = stream as Duplex & { resetAndDestroy?: () => void; connecting?: boolean };
  if (
    typeof s.resetAndDestroy === 'function' &&
    !(stream instanceof TLSSocket) &&
    s.writableLength === 0 &&
    !s.connecting &&
    !s.destroyed
  )
    s.resetAndDestroy();
  else s.destroy();
}

function uncork(ch: PacketChannel): void {
  ch.corked = false;
  if (!ch.isClosed) ch.stream.uncork();
}
