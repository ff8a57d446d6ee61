/** Small readers of raw MQTT frame bytes, shared by the codec. */

/** A byte range [start, end) of a frame. */
export interface Range {
  start: number;
  end: number;
}

/** Offset just past the fixed header (type byte and remaining length) of a whole frame. */
export function bodyStart(frame: Buffer): number {
  let off = 1;
  while (off < 5 && off < frame.length && (frame[off]! & 0x80) !== 0) off++;
  return off + 1;
}

/** Reads a variable byte integer at `off`: [value, offset after it], or undefined past `end`. */
export function readVarint(buf: Buffer, off: number, end: number): [number, number] | undefined {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 4; i++) {
    if (off >= end) return undefined;
    const b = buf[off++]!;
    value += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return [value, off];
    mul *= 128;
  }
  return undefined;
}

/** A variable byte integer's bytes. */
export function encodeVarint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) b |= 0x80;
    out.push(b);
  } while (v > 0);
  return Buffer.from(out);
}
