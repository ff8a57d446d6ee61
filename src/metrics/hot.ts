/**
 * Counters for the per-packet hot path. prom-client hashes the label values on every
 * `inc()`, even on a bound child; here each series is a plain number behind a string key,
 * added up in place and handed to prom-client only when /metrics is scraped.
 */
import type { Counter, Histogram } from 'prom-client';

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

/**
 * A gauge or counter series changed by connects and closes: the change since the last scrape
 * is a plain number, added to the prom-client series when /metrics is scraped. Others may
 * change the same series through prom-client directly; both add up.
 */
export class HotDelta {
  /** Change since the last scrape. */
  pending = 0;

  constructor(readonly labels: Record<string, string>) {}

  inc(): void {
    this.pending += 1;
  }

  dec(): void {
    this.pending -= 1;
  }
}

/** Hands every series' pending change to `apply` (a scrape's collect hook). */
export function flushDeltas(
  series: Iterable<HotDelta>,
  apply: (labels: Record<string, string>, n: number) => void,
): void {
  for (const s of series) {
    if (s.pending !== 0) {
      const n = s.pending;
      s.pending = 0;
      apply(s.labels, n);
    }
  }
}

/** The series of a map of maps (series by two labels). */
export function* nested(series: Map<string, Map<string, HotDelta>>): Iterable<HotDelta> {
  for (const inner of series.values()) yield* inner.values();
}

interface PromHistogramEntry {
  labels: Record<string, string>;
  bucketValues: Record<string, number>;
  sum: number;
  count: number;
}

/** prom-client's own series record of `labels` (made with its public `zero` when missing). */
function promEntry(h: Histogram<string>, labels: Record<string, string>): PromHistogramEntry | undefined {
  const find = (): PromHistogramEntry | undefined => {
    const map = (h as unknown as { hashMap?: Record<string, PromHistogramEntry> }).hashMap;
    if (!map || typeof map !== 'object') return undefined;
    for (const e of Object.values(map)) {
      const l = e?.labels;
      if (l && Object.keys(labels).every((k) => l[k] === labels[k])) return e;
    }
    return undefined;
  };
  let e = find();
  if (!e) {
    h.zero(labels);
    e = find();
  }
  const ok =
    e &&
    typeof e.sum === 'number' &&
    typeof e.count === 'number' &&
    e.bucketValues &&
    (h as unknown as { upperBounds?: number[] }).upperBounds?.every(
      (b) => typeof e.bucketValues[b] === 'number',
    );
  return ok ? e : undefined;
}

/**
 * A histogram series observed once per connect: prom-client validates and hashes the labels
 * on every `observe()`, even on a bound child. Here the observations since the last scrape are
 * counted per bucket in plain numbers and added to prom-client's record of the series when
 * /metrics is scraped. When that record does not have the layout this relies on (checked when
 * the series is made), the series uses prom-client's own `observe()` instead.
 */
export class HotHistogram {
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;
  private readonly direct?: { observe(v: number): void };

  constructor(
    private readonly h: Histogram<string>,
    private readonly bounds: readonly number[],
    readonly labels: Record<string, string>,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
    if (!promEntry(h, labels)) this.direct = h.labels(labels);
  }

  observe(v: number): void {
    if (this.direct) {
      this.direct.observe(v);
      return;
    }
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]! += 1;
    this.sum += v;
    this.count += 1;
  }

  /** Adds what was observed since the last scrape to the prom-client series. */
  flush(): void {
    if (this.count === 0) return;
    // Found again on every scrape: a registry reset replaces prom-client's records.
    const e = promEntry(this.h, this.labels);
    if (e) {
      for (let i = 0; i < this.bounds.length; i++) e.bucketValues[this.bounds[i]!]! += this.counts[i]!;
      e.sum += this.sum;
      e.count += this.count;
    }
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/** The histogram series `key` of `cache`, made on first use (the labels and bounds are read then). */
export function hotHistogram(
  cache: Map<string, HotHistogram>,
  key: string,
  h: Histogram<string>,
  bounds: readonly number[],
  labels: () => Record<string, string>,
): HotHistogram {
  let s = cache.get(key);
  if (!s) {
    s = new HotHistogram(h, bounds, labels());
    cache.set(key, s);
  }
  return s;
}
