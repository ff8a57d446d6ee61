/**
 * Labelled metric series a session touches at connect and close, resolved once per label
 * set and shared by every session: prom-client's `labels()` validates the labels and builds
 * a fresh object of bound functions on every call, which cost CPU per connect and, kept by
 * a session (its relays' hooks), memory per idle device.
 */
import { HotDelta, type HotHistogram, hotHistogram } from '../metrics/hot.js';
import { ACK_BUCKETS, type Metrics, NORTH_CONNECT_BUCKETS } from '../metrics/metrics.js';
import type { MeterDirection, PacketMeter } from './meter.js';
import type { RelayHooks } from './relay.js';

/**
 * The open-connections gauge of a (listener, dialect): a plain number per series, added to
 * the gauge when /metrics is scraped (prom-client hashes the labels on every change).
 */
export function openGauge(m: Metrics, listener: string, dialect: string): { inc(): void; dec(): void } {
  return delta(m.hot.perConnect.connectionsOpen, listener, dialect);
}

/** The connections counter of a (listener, dialect), added up the same way. */
export function totalCounter(m: Metrics, listener: string, dialect: string): { inc(): void } {
  return delta(m.hot.perConnect.connectionsTotal, listener, dialect);
}

/** The series of a (listener, dialect), found by listener then dialect (no key string per call). */
function delta(byListener: Map<string, Map<string, HotDelta>>, listener: string, dialect: string): HotDelta {
  let byDialect = byListener.get(listener);
  if (!byDialect) {
    byDialect = new Map();
    byListener.set(listener, byDialect);
  }
  let d = byDialect.get(dialect);
  if (!d) {
    d = new HotDelta({ listener, dialect });
    byDialect.set(dialect, d);
  }
  return d;
}

/** The north connect duration histogram of a route, counted per bucket until a scrape. */
export function northConnectSeconds(m: Metrics, route: string): { observe(v: number): void } {
  return hotHistogram(
    m.hot.perConnect.northConnectSeconds,
    route,
    m.northConnectSeconds,
    NORTH_CONNECT_BUCKETS,
    () => ({
      route,
    }),
  );
}

/**
 * A relay's hooks: the in-flight gauge and the acknowledgement time of its direction, and
 * the session's `settled` callback. Methods on one object, no closures per session.
 */
export class AckHooks implements RelayHooks {
  // Changed once per QoS 1/2 message: plain numbers, handed to prom-client at scrape time.
  private readonly inflight: HotDelta;
  private readonly ackSeconds: HotHistogram;

  constructor(
    m: Metrics,
    route: string,
    direction: 'uplink' | 'downlink',
    private readonly settled: () => void,
  ) {
    const perMessage = m.hot.perMessage;
    let inflight = perMessage.inflight.get(direction);
    if (!inflight) {
      inflight = new HotDelta({ direction });
      perMessage.inflight.set(direction, inflight);
    }
    this.inflight = inflight;
    this.ackSeconds = hotHistogram(
      perMessage.ackSeconds,
      `${direction}\u0000${route}`,
      m.ackSeconds,
      ACK_BUCKETS,
      () => ({
        route,
        direction,
      }),
    );
  }

  onStart(): void {
    this.inflight.inc();
  }

  onSettled(t0: number): void {
    this.inflight.dec();
    if (t0 >= 0) this.ackSeconds.observe((Date.now() - t0) / 1000);
    this.settled();
  }
}

const writtenBy = new WeakMap<PacketMeter, Map<MeterDirection, (cmd: string, bytes: number) => void>>();

/** The `onWritten` callback of a channel for a meter and direction, made once and shared. */
export function meterWritten(
  meter: PacketMeter,
  direction: MeterDirection,
): (cmd: string, bytes: number) => void {
  let byDir = writtenBy.get(meter);
  if (!byDir) {
    byDir = new Map();
    writtenBy.set(meter, byDir);
  }
  let f = byDir.get(direction);
  if (!f) {
    f = (cmd, bytes) => meter.count(direction, cmd, bytes);
    byDir.set(direction, f);
  }
  return f;
}
