/**
 * A route that names its own north (`url:` in its file) with no process north URL: the proxy
 * uses that URL for its sessions, so /readyz must probe it too, and no embedded broker is
 * started for nobody.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MAPPINGS, tempDir, writeCredentials } from '../dialects/kit.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { freePort } from '../helpers/ports.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

const tmp = tempDir('mdp-ready-');
after(() => tmp.cleanup());

/** A copy of the shipped mappings whose connector-to-evrythng route names `url`. */
function mappingsWithRouteUrl(name: string, url: string): string {
  const dir = join(tmp.dir, name);
  cpSync(MAPPINGS, dir, { recursive: true });
  const file = join(dir, 'routes', 'connector-to-evrythng.yaml');
  writeFileSync(file, `${readFileSync(file, 'utf8')}\nurl: ${url}\n`);
  return dir;
}

async function readiness(p: TestProxy, want: number): Promise<{ status: number; body: string }> {
  const end = Date.now() + 5000;
  for (;;) {
    const r = await fetch(`${p.metricsUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
    const out = { status: r.status, body: await r.text() };
    if (out.status === want || Date.now() > end) return out;
    await new Promise((res) => setTimeout(res, 100));
  }
}

describe("readiness follows the route's own north URL", () => {
  let broker: MosquittoBroker;
  const proxies: TestProxy[] = [];
  before(async () => {
    broker = await startMosquitto({});
  });
  after(async () => {
    for (const p of proxies) await p.close(200);
    await broker?.stop();
  });

  const start = async (dir: string) => {
    const creds = writeCredentials(tmp.dir, [
      { south: { token: 'tok-ready-0123456789' }, north: { thngId: 'UXYZ', apiKey: 'key-ready' } },
    ]);
    const p = await startTestProxy({
      north: { url: '' },
      mapping: { dir, route: 'connector-to-evrythng', credentials: creds },
    });
    proxies.push(p);
    return p;
  };

  it('is not ready while the route URL is unreachable, and starts no embedded broker', async () => {
    const closed = await freePort();
    const p = await start(mappingsWithRouteUrl('down', `mqtt://127.0.0.1:${closed}`));
    assert.equal(p.ports.embedded, undefined, 'no embedded broker');
    const r = await readiness(p, 503);
    assert.equal(r.status, 503, r.body);
  });

  it('is ready when the route URL answers', async () => {
    const p = await start(mappingsWithRouteUrl('up', broker.url));
    assert.equal(p.ports.embedded, undefined, 'no embedded broker');
    const r = await readiness(p, 200);
    assert.equal(r.status, 200, r.body);
  });
});
