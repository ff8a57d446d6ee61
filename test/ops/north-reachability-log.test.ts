/**
 * A north broker that cannot be reached is said in the log, where an operator looks first:
 * once when it goes (at start too), once when it comes back, never the URL's password.
 * Before, the proxy logged "proxy listening" and nothing else until a device tried to connect.
 */
import assert from 'node:assert/strict';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exitWithin, startCli } from './cli-process.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const PASSWORD = 'Nr-7pQ4-zz';

test('an unreachable north broker is logged once at start, its return once, without the password', async () => {
  // A loopback port nothing listens on yet.
  const server: Server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));

  const proxy = await startCli({
    cwd: root,
    args: [
      '--host=127.0.0.1',
      '--tcp-port=0',
      '--ws-port=-1',
      '--tls-port=-1',
      '--wss-port=-1',
      '--metrics-port=-1',
      '--log-format=json',
      '--log-level=info',
      `--north-url=mqtt://user:${PASSWORD}@127.0.0.1:${port}`,
    ],
  });
  try {
    const down = await proxy.waitForLog((r) => /north broker unreachable/.test(String(r['msg'])), 10_000);
    assert.equal(down['level'], 40);
    assert.equal(down['north'], `mqtt://127.0.0.1:${port}`);
    assert.equal(down['err'], 'ECONNREFUSED');

    // The broker comes up: the next probe (every 10 s) says so, once.
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    const up = await proxy.waitForLog((r) => r['msg'] === 'north broker reachable again', 15_000);
    assert.equal(up['level'], 30);
    const downs = proxy.records.filter((r) => /north broker unreachable/.test(String(r['msg'])));
    assert.equal(downs.length, 1, 'one line for the outage, not one per probe');
    assert.ok(!proxy.stdout().includes(PASSWORD) && !proxy.stderr().includes(PASSWORD));

    proxy.child.kill('SIGTERM');
    assert.equal(await exitWithin(proxy, 10_000), 0);
  } finally {
    await proxy.kill();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
