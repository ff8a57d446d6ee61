/**
 * Per-packet metrics: packets and bytes by direction and type. The series are resolved once
 * per (direction, type) and counted as plain numbers (see HotCounter): the hot path neither
 * hashes labels nor allocates.
 */
import type { HotEntry } from '../metrics/hot.js';
import type { Metrics } from '../metrics/metrics.js';

export type MeterDirection = 'south_in' | 'south_out' | 'north_in' | 'north_out';
type Pair = [HotEntry<'direction' | 'type'>, HotEntry<'direction' | 'type'>];

export class PacketMeter {
  private readonly series: Record<MeterDirection, Map<string, Pair>> = {
    south_in: new Map(),
    south_out: new Map(),
    north_in: new Map(),
    north_out: new Map(),
  };

  constructor(private readonly metrics: Metrics) {}

  count(direction: MeterDirection, cmd: string, size: number): void {
    const byType = this.series[direction];
    let pair = byType.get(cmd);
    if (!pair) {
      const labels = { direction, type: cmd };
      pair = [
        this.metrics.hot.packetsTotal.entry(direction + cmd, labels),
        this.metrics.hot.bytesTotal.entry(direction + cmd, labels),
      ];
      byType.set(cmd, pair);
    }
    pair[0].pending++;
    pair[1].pending += size;
  }
}
