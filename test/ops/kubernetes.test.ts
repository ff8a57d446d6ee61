/**
 * deploy/kubernetes validated against the official Kubernetes OpenAPI schemas
 * (kubernetes-models) and the Prometheus Operator CRD schemas, then cross-checked:
 * probes, ports, selectors, env vars (every MQTT_PROXY_* is a schema option), volumes,
 * and the mappings ConfigMap against the repository's mapping files.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  PrometheusRule,
  ServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment, type IDeployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler, type IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import {
  ConfigMap,
  type IConfigMap,
  type IContainer,
  type IService,
  Secret,
  Service,
} from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { resolveConfig, schemaLeaves } from '../../src/config/print.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const k8sDir = join(root, 'deploy/kubernetes');

interface Doc {
  file: string;
  body: { apiVersion: string; kind: string; metadata?: { name?: string } } & Record<string, unknown>;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

const docs: Doc[] = yamlFiles(k8sDir).flatMap((file) =>
  parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    assert.equal(d.errors.length, 0, `${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    return { file: file.slice(root.length), body: d.toJS() as Doc['body'] };
  }),
);
const of = <T>(kind: string): Array<{ file: string; body: T }> =>
  docs.filter((d) => d.body.kind === kind).map((d) => ({ file: d.file, body: d.body as unknown as T }));

const validators: Record<string, (body: object) => { validate(): void }> = {
  'apps/v1/Deployment': (b) => new Deployment(b as IDeployment),
  'v1/Service': (b) => new Service(b as IService),
  'v1/ConfigMap': (b) => new ConfigMap(b as IConfigMap),
  'v1/Secret': (b) => new Secret(b as ConstructorParameters<typeof Secret>[0]),
  'autoscaling/v2/HorizontalPodAutoscaler': (b) => new HorizontalPodAutoscaler(b as IHorizontalPodAutoscaler),
  'policy/v1/PodDisruptionBudget': (b) =>
    new PodDisruptionBudget(b as ConstructorParameters<typeof PodDisruptionBudget>[0]),
  'monitoring.coreos.com/v1/PrometheusRule': (b) =>
    new PrometheusRule(b as ConstructorParameters<typeof PrometheusRule>[0]),
  'monitoring.coreos.com/v1/ServiceMonitor': (b) =>
    new ServiceMonitor(b as ConstructorParameters<typeof ServiceMonitor>[0]),
};

test('every manifest validates against its Kubernetes schema', () => {
  assert.ok(docs.length >= 9, `found ${docs.length} documents`);
  for (const { file, body } of docs) {
    const key = `${body.apiVersion}/${body.kind}`;
    if (key === 'kustomize.config.k8s.io/v1beta1/Kustomization') {
      for (const r of body['resources'] as string[]) {
        assert.ok(existsSync(join(root, file, '..', r)), `${file}: resource ${r} missing`);
      }
      continue;
    }
    const make = validators[key];
    assert.ok(make, `${file}: no schema for ${key}`);
    assert.doesNotThrow(() => make(body).validate(), `${file}: ${body.kind} ${body.metadata?.name}`);
  }
});

test('the schema validation is live: broken manifests are rejected', () => {
  const dep = structuredClone(of<IDeployment>('Deployment')[0]!.body);
  const c = dep.spec!.template.spec!.containers[0]!;
  c.ports = [{ containerPort: 'mqtt' as unknown as number }];
  assert.throws(() => new Deployment(dep).validate(), /containerPort must be integer/);
  const sm = structuredClone(of<object>('ServiceMonitor')[0]!.body) as {
    spec: { endpoints: Array<{ interval: string }> };
  };
  sm.spec.endpoints[0]!.interval = 'every minute';
  assert.throws(() => validators['monitoring.coreos.com/v1/ServiceMonitor']!(sm).validate(), /interval/);
});

const envNames = new Set(schemaLeaves().map((l) => l.leaf.env));

function proxyContainers(): Array<{ file: string; c: IContainer; dep: IDeployment }> {
  return of<IDeployment>('Deployment').flatMap(({ file, body }) => {
    const spec = body.spec!.template.spec!;
    return [...(spec.initContainers ?? []), ...spec.containers]
      .filter((c) => (c.env ?? []).some((e) => e.name.startsWith('MQTT_PROXY_')) && !c.command)
      .map((c) => ({ file, c, dep: body }));
  });
}

test('both the sidecar and the standalone examples run the proxy, with probes on /healthz and /readyz', () => {
  const proxies = proxyContainers();
  assert.deepEqual(proxies.map((p) => p.file).sort(), [
    'deploy/kubernetes/sidecar/deployment.yaml',
    'deploy/kubernetes/standalone/deployment.yaml',
  ]);
  for (const { file, c, dep } of proxies) {
    const metricsPort = c.ports?.find((p) => p.name === 'metrics');
    assert.equal(metricsPort?.containerPort, 9464, `${file}: metrics port`);
    assert.equal(c.livenessProbe?.httpGet?.path, '/healthz', `${file}: liveness`);
    assert.equal(c.readinessProbe?.httpGet?.path, '/readyz', `${file}: readiness`);
    // A startup probe on the platform's reachability (/readyz) would restart the proxy through
    // every platform outage at pod start; it asks whether the proxy itself is up.
    if (c.startupProbe) assert.equal(c.startupProbe.httpGet?.path, '/healthz', `${file}: startup`);
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
      if (probe) assert.equal(probe.httpGet?.port, 'metrics');
    }
    const ann = dep.spec!.template.metadata?.annotations ?? {};
    assert.equal(ann['prometheus.io/scrape'], 'true');
    assert.equal(ann['prometheus.io/port'], '9464');
    assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
    assert.equal(dep.spec!.template.spec!.securityContext?.runAsNonRoot, true);
    const secretText = of<{ stringData?: Record<string, string> }>('Secret')
      .map((x) => Object.values(x.body.stringData ?? {}).join('\n'))
      .join('\n');
    for (const e of c.env ?? []) {
      // A configuration variable, or a secret a credentials file takes as ${NAME}.
      assert.ok(
        envNames.has(e.name) || secretText.includes(`\${${e.name}}`),
        `${file}: ${e.name} is neither a configuration variable nor used by a credentials file`,
      );
      assert.doesNotMatch(`${e.value ?? ''}`, /:[^/@\s]+@/, `${file}: ${e.name} holds a password literal`);
    }
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
    // The literal values form a valid configuration (Secret-backed ones get a stand-in).
    const literal = Object.fromEntries(
      (c.env ?? []).map((e) => [
        e.name,
        e.value ?? (e.name === 'MQTT_PROXY_NORTH_URL' ? 'mqtts://h:8883' : 'x'),
      ]),
    );
    assert.doesNotThrow(
      () => resolveConfig({ env: literal }),
      `${file}: environment is not a valid configuration`,
    );
    const grace = Number(env['MQTT_PROXY_SHUTDOWN_GRACE_MS'] ?? 10000);
    const preStop = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
    assert.ok(
      (dep.spec!.template.spec!.terminationGracePeriodSeconds ?? 30) * 1000 > grace + preStop * 1000,
      `${file}: terminationGracePeriodSeconds leaves no room for the shutdown grace`,
    );
    // Every volume item referenced exists in its ConfigMap or Secret.
    type Source = { name?: string; items?: Array<{ key: string; path: string }> };
    const sources = (dep.spec!.template.spec!.volumes ?? []).flatMap((v) => [
      ...(v.configMap ? [{ kind: 'ConfigMap', ...(v.configMap as Source) }] : []),
      ...(v.secret ? [{ kind: 'Secret', ...(v.secret as Source), name: v.secret.secretName }] : []),
      ...(v.projected?.sources ?? []).flatMap((p) => [
        ...(p.configMap ? [{ kind: 'ConfigMap', ...(p.configMap as Source) }] : []),
        ...(p.secret ? [{ kind: 'Secret', ...(p.secret as Source) }] : []),
      ]),
    ]);
    assert.ok(sources.length >= 2, `${file}: mappings and credentials volumes`);
    for (const src of sources) {
      const ref = of<{ metadata: { name: string }; data?: object; stringData?: object }>(src.kind).find(
        (x) => x.body.metadata.name === src.name,
      );
      assert.ok(ref, `${file}: volume source ${src.kind} ${src.name} is missing`);
      const data = { ...(ref.body.data ?? {}), ...(ref.body.stringData ?? {}) };
      for (const item of src.items ?? []) {
        assert.ok(item.key in data, `${file}: ${src.kind} ${src.name} has no key ${item.key}`);
      }
    }
    // The route's identity file is where the route expects it, inside the mappings folder.
    const envMap = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
    const route = envMap['MQTT_PROXY_ROUTE'] as string;
    const routeFile = readFileSync(join(root, 'mappings/routes', `${route}.yaml`), 'utf8');
    const identity = routeFile.match(/^\s*file:\s*(\S+)/m)?.[1];
    const paths = sources.flatMap((x) => (x.items ?? []).map((i) => i.path));
    assert.ok(paths.includes(`routes/${route}.yaml`), `${file}: route ${route} mounted`);
    if (identity) assert.ok(paths.includes(identity), `${file}: identity file ${identity} mounted`);
    const mount = c.volumeMounts?.find((m) => m.mountPath === envMap['MQTT_PROXY_MAPPINGS_DIR']);
    assert.ok(
      mount && !mount.subPath,
      `${file}: mappings mounted at MQTT_PROXY_MAPPINGS_DIR without subPath`,
    );
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef;
      if (!ref) continue;
      const secret = of<{ metadata: { name: string }; stringData?: Record<string, string> }>('Secret').find(
        (s) => s.body.metadata.name === ref.name,
      );
      assert.ok(
        secret && ref.key in (secret.body.stringData ?? {}),
        `${file}: secret ${ref.name}/${ref.key} missing`,
      );
    }
  }
});

test('the sidecar listens on loopback only and starts before the application', () => {
  const dep = of<IDeployment>('Deployment').find((d) => d.file.includes('sidecar'))!.body;
  const proxy = dep.spec!.template.spec!.initContainers?.find((c) => c.name === 'mqtt-proxy');
  assert.ok(proxy, 'the proxy is a native sidecar init container');
  assert.equal(proxy.restartPolicy, 'Always');
  assert.equal(proxy.env?.find((e) => e.name === 'MQTT_PROXY_HOST')?.value, '127.0.0.1');
  const app = dep.spec!.template.spec!.containers.find((c) => c.name === 'app');
  assert.match((app?.args ?? []).join(' '), /-h 127\.0\.0\.1 -p 1883/);
});

test('Services, ServiceMonitor, HPA and PDB select the standalone proxy pods', () => {
  const dep = of<IDeployment>('Deployment').find((d) => d.file.includes('standalone'))!.body;
  const podLabels = dep.spec!.template.metadata!.labels!;
  const proxy = dep.spec!.template.spec!.containers[0]!;
  const portNames = new Set((proxy.ports ?? []).map((p) => p.name));
  const services = of<IService>('Service').map((s) => s.body);
  assert.ok(services.length >= 2);
  for (const s of services) {
    for (const [k, v] of Object.entries(s.spec!.selector ?? {}))
      assert.equal(podLabels[k], v, `${s.metadata?.name} selector`);
    for (const p of s.spec!.ports ?? [])
      assert.ok(portNames.has(String(p.targetPort)), `targetPort ${p.targetPort}`);
  }
  const sm = of<{
    spec: {
      selector: { matchLabels: Record<string, string> };
      endpoints: Array<{ port: string; path: string }>;
    };
  }>('ServiceMonitor')[0]!.body;
  const scraped = services.filter((s) =>
    Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => s.metadata?.labels?.[k] === v),
  );
  assert.equal(scraped.length, 1, 'the ServiceMonitor selects exactly one Service');
  assert.ok(scraped[0]!.spec!.ports!.some((p) => p.name === sm.spec.endpoints[0]!.port));
  assert.equal(sm.spec.endpoints[0]!.path, '/metrics');
  const hpa = of<IHorizontalPodAutoscaler>('HorizontalPodAutoscaler')[0]!.body;
  assert.equal(hpa.spec!.scaleTargetRef.name, dep.metadata!.name);
  assert.equal(hpa.spec!.scaleTargetRef.kind, 'Deployment');
  assert.ok((hpa.spec!.minReplicas ?? 1) >= 2);
  assert.ok(proxy.resources?.requests?.['cpu'], 'CPU requests are needed for utilization targets');
  const pdb = of<{ spec: { selector: { matchLabels: Record<string, string> } } }>('PodDisruptionBudget')[0]!
    .body;
  for (const [k, v] of Object.entries(pdb.spec.selector.matchLabels)) assert.equal(podLabels[k], v);
});

test('the mappings ConfigMap holds the repository mapping files, byte for byte', () => {
  const cm = of<IConfigMap>('ConfigMap').find((m) => m.body.metadata?.name === 'mqtt-dialect-proxy-mappings');
  assert.ok(cm, 'mappings ConfigMap present');
  const data = cm.body.data ?? {};
  assert.ok(Object.keys(data).length > 0);
  for (const [key, content] of Object.entries(data)) {
    const [folder, ...rest] = key.split('.');
    const path = join(root, 'mappings', folder ?? '', rest.join('.'));
    assert.ok(existsSync(path), `${key}: mappings/${folder}/${rest.join('.')} does not exist`);
    assert.equal(content, readFileSync(path, 'utf8'), `${key} differs from the repository file`);
  }
  const route = proxyContainers()[0]!.c.env!.find((e) => e.name === 'MQTT_PROXY_ROUTE')!.value;
  assert.ok(`routes.${route}.yaml` in data, `route ${route} is in the ConfigMap`);
});
