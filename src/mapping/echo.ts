/**
 * Echo suppression: uplinks sent north whose copy the north broker sends back (a north
 * session subscribed to the device's own topics) must not reach the device as downlinks.
 * A bounded multiset of (topic, payload): every uplink adds one, every matching downlink
 * takes one, each in constant time. It outlives a session when the north session is
 * persistent, since the broker then keeps echoes queued while the device is away.
 */
import { createHash } from 'node:crypto';

// Large enough for a flood: echoes lag behind uplinks by what the north broker queues.
const MAX_ENTRIES = 65_536;
/** Payloads up to this size are part of the key as they are; larger ones by digest. */
const INLINE_BYTES = 256;

function keyOf(topic: string, payload: Buffer): string {
  const body =
    payload.length <= INLINE_BYTES
      ? payload.toString('latin1')
      : createHash('sha256').update(payload).digest('base64');
  return `${topic}\u0000${payload.length}\u0000${body}`;
}

export class EchoSet {
  /** Made on the first uplink: a device that never publishes holds no table. */
  private counts: Map<string, number> | undefined;
  /** Keys in insertion order, one per entry added: the oldest go first when full. */
  private order: string[] | undefined;
  private head = 0;
  private size = 0;

  add(topic: string, payload: Buffer): void {
    const key = keyOf(topic, payload);
    this.counts ??= new Map();
    this.order ??= [];
    const counts = this.counts;
    const order = this.order;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    order.push(key);
    this.size++;
    while (this.size > MAX_ENTRIES && this.head < order.length) this.drop(order[this.head++]!);
    if (this.head > MAX_ENTRIES || order.length > 4 * MAX_ENTRIES) this.compact();
  }

  /** True (and the entry is consumed) when this downlink is the echo of an uplink. */
  take(topic: string, payload: Buffer): boolean {
    if (this.size === 0) return false;
    return this.drop(keyOf(topic, payload));
  }

  /**
   * `take` on a PUBLISH frame as read from the north socket, by the offsets of its topic and
   * payload: an echo is recognised and consumed before the packet is parsed at all.
   */
  takeFrame(frame: Buffer, topicStart: number, topicEnd: number, payloadStart: number): boolean {
    if (this.size === 0) return false;
    const len = frame.length - payloadStart;
    const body =
      len <= INLINE_BYTES
        ? frame.toString('latin1', payloadStart)
        : createHash('sha256').update(frame.subarray(payloadStart)).digest('base64');
    return this.drop(`${frame.toString('utf8', topicStart, topicEnd)}\u0000${len}\u0000${body}`);
  }

  /** Undoes the last `n` additions (a will message is translated but never echoed). */
  forgetLast(n: number): void {
    const order = this.order;
    if (!order) return;
    for (let i = 0; i < n && order.length > this.head; i++) this.drop(order.pop()!);
  }

  get entries(): number {
    return this.size;
  }

  clear(): void {
    this.counts = undefined;
    this.order = undefined;
    this.head = 0;
    this.size = 0;
  }

  private drop(key: string): boolean {
    const counts = this.counts;
    const n = counts?.get(key);
    if (!counts || !n) return false;
    if (n === 1) counts.delete(key);
    else counts.set(key, n - 1);
    this.size--;
    return true;
  }

  /** Entries taken as echoes leave stale places in `order`: rebuild it from the counts. */
  private compact(): void {
    const order: string[] = [];
    for (const [k, n] of this.counts ?? []) for (let i = 0; i < n; i++) order.push(k);
    this.order = order;
    this.head = 0;
  }
}
