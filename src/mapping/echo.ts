/**
 * Echo suppression: uplinks sent north whose copy the north broker sends back (a north
 * session subscribed to the device's own topics) must not reach the device as downlinks.
 * A bounded multiset of (topic, payload): every uplink adds one, every matching downlink
 * takes one. It outlives a session when the north session is persistent, since the broker
 * then keeps echoes queued while the device is away and delivers them on reconnect.
 */
// Large enough for a flood: echoes lag behind uplinks by what the north broker queues.
const MAX_ENTRIES = 65_536;

export class EchoSet {
  private readonly byTopic = new Map<string, Buffer[]>();
  /** Topics in insertion order, one per entry added: the oldest entries go first. */
  private order: string[] = [];
  private head = 0;
  private size = 0;

  add(topic: string, payload: Buffer): void {
    const list = this.byTopic.get(topic);
    if (list) list.push(payload);
    else this.byTopic.set(topic, [payload]);
    this.order.push(topic);
    this.size++;
    while (this.size > MAX_ENTRIES && this.head < this.order.length) {
      const t = this.order[this.head++]!;
      const l = this.byTopic.get(t);
      if (l?.length) {
        l.shift();
        this.size--;
        if (l.length === 0) this.byTopic.delete(t);
      }
    }
    // Entries taken as echoes leave stale places in `order`: compact now and then.
    if (this.head > MAX_ENTRIES || this.order.length > 4 * MAX_ENTRIES) this.compact();
  }

  /** True (and the entry is consumed) when this downlink is the echo of an uplink. */
  take(topic: string, payload: Buffer): boolean {
    const list = this.byTopic.get(topic);
    if (!list) return false;
    for (let i = 0; i < list.length; i++) {
      if (list[i]!.equals(payload)) {
        // Echoes mostly come back in order: shift() is the cheap case (V8 trims in place).
        if (i === 0) list.shift();
        else list.splice(i, 1);
        this.size--;
        if (list.length === 0) this.byTopic.delete(topic);
        return true;
      }
    }
    return false;
  }

  /** Undoes the last `n` additions (a will message is translated but never echoed). */
  forgetLast(n: number): void {
    for (let i = 0; i < n && this.order.length > this.head; i++) {
      const t = this.order.pop()!;
      const l = this.byTopic.get(t);
      if (l?.length) {
        l.pop();
        this.size--;
        if (l.length === 0) this.byTopic.delete(t);
      }
    }
  }

  get entries(): number {
    return this.size;
  }

  clear(): void {
    this.byTopic.clear();
    this.order = [];
    this.head = 0;
    this.size = 0;
  }

  private compact(): void {
    const order: string[] = [];
    for (const [t, l] of this.byTopic) for (let i = 0; i < l.length; i++) order.push(t);
    this.order = order;
    this.head = 0;
  }
}
