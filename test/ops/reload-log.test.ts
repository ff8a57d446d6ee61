/**
 * A mapping reload logs its outcome once, with the wording docs/operations.md documents,
 * whether the file watcher or SIGHUP (ProxyHandle.reload) triggered it.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { captureLogs } from '../dialects/kit.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { trackDir } from '../helpers/reaper.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tmp = trackDir(mkdtempSync(join(tmpdir(), 'mdp-reload-log-')));
after(() => rmSync(tmp, { recursive: true, force: true }));

const REFUSED = 'reload refused: mapping invalid, old version kept';
const RELOADED = 'mappings reloaded';

async function waitFor(what: string, pred: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('one log line per reload outcome, from the watcher and from SIGHUP alike', async () => {
  const dir = join(tmp, 'mappings');
  cpSync(join(root, 'mappings'), dir, { recursive: true });
  const route = 'akenza-to-evrythng';
  const routeFile = join(dir, 'routes', `${route}.yaml`);
  const good = readFileSync(routeFile, 'utf8');
  const logs = captureLogs();
  const count = (msg: string) => logs.lines().filter((r) => r['msg'] === msg).length;
  const saved = { a: process.env.AKENZA_SECRET, e: process.env.EVRYTHNG_API_KEY };
  process.env.AKENZA_SECRET = 'test-only-akenza';
  process.env.EVRYTHNG_API_KEY = 'test-only-evrythng';
  let proxy: TestProxy | undefined;
  try {
    proxy = await startTestProxy({ mapping: { dir, route } }, { logger: logs.logger });
    // The watcher: an invalid edit of the route file.
    writeFileSync(routeFile, 'route: [this is not a route\n');
    await waitFor('the refusal', () => count(REFUSED) > 0);
    await new Promise((r) => setTimeout(r, 500));
    const perReload = count(REFUSED);
    const errors = logs
      .lines()
      .filter((r) => r['msg'] === REFUSED)
      .map((r) => r['mappingError']);
    assert.equal(new Set(errors).size, perReload, 'each error once');
    assert.equal(logs.lines().filter((r) => /reload rejected/.test(String(r['msg']))).length, 0);

    // SIGHUP on the same invalid file: the same lines once more, not twice more.
    assert.equal(await proxy.reload(), false);
    assert.equal(count(REFUSED), 2 * perReload);

    // A valid version: one success line per reload.
    writeFileSync(routeFile, good);
    await waitFor('the reload', () => count(RELOADED) > 0);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(count(RELOADED), 1);
    assert.equal(await proxy.reload(), true);
    assert.equal(count(RELOADED), 2);
  } finally {
    await proxy?.close(200);
    for (const [k, v] of [
      ['AKENZA_SECRET', saved.a],
      ['EVRYTHNG_API_KEY', saved.e],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});
