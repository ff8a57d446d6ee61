/**
 * The Grafana dashboard against the proxy itself: start the proxy, push traffic through it,
 * scrape /metrics, and check every panel query with the Prometheus PromQL grammar:
 * it parses, every metric it selects is exported (histogram _bucket/_sum/_count resolved to
 * their family), and every label it matches, groups by or shows in a legend exists on it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { SyntaxNode } from '@lezer/common';
import { parser } from '@prometheus-io/lezer-promql';
import { parseAllDocuments } from 'yaml';
import {
  closeAll,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
} from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

interface Panel {
  title?: string;
  type: string;
  targets?: Array<{ expr: string; legendFormat?: string }>;
  panels?: Panel[];
}
const dashboard = JSON.parse(
  readFileSync(new URL('../../deploy/grafana/mqtt-dialect-proxy.json', import.meta.url), 'utf8'),
) as { uid: string; panels: Panel[]; templating: { list: Array<{ name: string; definition?: string }> } };

const flatten = (ps: Panel[]): Panel[] => ps.flatMap((p) => [p, ...flatten(p.panels ?? [])]);
const queries = flatten(dashboard.panels).flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title ?? '?', expr: t.expr, legend: t.legendFormat ?? '' })),
);
/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ['instance', 'job'];

let broker: MosquittoBroker;
let proxy: TestProxy;
let translating: TestProxy;
let scrape = '';
let savedSecret: string | undefined;
const clients: MqttClient[] = [];

before(async () => {
  broker = await startMosquitto();
  proxy = await startTestProxy({ north: { url: broker.url } });
  // A little traffic both ways, QoS 0 and 1, MQTT 3.1.1 and 5, and one reload.
  const device = await connectClient(proxy.url, { clientId: 'dash-device', protocolVersion: 5 });
  const app = await connectClient(proxy.url, { clientId: 'dash-app', protocolVersion: 4 });
  clients.push(device, app);
  await subscribe(app, 'dash/#', { qos: 1 });
  for (let i = 0; i < 5; i++) {
    const got = nextMessage(app, 'dash/#', 5000);
    await publish(device, `dash/${i}`, `{"n":${i}}`, { qos: i % 2 === 0 ? 1 : 0 });
    await got;
  }
  await proxy.reload();

  // A translating route too (Connector devices onto akenza), for the per-route series.
  savedSecret = process.env.AKENZA_SECRET;
  process.env.AKENZA_SECRET = 'dashboard-test-secret';
  translating = await startTestProxy({
    north: { url: broker.url },
    mapping: { dir: fileURLToPath(new URL('../../mappings', import.meta.url)), route: 'connector-to-akenza' },
  });
  // Device 12345 and its token, from mappings/credentials/connector-akenza.yaml.
  const connector = await connectClient(translating.url, {
    clientId: '12345',
    username: '12345',
    password: 'b7b34f55e948b94841820ea50868a2490632d78f',
    protocolVersion: 4,
  });
  clients.push(connector);
  // The translation histogram samples 1 PUBLISH in 16.
  for (let i = 0; i < 40; i++)
    await publish(connector, '$resource/temperature', String(20 + i / 10), { qos: 1 });
  const get = async (p: TestProxy) =>
    (await fetch(`${p.metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  scrape = `${await get(proxy)}\n${await get(translating)}`;
});

after(async () => {
  await closeAll(clients);
  await proxy?.close(1000);
  await translating?.close(1000);
  await broker?.stop();
  if (savedSecret === undefined) delete process.env.AKENZA_SECRET;
  else process.env.AKENZA_SECRET = savedSecret;
});

/** Metric families in the scrape: name -> type. */
function families(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1] as string, m[2] as string);
  return out;
}

/** The family a selected series name belongs to, or undefined if the proxy does not export it. */
function familyOf(name: string, fams: Map<string, string>): string | undefined {
  const t = fams.get(name);
  if (t === 'counter' || t === 'gauge') return name;
  const m = name.match(/^(.*)_(bucket|sum|count)$/);
  if (m && fams.get(m[1] as string) === 'histogram') return m[1];
  return undefined;
}

function labelNamesOf(family: string): string[] {
  const metric = proxy.metrics.registry.getSingleMetric(family) as unknown as
    | { labelNames?: string[] }
    | undefined;
  assert.ok(metric, `${family} is not in the registry`);
  return metric.labelNames ?? [];
}

interface Analysis {
  errors: string[];
  selectors: Array<{ name: string; labels: string[] }>;
  grouping: string[];
}

function analyse(expr: string): Analysis {
  // Grafana variables become valid PromQL before parsing.
  const src = expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m');
  const tree = parser.parse(src);
  const text = (n: SyntaxNode): string => src.slice(n.from, n.to);
  const a: Analysis = { errors: [], selectors: [], grouping: [] };
  tree.iterate({
    enter: (ref) => {
      if (ref.type.isError)
        a.errors.push(`syntax error at ${ref.from}: "${src.slice(ref.from, ref.from + 20)}"`);
      if (ref.name === 'VectorSelector') {
        const node = ref.node;
        const id = node.getChild('Identifier');
        const labels = node
          .getChild('LabelMatchers')
          ?.getChildren('UnquotedLabelMatcher')
          .map((m) => text(m.getChild('LabelName') as SyntaxNode));
        a.selectors.push({ name: id ? text(id) : '', labels: labels ?? [] });
      }
      if (ref.name === 'GroupingLabels') {
        for (const l of ref.node.getChildren('LabelName')) a.grouping.push(text(l));
      }
    },
  });
  return a;
}

test('the dashboard has panels for connections, routes, drops, latency percentiles and reloads', () => {
  assert.equal(dashboard.uid, 'mqtt-dialect-proxy');
  assert.ok(queries.length >= 25, `${queries.length} queries`);
  const all = queries.map((q) => q.expr).join('\n');
  for (const needed of [
    'mqtt_proxy_connections_open',
    'mqtt_proxy_messages_total{instance=~"$instance",outcome="translated"}',
    'outcome=~"dropped|rejected"',
    'histogram_quantile(0.99, sum by (le, route, direction) (rate(mqtt_proxy_translate_duration_seconds_bucket',
    'histogram_quantile(0.99, sum by (le, route, direction) (rate(mqtt_proxy_qos1_ack_duration_seconds_bucket',
    'mqtt_proxy_config_reloads_total',
    'mqtt_proxy_north_connect_duration_seconds_bucket',
  ]) {
    assert.ok(all.includes(needed), `no panel query uses ${needed}`);
  }
});

test('traffic through the proxy produced samples for the core series', () => {
  for (const series of [
    'mqtt_proxy_build_info{',
    'mqtt_proxy_connections_open{',
    'mqtt_proxy_connections_total{',
    'mqtt_proxy_packets_total{',
    'mqtt_proxy_bytes_total{',
    'mqtt_proxy_north_connect_duration_seconds_bucket{',
    'mqtt_proxy_qos1_ack_duration_seconds_bucket{',
    'mqtt_proxy_config_reloads_total{',
    'mqtt_proxy_messages_total{route="connector-to-akenza",direction="uplink"',
    'mqtt_proxy_translate_duration_seconds_bucket{',
    'mqtt_proxy_process_cpu_seconds_total ',
  ]) {
    assert.ok(
      scrape.split('\n').some((l) => l.startsWith(series)),
      `no sample of ${series} in the scrape`,
    );
  }
});

/**
 * Problems of one query: syntax, metrics the proxy does not export, labels they lack, and
 * `{{ label }}` / `{{ $labels.label }}` references (legends, alert texts) absent from the result.
 */
function checkQuery(where: string, expr: string, shownText: string, fams: Map<string, string>): string[] {
  const problems: string[] = [];
  const a = analyse(expr);
  for (const e of a.errors) problems.push(`${where}: ${e}`);
  if (a.selectors.length === 0) problems.push(`${where}: selects no metric`);
  const available = new Set(TARGET_LABELS);
  for (const s of a.selectors) {
    const fam = familyOf(s.name, fams);
    if (!fam) {
      problems.push(`${where}: ${s.name || '(no name)'} is not exported by the proxy`);
      continue;
    }
    const labels = new Set([...labelNamesOf(fam), ...(s.name.endsWith('_bucket') ? ['le'] : [])]);
    for (const l of labels) available.add(l);
    for (const l of s.labels) {
      if (!labels.has(l) && !TARGET_LABELS.includes(l))
        problems.push(`${where}: ${s.name} has no label ${l}`);
    }
  }
  for (const l of a.grouping) if (!available.has(l)) problems.push(`${where}: groups by unknown label ${l}`);
  // After `sum by (...)` only the grouping labels survive: a legend can show only those.
  const shown = a.grouping.length > 0 ? new Set(a.grouping) : available;
  for (const m of shownText.matchAll(/\{\{\s*(?:\$labels\.)?(\w+)\s*\}\}/g)) {
    if (!shown.has(m[1] as string)) problems.push(`${where}: shows label ${m[1]}, absent from the result`);
  }
  return problems;
}

test('every panel query parses and selects only metrics the proxy exports, with labels they have', () => {
  const fams = families(scrape);
  assert.ok(fams.size > 20);
  const problems = queries.flatMap((q) =>
    checkQuery(`panel "${q.panel}": ${q.expr}`, q.expr, q.legend, fams),
  );
  assert.deepEqual(problems, []);
});

test('every alert rule of the PrometheusRule passes the same checks', () => {
  const fams = families(scrape);
  const rule = parseAllDocuments(
    readFileSync(new URL('../../deploy/kubernetes/standalone/prometheusrule.yaml', import.meta.url), 'utf8'),
  )[0]!.toJS() as {
    spec: {
      groups: Array<{ rules: Array<{ alert: string; expr: string; annotations?: Record<string, string> }> }>;
    };
  };
  const rules = rule.spec.groups.flatMap((g) => g.rules);
  assert.ok(rules.length >= 5);
  const problems = rules.flatMap((r) =>
    checkQuery(`alert ${r.alert}`, r.expr, Object.values(r.annotations ?? {}).join(' '), fams),
  );
  assert.deepEqual(problems, []);
});

test('the checker is live: it rejects a misspelt metric, a wrong label and bad syntax', () => {
  const fams = families(scrape);
  assert.equal(familyOf('mqtt_proxy_conections_open', fams), undefined);
  assert.equal(
    familyOf('mqtt_proxy_translate_duration_seconds', fams),
    undefined,
    'a histogram has no bare series',
  );
  assert.equal(
    familyOf('mqtt_proxy_translate_duration_seconds_bucket', fams),
    'mqtt_proxy_translate_duration_seconds',
  );
  assert.ok(!labelNamesOf('mqtt_proxy_connections_open').includes('route'));
  assert.ok(analyse('sum by (le (rate(mqtt_proxy_packets_total[5m])').errors.length > 0);
});

test('template variables query exported metrics', () => {
  const fams = families(scrape);
  const defs = dashboard.templating.list.filter((v) => v.definition);
  assert.ok(defs.length > 0);
  for (const v of defs) {
    const m = (v.definition as string).match(/^label_values\((\w+),\s*(\w+)\)$/);
    assert.ok(m, `${v.name}: unexpected definition ${v.definition}`);
    assert.ok(familyOf(m[1] as string, fams), `${v.name}: ${m[1]} not exported`);
    assert.ok(
      TARGET_LABELS.includes(m[2] as string) || labelNamesOf(m[1] as string).includes(m[2] as string),
    );
  }
});
