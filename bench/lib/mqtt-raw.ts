/**
 * MQTT 3.1.1 on raw sockets for the load generator: packets are built once with
 * mqtt-packet and copied into batches; received bytes are split into frames by a small
 * scanner that allocates nothing per packet, so the generator stays far from being the
 * bottleneck (its own ceiling is measured and printed by the run).
 */
import mqtt from 'mqtt-packet';

export const DISCONNECT = Buffer.from([0xe0, 0x00]);
export const PINGREQ = Buffer.from([0xc0, 0x00]);

export interface Identity {
  clientId: string;
  username?: string;
  password?: string;
}

export function connectPacket(id: Identity, keepalive = 600): Buffer {
  return mqtt.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    keepalive,
    clientId: id.clientId,
    ...(id.username !== undefined ? { username: id.username } : {}),
    ...(id.password !== undefined ? { password: Buffer.from(id.password) } : {}),
  });
}

export function subscribePacket(filters: string[], qos: 0 | 1, messageId = 1): Buffer {
  return mqtt.generate({
    cmd: 'subscribe',
    messageId,
    subscriptions: filters.map((topic) => ({ topic, qos })),
  });
}

/** A PUBLISH packet and where its packet id and latency stamp live, for copying into batches. */
export interface PublishTemplate {
  bytes: Buffer;
  /** Offset of the 2-byte packet id (QoS 1), or -1. */
  idOffset: number;
  /** Offset of the 15 decimal digits after the '@' stamp marker. */
  stampOffset: number;
}

export const STAMP_DIGITS = 15;

/**
 * The payload: a JSON string of exactly `size` bytes, `"@<15 digits>xxxx…"`. The digits
 * carry the send time in microseconds; a route may wrap the value in its own JSON and the
 * subscriber still finds the marker.
 */
export function stampPayload(size: number): Buffer {
  const inner = size - 2 - 1 - STAMP_DIGITS;
  if (inner < 0) throw new Error(`payload size ${size} is too small for the latency stamp`);
  return Buffer.from(`"@${'0'.repeat(STAMP_DIGITS)}${'x'.repeat(inner)}"`);
}

export function publishTemplate(topic: string, payload: Buffer, qos: 0 | 1): PublishTemplate {
  const bytes = mqtt.generate({
    cmd: 'publish',
    topic,
    payload,
    qos,
    dup: false,
    retain: false,
    ...(qos > 0 ? { messageId: 1 } : {}),
  });
  let headerLen = 1;
  while ((bytes[headerLen] ?? 0) & 0x80) headerLen++;
  headerLen++;
  const topicLen = Buffer.byteLength(topic);
  const idOffset = qos > 0 ? headerLen + 2 + topicLen : -1;
  const payloadOffset = headerLen + 2 + topicLen + (qos > 0 ? 2 : 0);
  const at = bytes.indexOf(0x40, payloadOffset);
  return { bytes, idOffset, stampOffset: at < 0 ? -1 : at + 1 };
}

/** Writes `count` copies of the template into one buffer, numbering packet ids from `firstId`. */
export function publishBatch(t: PublishTemplate, count: number, firstId: number, stampUs?: number): Buffer {
  const len = t.bytes.length;
  const out = Buffer.allocUnsafe(len * count);
  let stamp: string | undefined;
  if (stampUs !== undefined && t.stampOffset >= 0) stamp = String(stampUs).padStart(STAMP_DIGITS, '0');
  let id = firstId;
  for (let i = 0; i < count; i++) {
    const base = i * len;
    t.bytes.copy(out, base);
    if (t.idOffset >= 0) {
      out.writeUInt16BE(id, base + t.idOffset);
      id = id >= 65535 ? 1 : id + 1;
    }
    if (stamp !== undefined) out.write(stamp, base + t.stampOffset, 'latin1');
  }
  return out;
}

export function nextId(id: number, count: number): number {
  return ((id - 1 + count) % 65535) + 1;
}

export function pubackPacket(id: number): Buffer {
  return Buffer.from([0x40, 0x02, id >> 8, id & 0xff]);
}

export type FrameHandler = (type: number, flags: number, buf: Buffer, start: number, end: number) => void;

/** Splits a byte stream into MQTT frames; `start..end` is the variable header + payload. */
export class FrameScanner {
  private rest: Buffer | null = null;

  constructor(private readonly onFrame: FrameHandler) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.rest) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    let pos = 0;
    const n = buf.length;
    while (pos < n) {
      if (n - pos < 2) break;
      const first = buf[pos] as number;
      let len = 0;
      let mul = 1;
      let i = pos + 1;
      let complete = false;
      for (let k = 0; k < 4 && i < n; k++, i++) {
        const b = buf[i] as number;
        len += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          i++;
          break;
        }
      }
      if (!complete || i + len > n) break;
      this.onFrame(first >> 4, first & 0x0f, buf, i, i + len);
      pos = i + len;
    }
    if (pos < n) this.rest = buf.subarray(pos);
  }
}

/** Reads the 15 stamp digits after the first '@' in `buf[start..end)`; -1 when absent. */
export function readStamp(buf: Buffer, start: number, end: number): number {
  const at = buf.indexOf(0x40, start);
  if (at < 0 || at + 1 + STAMP_DIGITS > end) return -1;
  let v = 0;
  for (let i = at + 1; i <= at + STAMP_DIGITS; i++) {
    const d = (buf[i] as number) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

export function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}
