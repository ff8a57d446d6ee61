/**
 * Labelled metric series a session touches at connect and close, resolved once per label
 * set and shared by every session: prom-client's `labels()` validates the labels and builds
 * a fresh object of bound functions on every call, which cost CPU per connect and, kept by
 * a session (its relays' hooks), memory per idle device.
 */
import type { Metrics } from '../metrics/metrics.js';
import type { MeterDirection, PacketMeter } from './meter.js';
import type { RelayHooks } from './relay.js';

interface AckSeries {
  inflight: { inc(): void; dec(): void };
  ackSeconds: { observe(v: number): void };
}

interface Series {
  ack: Map<string, AckSeries>;
  open: Map<string, { inc(): void; dec(): void }>;
  total: Map<string, { inc(): void }>;
  northConnect: Map<string, { observe(v: number): void }>;
}

const byMetrics = new WeakMap<Metrics, Series>();

function series(m: Metrics): Series {
  let s = byMetrics.get(m);
  if (!s) {
    s = { ack: new Map(), open: new Map(), total: new Map(), northConnect: new Map() };
    byMetrics.set(m, s);
  }
  return s;
}

function ackSeries(m: Metrics, route: string, direction: 'uplink' | 'downlink'): AckSeries {
  const cache = series(m).ack;
  const key = `${direction}\u0000${route}`;
  let a = cache.get(key);
  if (!a) {
    a = { inflight: m.inflight.labels(direction), ackSeconds: m.ackSeconds.labels(route, direction) };
    cache.set(key, a);
  }
  return a;
}

/** The open-connections gauge of a (listener, dialect). */
export function openGauge(m: Metrics, listener: string, dialect: string): { inc(): void; dec(): void } {
  const cache = series(m).open;
  const key = `${listener}\u0000${dialect}`;
  let g = cache.get(key);
  if (!g) {
    g = m.connectionsOpen.labels(listener, dialect);
    cache.set(key, g);
  }
  return g;
}

/** The connections counter of a (listener, dialect). */
export function totalCounter(m: Metrics, listener: string, dialect: string): { inc(): void } {
  const cache = series(m).total;
  const key = `${listener}\u0000${dialect}`;
  let c = cache.get(key);
  if (!c) {
    c = m.connectionsTotal.labels(listener, dialect);
    cache.set(key, c);
  }
  return c;
}

/** The north connect duration histogram of a route. */
export function northConnectSeconds(m: Metrics, route: string): { observe(v: number): void } {
  const cache = series(m).northConnect;
  let h = cache.get(route);
  if (!h) {
    h = m.northConnectSeconds.labels(route);
    cache.set(route, h);
  }
  return h;
}

/**
 * A relay's hooks: the in-flight gauge and the acknowledgement time of its direction, and
 * the session's `settled` callback. Methods on one object, no closures per session.
 */
export class AckHooks implements RelayHooks {
  private readonly s: AckSeries;

  constructor(
    m: Metrics,
    route: string,
    direction: 'uplink' | 'downlink',
    private readonly settled: () => void,
  ) {
    this.s = ackSeries(m, route, direction);
  }

  onStart(): void {
    this.s.inflight.inc();
  }

  onSettled(t0: number): void {
    this.s.inflight.dec();
    if (t0 >= 0) this.s.ackSeconds.observe((Date.now() - t0) / 1000);
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
