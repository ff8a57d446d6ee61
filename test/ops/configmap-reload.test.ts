/**
 * Hot reload as Kubernetes delivers a changed ConfigMap: the kubelet writes the new files
 * into a fresh timestamped folder and swaps the `..data` symlink atomically; the visible
 * dialects/, routes/ and credentials/ are symlinks through `..data`. The running proxy must
 * notice each swap, reload valid mappings, refuse (and count) invalid ones while serving
 * with the previous version, and keep noticing later swaps.
 * The files are the Kubernetes example's own: its ConfigMap and Secret.
 */
import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { trackDir } from '../helpers/reaper.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tmp = trackDir(mkdtempSync(join(tmpdir(), 'mdp-configmap-')));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Obj {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}
const objects = ['configmap-mappings.yaml', 'secret-credentials.yaml'].flatMap((f) =>
  parseAllDocuments(readFileSync(join(root, 'deploy/kubernetes/config', f), 'utf8')).map(
    (d) => d.toJS() as Obj,
  ),
);
const deployment = parseAllDocuments(
  readFileSync(join(root, 'deploy/kubernetes/standalone/deployment.yaml'), 'utf8'),
)[0]!.toJS() as {
  spec: {
    template: {
      spec: {
        volumes: Array<{
          name: string;
          projected?: {
            sources: Array<{
              configMap?: { name: string; items: Array<{ key: string; path: string }> };
              secret?: { name: string; items: Array<{ key: string; path: string }> };
            }>;
          };
        }>;
      };
    };
  };
};

/** The projected volume's files: path -> content, as the kubelet would write them. */
function projectedFiles(): Map<string, string> {
  const vol = deployment.spec.template.spec.volumes.find((v) => v.name === 'mappings')!;
  const files = new Map<string, string>();
  for (const src of vol.projected!.sources) {
    const ref = src.configMap ?? src.secret!;
    const obj = objects.find((o) => o.metadata.name === ref.name)!;
    const data = { ...(obj.data ?? {}), ...(obj.stringData ?? {}) };
    for (const item of ref.items) files.set(item.path, data[item.key] as string);
  }
  return files;
}

/** The kubelet's atomic update: new timestamped folder, `..data` swapped by rename, old folder removed. */
let generation = 0;
let current: string | undefined;
function publish(dir: string, files: Map<string, string>): void {
  const ts = `..2026_11_22_00_00_${String(++generation).padStart(2, '0')}.000000001`;
  for (const [path, content] of files) {
    mkdirSync(join(dir, ts, dirname(path)), { recursive: true });
    writeFileSync(join(dir, ts, path), content);
  }
  symlinkSync(ts, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  if (generation === 1) {
    for (const top of new Set([...files.keys()].map((p) => p.split('/')[0] as string))) {
      symlinkSync(join('..data', top), join(dir, top));
    }
  }
  if (current) rmSync(join(dir, current), { recursive: true, force: true });
  current = ts;
}

async function reloads(proxy: TestProxy, result: 'success' | 'failure'): Promise<number> {
  const text = await proxy.metrics.registry.metrics();
  let n = 0;
  for (const m of text.matchAll(/^mqtt_proxy_config_reloads_total\{([^}]*)\} (\d+)$/gm)) {
    if ((m[1] as string).includes(`result="${result}"`)) n += Number(m[2]);
  }
  return n;
}

async function waitFor(what: string, pred: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('a ConfigMap update (atomic ..data swap) is reloaded; an invalid one is refused and later fixes still land', async () => {
  const dir = join(tmp, 'mappings');
  mkdirSync(dir);
  const files = projectedFiles();
  const routePath = [...files.keys()].find((p) => p.startsWith('routes/'))!;
  const route = routePath.slice('routes/'.length, -'.yaml'.length);
  publish(dir, files);
  const saved = process.env.AKENZA_SECRET;
  process.env.AKENZA_SECRET = 'test-only-akenza-secret';
  let proxy: TestProxy | undefined;
  try {
    proxy = await startTestProxy({ mapping: { dir, route } });
    const p = proxy;
    const ok0 = await reloads(p, 'success');
    const bad0 = await reloads(p, 'failure');

    // 1. A valid change: the route file gains a comment.
    const changed = new Map(files);
    changed.set(routePath, `${files.get(routePath)}# edited through the ConfigMap\n`);
    publish(dir, changed);
    await waitFor('a successful reload', async () => (await reloads(p, 'success')) > ok0);

    // 2. An invalid change: refused, counted, the proxy keeps serving with the old version.
    const ok1 = await reloads(p, 'success');
    const broken = new Map(files);
    broken.set(routePath, 'route: [this is not a route\n');
    publish(dir, broken);
    await waitFor('a refused reload', async () => (await reloads(p, 'failure')) > bad0);
    assert.equal(await reloads(p, 'success'), ok1, 'the invalid version was not taken');
    const health = await fetch(`${p.metricsUrl}/readyz`, { signal: AbortSignal.timeout(5000) });
    assert.equal(JSON.parse(await health.text()).checks.mappings, true);

    // 3. The fix after a refused version is noticed too.
    publish(dir, files);
    await waitFor('a reload after the fix', async () => (await reloads(p, 'success')) > ok1);
  } finally {
    await proxy?.close(1000);
    if (saved === undefined) delete process.env.AKENZA_SECRET;
    else process.env.AKENZA_SECRET = saved;
  }
});
