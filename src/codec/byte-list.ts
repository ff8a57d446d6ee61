/**
 * The byte buffer of the proxy's mqtt-packet parsers: the methods of `bl`'s `BufferList`
 * that mqtt-packet's parser calls, with the same results, made cheap for the way the proxy
 * feeds it (one whole frame at a time).
 *
 * `BufferList` makes a new Buffer for every read: `append` wraps the chunk in another view,
 * `readUInt8`/`readUInt16BE` slice a view of one or two bytes and read it, `toString` slices
 * before decoding, and `_offset` returns a fresh [index, offset] pair each time. A PUBLISH
 * parse made six to eight of them; that was most of mqtt-packet's share of the proxy's CPU
 * per message (BENCHMARKS.md, finding 16). Here the bytes are one contiguous Buffer and an
 * offset: reads index it directly. Chunks appended while bytes are waiting (a packet that
 * arrives in pieces) are joined once, at the first read that needs them; mqtt-packet checks
 * `length` alone until a packet is complete, so a packet is joined at most once.
 *
 * Not a general `BufferList`: only what mqtt-packet 9's parser uses (see `LIST_METHODS` in
 * `lean-parser.ts`, which checks it at load). Offsets are relative to the first unconsumed
 * byte, as in `BufferList`; a read past the end throws a RangeError as Buffer's does.
 */
const EMPTY = Buffer.alloc(0);

export class ByteList {
  /** Bytes not yet consumed. */
  length = 0;
  /** The first bytes, from `off`; `rest` holds chunks appended after them, not joined yet. */
  private buf: Buffer = EMPTY;
  private off = 0;
  private rest: Buffer[] | undefined;

  append(chunk: Uint8Array): this {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (b.length === 0) return this;
    if (this.length === 0) {
      this.buf = b;
      this.off = 0;
    } else if (this.rest) this.rest.push(b);
    else this.rest = [b];
    this.length += b.length;
    return this;
  }

  consume(bytes: number): this {
    const n = Math.trunc(bytes);
    if (Number.isNaN(n) || n <= 0) return this;
    if (n >= this.length) {
      this.buf = EMPTY;
      this.off = 0;
      this.rest = undefined;
      this.length = 0;
      return this;
    }
    this.joined();
    this.off += n;
    this.length -= n;
    return this;
  }

  readUInt8(offset = 0): number {
    return this.joined().readUInt8(this.at(offset));
  }

  readUInt16BE(offset = 0): number {
    return this.joined().readUInt16BE(this.at(offset));
  }

  readUInt32BE(offset = 0): number {
    return this.joined().readUInt32BE(this.at(offset));
  }

  /** Bytes `start` to `end` (BufferList's defaults and clamping), a view, not a copy. */
  slice(start?: number, end?: number): Buffer {
    const s = this.from(start);
    const e = this.to(end);
    if (s >= this.length || e <= 0) return Buffer.alloc(0);
    const b = this.joined();
    if (s === 0 && e === this.length) return this.off === 0 ? b : b.subarray(this.off);
    return b.subarray(this.off + s, this.off + Math.max(s, e));
  }

  toString(encoding?: BufferEncoding, start?: number, end?: number): string {
    const s = this.from(start);
    const e = this.to(end);
    if (s >= this.length || e <= s) return '';
    return this.joined().toString(encoding, this.off + s, this.off + e);
  }

  /** A `start` as BufferList reads it: negative counts from the end, missing or before 0 is 0. */
  private from(start: number | undefined): number {
    const s = typeof start === 'number' && start < 0 ? start + this.length : start;
    return typeof s !== 'number' || s < 0 ? 0 : s;
  }

  /** An `end` as BufferList reads it: negative counts from the end, missing or past it is `length`. */
  private to(end: number | undefined): number {
    const e = typeof end === 'number' && end < 0 ? end + this.length : end;
    return typeof e !== 'number' || e > this.length ? this.length : e;
  }

  /** The unconsumed bytes as one Buffer from `off` (joins appended chunks once). */
  private joined(): Buffer {
    const rest = this.rest;
    if (rest) {
      rest.unshift(this.off === 0 ? this.buf : this.buf.subarray(this.off));
      this.buf = Buffer.concat(rest, this.length);
      this.off = 0;
      this.rest = undefined;
    }
    return this.buf;
  }

  /** Position in `buf` of `offset`; negative offsets are out of range, as for a Buffer. */
  private at(offset: number): number {
    if (offset < 0) throw new RangeError(`offset ${offset} is out of range`);
    return this.off + offset;
  }
}
