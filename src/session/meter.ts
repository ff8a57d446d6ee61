/**
 * Per-packet metrics with the label children resolved once, so the hot path does a map
 * lookup and an increment, never a label hash.
 */
import type { Counter } from 'prom-client';
import type { Metrics } from '../metrics/metrics.js';

type Child = ReturnType<Counter<'direction' | 'type'>['labels']>;

export class PacketMeter {
  private readonly packets = new Map<string, Child>();
  private readonly bytes = new Map<string, Child>();

  constructor(private readonly metrics: Metrics) {}

  count(direction: 'south_in' | 'south_out' | 'north_in' | 'north_out', cmd: string, size: number): void {
    const key = direction + cmd;
    let p = this.packets.get(key);
    let b = this.bytes.get(key);
    if (!p || !b) {
      p = this.metrics.packetsTotal.labels(direction, cmd);
      b = this.metrics.bytesTotal.labels(direction, cmd);
      this.packets.set(key, p);
      this.bytes.set(key, b);
    }
    p.inc();
    b.inc(size);
  }
}
