/**
 * Packets over any byte stream (TCP, TLS, WebSocket): the only place that reads or writes
 * bytes. One read path (framer → mqtt-packet parser → `onPacket`), one write path that
 * batches writes per event-loop turn (cork/uncork) and reports backpressure, one error path,
 * and an idempotent `close()`.
 */
import type { Duplex } from 'node:stream';
import mqtt, { type Packet } from 'mqtt-packet';
import { FrameError, Framer } from './framer.js';

export interface ChannelEvents {
  onPacket(packet: Packet, bytes: number): void;
  /** The channel failed (bad bytes, oversize packet, socket error) or the peer closed; called once. */
  onClose(reason: string, error?: Error): void;
  /** The peer's write buffer drained after `write` returned false. */
  onDrain(): void;
}

export interface ChannelOptions {
  maxPacketBytes: number;
  /** Protocol version for parsing; 0 lets the first CONNECT decide (south side). */
  protocolVersion: 3 | 4 | 5 | 0;
  /** Called with the packet type and size of every packet written (metrics). */
  onWritten?: (cmd: string, bytes: number) => void;
}

export class PacketChannel {
  private readonly parser: mqtt.Parser;
  private readonly framer: Framer;
  private closed = false;
  /** True between the first write of an event-loop turn and the uncork at its end. */
  corked = false;
  private genOpts: { protocolVersion: number };
  /** Set when a write returned false; cleared on 'drain'. */
  blocked = false;
  lastReadAt = Date.now();

  constructor(
    readonly stream: Duplex,
    private readonly events: ChannelEvents,
    private readonly opts: ChannelOptions,
  ) {
    this.genOpts = { protocolVersion: opts.protocolVersion || 4 };
    this.parser = mqtt.parser(opts.protocolVersion ? { protocolVersion: opts.protocolVersion } : {});
    let frameBytes = 0;
    this.parser.on('packet', (p: Packet) => this.events.onPacket(p, frameBytes));
    this.parser.on('error', (err: Error) => this.fail('malformed_packet', err));
    this.framer = new Framer(opts.maxPacketBytes, (frame) => {
      if (this.closed) return;
      frameBytes = frame.length;
      this.parser.parse(frame);
    });
    stream.on('data', (chunk: Buffer) => {
      if (this.closed) return;
      this.lastReadAt = Date.now();
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
    });
    stream.on('drain', () => {
      this.blocked = false;
      this.events.onDrain();
    });
    stream.on('error', (err: Error) => this.fail('socket_error', err));
    stream.on('close', () => this.fail('peer_closed'));
    stream.on('end', () => this.fail('peer_closed'));
  }

  /** Protocol version used to generate packets (and to parse, once known). */
  setProtocolVersion(v: 3 | 4 | 5): void {
    this.genOpts = { protocolVersion: v };
  }

  /** Writes one packet; false when the peer is not keeping up (wait for onDrain). */
  write(packet: Packet): boolean {
    if (this.closed) return false;
    let buf: Buffer;
    try {
      buf = mqtt.generate(packet, this.genOpts);
    } catch (err) {
      this.fail('generate_failed', err as Error);
      return false;
    }
    this.opts.onWritten?.(packet.cmd, buf.length);
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
    this.closed = true;
    if (this.corked) {
      this.corked = false;
      this.stream.uncork();
    }
    this.stream.end();
    // A peer that never reads must not keep the socket forever.
    setTimeout(() => this.stream.destroy(), 2000).unref();
  }

  /** Closes at once without flushing. Idempotent. */
  destroy(): void {
    this.closed = true;
    this.stream.destroy();
  }

  private fail(reason: string, err?: Error): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this.stream.destroy();
    this.events.onClose(reason, err);
  }
}

function uncork(ch: PacketChannel): void {
  ch.corked = false;
  if (!ch.isClosed) ch.stream.uncork();
}
