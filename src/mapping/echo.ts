/**
 * Echo suppression: uplinks sent north whose copy the north broker sends back (a north
 * session subscribed to the device's own topics) must not reach the device as downlinks.
 * A bounded multiset of (topic, payload): every uplink adds one, every matching downlink
 * takes one, each in constant time. It outlives a session when the north session is
 * persistent, since the broker then keeps echoes queued while the device is away.
 *
 * Echoes come back in the order the uplinks went out, so new entries wait in a queue as
 * they are (topic string, payload buffer: nothing built per uplink) and a downlink is first
 * compared, byte for byte, with the oldest. Anything else (an echo out of order, a lost one,
 * a downlink that is no echo) moves the queue into the keyed table, where any entry is found
 * by its (topic, payload) key: each entry is moved at most once.
 *
 * Bounded by count and by bytes: the queue holds the payload buffers themselves (views into
 * socket reads, often), so past QUEUE_BYTES of them it moves into the table, whose keys hold
 * a payload up to INLINE_BYTES as it is and a larger one as its SHA-256 (no false match in
 * practice: a downlink is dropped as an echo only when it equals an uplink, as before); the
 * table keeps at most TABLE_BYTES of keys, the oldest going first, like the oldest entries
 * when it is full by count. An echo that comes back after its entry went is delivered to the
 * device as a downlink (the bound errs on the side of delivering).
 */
import { createHash } from 'node:crypto';

// Large enough for a flood: echoes lag behind uplinks by what the north broker queues.
const MAX_ENTRIES = 65_536;
/** Payloads up to this size are part of the key as they are; larger ones by digest. */
const INLINE_BYTES = 256;
/** Payload bytes the queue may keep alive (see `retained`) before it moves into the table. */
const QUEUE_BYTES = 1024 * 1024;
/** Key characters the table may hold (65,536 keys of a 30-byte topic and a 30-byte payload fit). */
const TABLE_BYTES = 4 * 1024 * 1024;

/**
 * What keeping `payload` keeps alive: its length, or the whole buffer it is a view into when
 * that is much larger (a socket read; not a small pooled slab shared with other buffers).
 */
function retained(payload: Buffer): number {
  const whole = payload.buffer.byteLength;
  return whole > 2 * payload.length + 8192 ? whole : payload.length;
}

function keyOf(topic: string, payload: Buffer): string {
  const body =
    payload.length <= INLINE_BYTES
      ? payload.toString('latin1')
      : createHash('sha256').update(payload).digest('base64');
  return `${topic}\u0000${payload.length}\u0000${body}`;
}

const EMPTY = Buffer.alloc(0);

/** True when `topic` is ASCII and equals the bytes [start, end) of `frame` (no decoding). */
function sameAscii(topic: string, frame: Buffer, start: number, end: number): boolean {
  if (topic.length !== end - start) return false;
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c >= 0x80 || c !== frame[start + i]) return false;
  }
  return true;
}

export class EchoSet {
  /** Made on the first uplink: a device that never publishes holds no table. */
  private counts: Map<string, number> | undefined;
  /** Keys in insertion order, one per entry added: the oldest go first when full. */
  private order: string[] | undefined;
  private head = 0;
  /** Entries in the table (`counts`). */
  private keyed = 0;
  /** Newer entries not yet in the table, oldest first from `qHead` (all newer than the table's). */
  private qTopics: string[] | undefined;
  private qPayloads: Buffer[] | undefined;
  private qHead = 0;
  /** `retained` bytes of the queued payloads. */
  private qBytes = 0;
  /** Characters of the keys in `order` from `head` (stale places included: they hold their strings). */
  private keyBytes = 0;

  add(topic: string, payload: Buffer): void {
    this.qTopics ??= [];
    this.qPayloads ??= [];
    this.qTopics.push(topic);
    this.qPayloads.push(payload);
    this.qBytes += retained(payload);
    if (this.entries > MAX_ENTRIES) this.evictOldest();
    if (this.qBytes > QUEUE_BYTES) this.settle();
  }

  /** Bytes the set holds: queued payloads (as `retained` counts them) and table keys. */
  get bytes(): number {
    return this.qBytes + this.keyBytes;
  }

  /** True (and the entry is consumed) when this downlink is the echo of an uplink. */
  take(topic: string, payload: Buffer): boolean {
    if (this.entries === 0) return false;
    const q = this.qHead;
    if (this.queued > 0 && this.qTopics![q] === topic && this.qPayloads![q]!.equals(payload)) {
      this.shift();
      return true;
    }
    this.settle();
    return this.drop(keyOf(topic, payload));
  }

  /**
   * `take` on a PUBLISH frame as read from the north socket, by the offsets of its topic and
   * payload: an echo is recognised and consumed before the packet is parsed at all.
   */
  takeFrame(frame: Buffer, topicStart: number, topicEnd: number, payloadStart: number): boolean {
    if (this.entries === 0) return false;
    if (this.queued > 0) {
      const q = this.qHead;
      const p = this.qPayloads![q]!;
      if (
        frame.compare(p, 0, p.length, payloadStart, frame.length) === 0 &&
        sameAscii(this.qTopics![q]!, frame, topicStart, topicEnd)
      ) {
        this.shift();
        return true;
      }
      this.settle();
    }
    const len = frame.length - payloadStart;
    const body =
      len <= INLINE_BYTES
        ? frame.toString('latin1', payloadStart)
        : createHash('sha256').update(frame.subarray(payloadStart)).digest('base64');
    return this.drop(`${frame.toString('utf8', topicStart, topicEnd)}\u0000${len}\u0000${body}`);
  }

  /** Undoes the last `n` additions (a will message is translated but never echoed). */
  forgetLast(n: number): void {
    let i = 0;
    for (; i < n && this.queued > 0; i++) {
      this.qTopics!.pop();
      this.qBytes -= retained(this.qPayloads!.pop()!);
    }
    const order = this.order;
    if (!order) return;
    for (; i < n && order.length > this.head; i++) {
      const k = order.pop()!;
      this.keyBytes -= k.length;
      this.drop(k);
    }
  }

  get entries(): number {
    return this.keyed + this.queued;
  }

  /**
   * Moves the queue into the table (also when a session ends and its set is kept: the
   * table's keys hold no reference to the payload buffers).
   */
  settle(): void {
    const topics = this.qTopics;
    const payloads = this.qPayloads;
    if (!topics || !payloads || this.queued === 0) return;
    this.counts ??= new Map();
    this.order ??= [];
    const counts = this.counts;
    const order = this.order;
    for (let i = this.qHead; i < topics.length; i++) {
      const key = keyOf(topics[i]!, payloads[i]!);
      counts.set(key, (counts.get(key) ?? 0) + 1);
      order.push(key);
      this.keyBytes += key.length;
      this.keyed++;
    }
    this.qTopics = undefined;
    this.qPayloads = undefined;
    this.qHead = 0;
    this.qBytes = 0;
    if (this.head > MAX_ENTRIES || order.length > 4 * MAX_ENTRIES) this.compact();
    if (this.keyBytes > TABLE_BYTES) {
      // Stale places (entries taken as echoes) go first; then the oldest entries.
      if (this.order!.length - this.head > this.keyed) this.compact();
      const o = this.order!;
      while (this.keyBytes > TABLE_BYTES && this.head < o.length) {
        const k = o[this.head++]!;
        this.keyBytes -= k.length;
        this.drop(k);
      }
    }
  }

  clear(): void {
    this.counts = undefined;
    this.order = undefined;
    this.head = 0;
    this.keyed = 0;
    this.qTopics = undefined;
    this.qPayloads = undefined;
    this.qHead = 0;
    this.qBytes = 0;
    this.keyBytes = 0;
  }

  private get queued(): number {
    return this.qTopics ? this.qTopics.length - this.qHead : 0;
  }

  /** Consumes the oldest queued entry. */
  private shift(): void {
    const topics = this.qTopics!;
    const payloads = this.qPayloads!;
    // The payload buffer is let go at once; the arrays are cut down now and then.
    this.qBytes -= retained(payloads[this.qHead]!);
    topics[this.qHead] = '';
    payloads[this.qHead] = EMPTY;
    this.qHead++;
    if (this.qHead === topics.length) {
      this.qTopics = undefined;
      this.qPayloads = undefined;
      this.qHead = 0;
      this.qBytes = 0;
    } else if (this.qHead >= 1024 && this.qHead * 2 >= topics.length) {
      this.qTopics = topics.slice(this.qHead);
      this.qPayloads = payloads.slice(this.qHead);
      this.qHead = 0;
    }
  }

  /** Drops the oldest entry when full: the table's first (older than the queue), else the queue's. */
  private evictOldest(): void {
    const order = this.order;
    while (this.keyed > 0 && order && this.head < order.length) {
      const k = order[this.head++]!;
      this.keyBytes -= k.length;
      if (this.drop(k)) return;
    }
    if (this.queued > 0) this.shift();
  }

  private drop(key: string): boolean {
    const counts = this.counts;
    const n = counts?.get(key);
    if (!counts || !n) return false;
    if (n === 1) counts.delete(key);
    else counts.set(key, n - 1);
    this.keyed--;
    return true;
  }

  /** Entries taken as echoes leave stale places in `order`: rebuild it from the counts. */
  private compact(): void {
    const order: string[] = [];
    let bytes = 0;
    for (const [k, n] of this.counts ?? [])
      for (let i = 0; i < n; i++) {
        order.push(k);
        bytes += k.length;
      }
    this.order = order;
    this.head = 0;
    this.keyBytes = bytes;
  }
}
