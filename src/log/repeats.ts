/**
 * A budget for log lines that repeat once per connection: during a platform outage or a
 * reconnect storm, ten thousand devices retrying every few seconds would write thousands of
 * identical `north connection failed` / `connection closed` lines a second. Each (line,
 * reason) may be written `limit` times per window; the rest are counted, and one line per
 * window says how many were left out. The metrics count every event regardless. At debug
 * level and below nothing is left out: an operator following single connections sees them all.
 */
import type { Logger } from './logger.js';

export type RepeatLevel = 'info' | 'warn';

export interface RepeatOptions {
  /** Lines of one (line, reason) written per window (default 100). */
  limit?: number;
  /** Window length in ms (default 10,000). */
  windowMs?: number;
}

/** Distinct (level, line, reason) counted at once; reasons are bounded codes, this is a guard. */
const MAX_KEYS = 1000;

interface Count {
  level: RepeatLevel;
  line: string;
  reason: string;
  n: number;
}

export class RepeatBudget {
  private readonly limit: number;
  private readonly windowMs: number;
  private counts = new Map<string, Count>();
  private windowStart = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    opts: RepeatOptions = {},
  ) {
    this.limit = opts.limit ?? 100;
    this.windowMs = opts.windowMs ?? 10_000;
  }

  /** Whether this occurrence of `line` with `reason` may be written; counted either way. */
  allow(level: RepeatLevel, line: string, reason: string): boolean {
    if (this.log.isLevelEnabled('debug')) return true;
    const now = Date.now();
    if (now - this.windowStart >= this.windowMs) this.flush(now);
    const key = `${level}\0${line}\0${reason}`;
    let c = this.counts.get(key);
    if (!c) {
      if (this.counts.size >= MAX_KEYS) return true;
      c = { level, line, reason, n: 0 };
      this.counts.set(key, c);
    }
    c.n++;
    if (c.n <= this.limit) return true;
    // The first line left out in this window: say so when the window ends, even if nothing
    // else is logged after it.
    if (c.n === this.limit + 1 && !this.timer) {
      this.timer = setTimeout(() => this.flush(Date.now()), this.windowStart + this.windowMs - now);
      this.timer.unref();
    }
    return false;
  }

  /** Says what the window left out, and starts a new one. */
  private flush(now: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const c of this.counts.values()) {
      if (c.n > this.limit)
        this.log[c.level](
          {
            line: c.line,
            reason: c.reason,
            suppressed: c.n - this.limit,
            windowSeconds: this.windowMs / 1000,
          },
          'repeated log lines left out (the metrics count every one)',
        );
    }
    this.counts = new Map();
    this.windowStart = now;
  }

  /** Writes what the current window left out (at shutdown). */
  close(): void {
    this.flush(Date.now());
  }
}
