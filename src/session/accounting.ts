/**
 * Per-message bookkeeping of translating sessions: outcomes by route/rule/reason, unmapped
 * topics (counted; logged at most once per interval, by shape only), and a sampled
 * translation-time histogram. SUBACK arithmetic lives here too: pure functions of a plan.
 */
import type { Outcome, SubscribePlan } from '../core/contract.js';
import type { Logger } from '../log/logger.js';
import { topicShape } from '../log/topic-shape.js';
import { type HotEntry, hotHistogram } from '../metrics/hot.js';
import { type Metrics, TRANSLATE_BUCKETS } from '../metrics/metrics.js';

const UNMAPPED_LOG_INTERVAL_MS = 10_000;
let translateCount = 0;
let lastUnmappedLog = 0;

export type Direction = 'uplink' | 'downlink';

/** True for 1 message in 16: those are timed. */
export function sampleTranslate(): boolean {
  return (++translateCount & 15) === 0;
}

export function observeTranslate(metrics: Metrics, route: string, direction: Direction, t0: bigint): void {
  // Counted in plain numbers per bucket, handed to prom-client at scrape time (src/metrics/hot.ts).
  const key = direction === 'uplink' ? route : `${route}\u0000`;
  hotHistogram(
    metrics.hot.perMessage.translateSeconds,
    key,
    metrics.translateSeconds,
    TRANSLATE_BUCKETS,
    () => ({
      route,
      direction,
    }),
  ).observe(Number(process.hrtime.bigint() - t0) / 1e9);
}

export function countMessage(
  metrics: Metrics,
  log: Logger,
  route: string,
  direction: Direction,
  o: Outcome,
  outcome: 'translated' | 'dropped' | 'rejected',
  topic?: string,
): void {
  if (o.reason === 'unmapped' || o.reason === 'unknown_topic') {
    metrics.unmappedTotal.labels(route, direction).inc();
    const now = Date.now();
    if (topic !== undefined && now - lastUnmappedLog > UNMAPPED_LOG_INTERVAL_MS) {
      lastUnmappedLog = now;
      // Topics may carry secrets (akenza): log only their shape, never the levels themselves.
      log.warn({ direction, topicShape: topicShape(topic) }, 'unmapped topic (sampled log)');
    }
  }
  const rule = o.rule ?? '';
  const reason = o.reason ?? '';
  // One map lookup per label value (each a constant string whose hash V8 keeps): no key
  // string and no closure built per message.
  const counter = metrics.hot.messagesTotal;
  let root = seriesRoots.get(counter);
  if (!root) {
    root = { next: new Map() };
    seriesRoots.set(counter, root);
  }
  const leaf = step(step(step(step(step(root, route), direction), outcome), rule), reason);
  leaf.entry ??= counter.entry(`${route}\u0000${direction}\u0000${rule}\u0000${outcome}\u0000${reason}`, {
    route,
    direction,
    rule,
    outcome,
    reason,
  });
  leaf.entry.pending++;
}

/** The series of messages_total as a tree of label values (route → … → reason). */
interface SeriesNode {
  readonly next: Map<string, SeriesNode>;
  entry?: HotEntry<'route' | 'direction' | 'rule' | 'outcome' | 'reason'>;
}
const seriesRoots = new WeakMap<object, SeriesNode>();

function step(node: SeriesNode, value: string): SeriesNode {
  let next = node.next.get(value);
  if (!next) {
    next = { next: new Map() };
    node.next.set(value, next);
  }
  return next;
}

/**
 * The SUBACK codes for the south filters of `plan`, given the north SUBACK codes: a fixed
 * code, or the lowest QoS granted among the north filters it became (any failure fails it;
 * with `any`, only all of them failing does). MQTT 3.1.1 knows only 0x80 as a failure.
 */
export function subackCodes(plan: SubscribePlan, northCodes: number[], version: number): number[] {
  return plan.granted.map((g) => {
    let code: number;
    if ('code' in g) code = g.code;
    else {
      code = -1;
      let failure = -1;
      for (const i of g.from) {
        const c = northCodes[i] ?? 0x80;
        if (c >= 0x80) {
          if (failure < 0) failure = c;
          if (!g.any) break;
          continue;
        }
        code = code < 0 ? c : Math.min(code, c);
      }
      if (failure >= 0 && (!g.any || code < 0)) code = failure;
      else if (code < 0) code = 0x80;
      else if (g.max !== undefined && code < 0x80) code = Math.min(code, g.max);
    }
    return version < 5 && code >= 0x80 ? 0x80 : code;
  });
}
