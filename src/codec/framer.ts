/**
 * Splits a byte stream into whole MQTT control packets, enforcing a maximum size before a
 * single byte of an oversize packet is buffered (mqtt-packet enforces none). Each frame is
 * handed to the receiver's `onFrame` as one Buffer holding exactly one packet (fixed header
 * included).
 */
export class FrameError extends Error {
  constructor(
    readonly code: 'MDP_ERR_PACKET_TOO_LARGE' | 'MDP_ERR_MALFORMED_LENGTH',
    message: string,
  ) {
    super(message);
  }
}

/** What a Framer hands its frames to (an object, so a connection needs no closure for it). */
export interface FrameReceiver {
  onFrame(frame: Buffer): void;
}

export class Framer {
  /** Bytes of an incomplete frame, kept between chunks (none between whole frames). */
  private pending: Buffer[] | undefined;
  private pendingBytes = 0;
  /** Total size of the frame being assembled (header + remaining length), or -1 when unknown. */
  private need = -1;

  constructor(
    private readonly maxRemainingLength: number,
    private readonly receiver: FrameReceiver,
  ) {}

  /** Feeds one chunk; throws FrameError on an oversize or malformed length. */
  push(chunk: Buffer): void {
    let buf = chunk;
    const pending = this.pending;
    if (pending) {
      pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.need >= 0 && this.pendingBytes < this.need) return;
      buf = Buffer.concat(pending, this.pendingBytes);
      this.pending = undefined;
      this.pendingBytes = 0;
    }
    let off = 0;
    const len = buf.length;
    while (off < len) {
      const total = this.frameSize(buf, off);
      if (total < 0 || off + total > len) {
        const rest = buf.subarray(off);
        this.pending = [rest];
        this.pendingBytes = rest.length;
        this.need = total;
        return;
      }
      this.need = -1;
      this.receiver.onFrame(buf.subarray(off, off + total));
      off += total;
    }
    this.need = -1;
  }

  /** Whole frame size at `off`, or -1 when the header is not complete yet. */
  private frameSize(buf: Buffer, off: number): number {
    let mul = 1;
    let value = 0;
    let pos = off + 1;
    for (let i = 0; i < 4; i++) {
      if (pos >= buf.length) return -1;
      const b = buf[pos++]!;
      value += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) {
        if (value > this.maxRemainingLength) {
          throw new FrameError(
            'MDP_ERR_PACKET_TOO_LARGE',
            `packet of ${value} bytes exceeds the limit of ${this.maxRemainingLength} bytes`,
          );
        }
        return pos - off + value;
      }
      mul *= 128;
    }
    throw new FrameError('MDP_ERR_MALFORMED_LENGTH', 'malformed remaining length (more than 4 bytes)');
  }
}
