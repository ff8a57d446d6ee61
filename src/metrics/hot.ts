/**
 * Counters for the per-packet hot path. prom-client hashes the label values on every
 * `inc()`, even on a bound child; here each series is a plain number behind a string key,
 * added up in place and handed to prom-client only when /metrics is scraped.
 */
import type { Counter } from 'prom-client';

export interface HotEntry<L extends string> {
  readonly labels: Partial<Record<L, string>>;
  /** Added since the last scrape: callers may add to it directly. */
  pending: number;
}

export class HotCounter<L extends string> {
  private readonly entries = new Map<string, HotEntry<L>>();

  constructor(readonly counter: Counter<L>) {}

  /** The series `key` (a string that identifies `labels` uniquely), made on first use. */
  entry(key: string, labels: Partial<Record<L, string>>): HotEntry<L> {
    let e = this.entries.get(key);
    if (!e) {
      e = { labels, pending: 0 };
      this.entries.set(key, e);
    }
    return e;
  }

  /** Adds `n` to the series `key`; `labels` is called only the first time. */
  add(key: string, labels: () => Partial<Record<L, string>>, n = 1): void {
    const e = this.entries.get(key);
    if (e) e.pending += n;
    else this.entry(key, labels()).pending += n;
  }

  /** Moves what was added since the last scrape into the prom-client counter. */
  flush(): void {
    for (const e of this.entries.values()) {
      if (e.pending > 0) {
        this.counter.inc(e.labels, e.pending);
        e.pending = 0;
      }
    }
  }
}
