/**
 * Every metric the proxy exports, in one registry with one prefix. Counters end in
 * `_total`, durations in `_seconds`, sizes in `_bytes`. Labels are bounded: listener,
 * dialect, route, rule, direction, packet type, reason. Never a device id, client id,
 * topic or secret.
 */
import { readFileSync } from 'node:fs';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { flushDeltas, HotCounter, type HotDelta, type HotHistogram, nested } from './hot.js';

export const PREFIX = 'mqtt_proxy_';

/** Buckets of north_connect_duration_seconds (also counted by src/session/session-metrics.ts). */
export const NORTH_CONNECT_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

/** Buckets of qos1_ack_duration_seconds (counted by src/session/session-metrics.ts). */
export const ACK_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5,
] as const;

/** Buckets of translate_duration_seconds (counted by src/session/accounting.ts). */
export const TRANSLATE_BUCKETS = [
  0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.001, 0.01,
] as const;

export function createMetrics() {
  const registry = new Registry();
  // connections_open: whether a labelled series exists yet, and whether the 0 without labels is out.
  let labelledOpen = false;
  let unlabelledOpen = false;
  collectDefaultMetrics({ register: registry, prefix: PREFIX });
  const r = [registry];
  const version = readVersion();
  const buildInfo = new Gauge({
    name: `${PREFIX}build_info`,
    help: 'Build information; always 1.',
    labelNames: ['version', 'node'] as const,
    registers: r,
  });
  buildInfo.labels(version, process.version).set(1);
  // Filled right below: the counters' collect hooks flush these on every scrape.
  const hot: {
    packetsTotal?: HotCounter<'direction' | 'type'>;
    bytesTotal?: HotCounter<'direction' | 'type'>;
    messagesTotal?: HotCounter<'route' | 'direction' | 'rule' | 'outcome' | 'reason'>;
  } = {};
  // Series changed once per connect or close (src/session/session-metrics.ts), by key.
  const perConnect = {
    connectionsOpen: new Map<string, Map<string, HotDelta>>(),
    connectionsTotal: new Map<string, Map<string, HotDelta>>(),
    northConnectSeconds: new Map<string, HotHistogram>(),
  };
  // Series changed once per QoS 1/2 message or per sampled translation, the same way.
  const perMessage = {
    /** By direction. */
    inflight: new Map<string, HotDelta>(),
    ackSeconds: new Map<string, HotHistogram>(),
    translateSeconds: new Map<string, HotHistogram>(),
  };
  const metrics = {
    registry,
    buildInfo,
    connectionsOpen: new Gauge({
      collect() {
        // Every series a connection made exists, at 0 too (a connection opened and closed
        // between two scrapes leaves a pending change of 0).
        for (const d of nested(perConnect.connectionsOpen)) {
          const n = d.pending;
          d.pending = 0;
          this.inc(d.labels, n);
          labelledOpen = true;
        }
        // Before any connection: one series without labels at 0, so that `connections_open`
        // reads 0 rather than nothing on a fresh process; dropped once a labelled one exists.
        if (!labelledOpen) {
          this.set(0);
          unlabelledOpen = true;
        } else if (unlabelledOpen) {
          this.remove({});
          unlabelledOpen = false;
        }
      },
      name: `${PREFIX}connections_open`,
      help: 'South connections open now.',
      labelNames: ['listener', 'dialect'] as const,
      registers: r,
    }),
    connectionsTotal: new Counter({
      collect() {
        flushDeltas(nested(perConnect.connectionsTotal), (labels, n) => this.inc(labels, n));
      },
      name: `${PREFIX}connections_total`,
      help: 'South connections accepted.',
      labelNames: ['listener', 'dialect'] as const,
      registers: r,
    }),
    closesTotal: new Counter({
      name: `${PREFIX}connection_closes_total`,
      help: 'South connections closed, by reason.',
      labelNames: ['reason'] as const,
      registers: r,
    }),
    authFailuresTotal: new Counter({
      name: `${PREFIX}auth_failures_total`,
      help: 'South CONNECTs refused, by reason.',
      labelNames: ['reason'] as const,
      registers: r,
    }),
    packetsTotal: new Counter({
      collect: () => hot.packetsTotal?.flush(),
      name: `${PREFIX}packets_total`,
      help: 'MQTT packets by direction (south_in, south_out, north_in, north_out) and type.',
      labelNames: ['direction', 'type'] as const,
      registers: r,
    }),
    bytesTotal: new Counter({
      collect: () => hot.bytesTotal?.flush(),
      name: `${PREFIX}bytes_total`,
      help: 'MQTT bytes by direction and packet type.',
      labelNames: ['direction', 'type'] as const,
      registers: r,
    }),
    messagesTotal: new Counter({
      collect: () => hot.messagesTotal?.flush(),
      name: `${PREFIX}messages_total`,
      help: 'PUBLISH messages by route, direction, rule and outcome (translated, dropped, rejected).',
      labelNames: ['route', 'direction', 'rule', 'outcome', 'reason'] as const,
      registers: r,
    }),
    unmappedTotal: new Counter({
      name: `${PREFIX}unmapped_topics_total`,
      help: 'PUBLISH messages whose topic matched no rule (the topic is logged, sampled, never labelled).',
      labelNames: ['route', 'direction'] as const,
      registers: r,
    }),
    northConnectSeconds: new Histogram({
      collect: () => {
        for (const h of perConnect.northConnectSeconds.values()) h.flush();
      },
      name: `${PREFIX}north_connect_duration_seconds`,
      help: 'Time from opening a north connection to its CONNACK.',
      labelNames: ['route'] as const,
      buckets: [...NORTH_CONNECT_BUCKETS],
      registers: r,
    }),
    northConnectFailuresTotal: new Counter({
      name: `${PREFIX}north_connect_failures_total`,
      help: 'North connections that failed, by reason.',
      labelNames: ['route', 'reason'] as const,
      registers: r,
    }),
    inflight: new Gauge({
      collect() {
        flushDeltas(perMessage.inflight.values(), (labels, n) => this.inc(labels, n));
      },
      name: `${PREFIX}qos1_inflight_messages`,
      help: 'QoS 1 and 2 messages relayed and not yet acknowledged, by direction (uplink, downlink).',
      labelNames: ['direction'] as const,
      registers: r,
    }),
    translateSeconds: new Histogram({
      collect: () => {
        for (const h of perMessage.translateSeconds.values()) h.flush();
      },
      name: `${PREFIX}translate_duration_seconds`,
      help: 'Time to translate one PUBLISH (sampled 1 in 16).',
      labelNames: ['route', 'direction'] as const,
      buckets: [...TRANSLATE_BUCKETS],
      registers: r,
    }),
    ackSeconds: new Histogram({
      collect: () => {
        for (const h of perMessage.ackSeconds.values()) h.flush();
      },
      name: `${PREFIX}qos1_ack_duration_seconds`,
      help: 'End-to-end QoS 1/2 acknowledgement time: from the PUBLISH received to the acknowledgement relayed.',
      labelNames: ['route', 'direction'] as const,
      buckets: [...ACK_BUCKETS],
      registers: r,
    }),
    reloadsTotal: new Counter({
      name: `${PREFIX}config_reloads_total`,
      help: 'Configuration, mapping and credentials reloads, by kind and result (success, failure).',
      labelNames: ['kind', 'result'] as const,
      registers: r,
    }),
    jwtSigningsTotal: new Counter({
      name: `${PREFIX}jwt_signings_total`,
      help: 'JWTs signed for north CONNECTs, by algorithm and cache result (signed, cached).',
      labelNames: ['alg', 'result'] as const,
      registers: r,
    }),
    gatewayErrorsTotal: new Counter({
      name: `${PREFIX}gateway_errors_total`,
      help: 'Errors reported by a gateway platform, by error type.',
      labelNames: ['type'] as const,
      registers: r,
    }),
  };
  hot.packetsTotal = new HotCounter(metrics.packetsTotal);
  hot.bytesTotal = new HotCounter(metrics.bytesTotal);
  hot.messagesTotal = new HotCounter(metrics.messagesTotal);
  return { ...metrics, hot: { ...(hot as Required<typeof hot>), perConnect, perMessage } };
}

export type Metrics = ReturnType<typeof createMetrics>;

function readVersion(): string {
  for (const p of ['../../package.json', '../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(p, import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      // try the next layout (source tree or built dist/)
    }
  }
  return 'unknown';
}
