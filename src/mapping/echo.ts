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
  private readonly counts = new Map<string, number>();
  /** Keys in insertion order, one per entry added: the oldest go first when full. */
  private order: string[] = [];
  private head = 0;
  private size = 0;

  add(topic: string, payload: Buffer): void {
    const key = keyOf(topic, payload);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.order.push(key);
    this.size++;
    while (this.size > MAX_ENTRIES && this.head < this.order.length) this.drop(this.order[this.head++]!);
    if (this.head > MAX_ENTRIES || this.order.length > 4 * MAX_ENTRIES) this.compact();
  }

  /** True (and the entry is consumed) when this downlink is the echo of an uplink. */
  take(topic: string, payload: Buffer): boolean {
    if (this.size === 0) return false;
    return this.drop(keyOf(topic, payload));
  }

  /** Undoes the last `n` additions (a will message is translated but never echoed). */
  forgetLast(n: number): void {
    for (let i = 0; i < n && this.order.length > this.head; i++) this.drop(this.order.pop()!);
  }

  get entries(): number {
    return this.size;
  }

  clear(): void {
    this.counts.clear();
    this.order = [];
    this.head = 0;
    this.size = 0;
  }

  private drop(key: string): boolean {
    const n = this.counts.get(key);
    if (!n) return false;
    if (n === 1) this.counts.delete(key);
    else this.counts.set(key, n - 1);
    this.size--;
    return true;
  }

  /** Entries taken as echoes leave stale places in `order`: rebuild it from the counts. */
  private compact(): void {
    const order: string[] = [];
    for (const [k, n] of this.counts) for (let i = 0; i < n; i++) order.push(k);
    this.order = order;
    this.head = 0;
  }
}
