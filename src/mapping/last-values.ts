/**
 * The last value the proxy saw on each south topic, shared by the sessions of one route, for
 * dialects whose clients may ask for it when they subscribe (EVRYTHNG `?pubStates=1`). Entries
 * are keyed by an identity scope as well as the topic: a client only ever gets values seen
 * within its own scope (its Thng, product, collection or account), never another identity's.
 * Bounded in entries and bytes; the oldest entries go first. Pure: no timers, no I/O.
 *
 * A value is kept as a copy in a buffer of its own: what a session hands over is usually a
 * view into a whole socket read (up to 64 KiB behind a value of a few bytes), and keeping the
 * view would keep that read, far beyond the byte budget that counts only the value.
 */

/** The bytes of `b` in memory of their own (a pooled slab or a socket read is not kept alive). */
function own(b: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(b.length);
  b.copy(copy);
  return copy;
}

export interface LastValuesLimits {
  /** Most entries kept (default 10,000). */
  maxEntries?: number;
  /** Most payload bytes kept in all (default 16 MiB). */
  maxBytes?: number;
  /** Larger payloads are not kept (default 64 KiB). */
  maxValueBytes?: number;
}

export class LastValues {
  private readonly map = new Map<string, Buffer>();
  private bytes = 0;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly maxValueBytes: number;

  constructor(limits: LastValuesLimits = {}) {
    this.maxEntries = limits.maxEntries ?? 10_000;
    this.maxBytes = limits.maxBytes ?? 16 * 1024 * 1024;
    this.maxValueBytes = limits.maxValueBytes ?? 64 * 1024;
  }

  get size(): number {
    return this.map.size;
  }

  set(scope: string, topic: string, payload: Buffer): void {
    const k = `${scope}\0${topic}`;
    const prev = this.map.get(k);
    if (prev) {
      this.map.delete(k);
      this.bytes -= prev.length;
    }
    if (payload.length > this.maxValueBytes) return;
    this.map.set(k, own(payload));
    this.bytes += payload.length;
    for (const [old, v] of this.map) {
      if (this.map.size <= this.maxEntries && this.bytes <= this.maxBytes) break;
      this.map.delete(old);
      this.bytes -= v.length;
    }
  }

  get(scope: string, topic: string): Buffer | undefined {
    return this.map.get(`${scope}\0${topic}`);
  }
}
