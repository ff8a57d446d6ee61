/**
 * What the CLI says about its configuration and its dependencies: a Redis store that cannot
 * be reached is logged (once per outage, without the URL's password), and invalid values
 * exit 2 naming the option, never printing a password.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { trackDir } from '../helpers/reaper.js';
import { exitWithin, startCli } from './cli-process.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tmp = trackDir(mkdtempSync(join(tmpdir(), 'mdp-cli-errors-')));
after(() => rmSync(tmp, { recursive: true, force: true }));

const PASSWORD = 'Pw-9xQ2-zz';

const base = [
  '--host=127.0.0.1',
  '--tcp-port=0',
  '--ws-port=-1',
  '--tls-port=-1',
  '--wss-port=-1',
  '--metrics-port=-1',
  '--log-format=json',
  '--log-level=info',
];

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('an unreachable Redis store is logged once, without the password', async () => {
  const port = await closedPort();
  const proxy = await startCli({
    cwd: root,
    args: [...base, '--store=redis', `--redis-url=redis://user:${PASSWORD}@127.0.0.1:${port}/0`],
  });
  try {
    const line = await proxy.waitForLog(
      (r) => r['msg'] === 'credentials store unreachable; retrying',
      10_000,
    );
    assert.equal(line['level'], 40);
    // Reconnect attempts go on (100, 200, 400 ms...): still one line for the outage.
    await new Promise((r) => setTimeout(r, 1000));
    const lines = proxy.records.filter((r) => r['msg'] === 'credentials store unreachable; retrying');
    assert.equal(lines.length, 1);
    assert.ok(!proxy.stdout().includes(PASSWORD) && !proxy.stderr().includes(PASSWORD));
    proxy.child.kill('SIGTERM');
    assert.equal(await exitWithin(proxy, 10_000), 0);
  } finally {
    await proxy.kill();
  }
});

function cli(args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 20_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('an invalid Redis URL exits 2 naming store.redisUrl, without the password', () => {
  for (const url of [`redis//u:${PASSWORD}@host`, `redis://u:${PASSWORD}@[bad`]) {
    const r = cli([...base, '--store', 'redis', '--redis-url', url]);
    assert.equal(r.status, 2, r.out);
    assert.match(r.out, /store\.redisUrl/);
    assert.ok(!r.out.includes(PASSWORD), r.out);
  }
});

test('a north URL the URL parser refuses exits 2 naming north.url, without the password', () => {
  const r = cli([...base, '--north-url', `mqtt://u:${PASSWORD}@x@[bad`]);
  assert.equal(r.status, 2, r.out);
  assert.match(r.out, /north\.url/);
  assert.ok(!r.out.includes(PASSWORD), r.out);
  // config --print validates the same way.
  const p = cli(['config', '--print', '--north-url', `mqtt://u:${PASSWORD}@x@[bad`]);
  assert.equal(p.status, 2, p.out);
  assert.ok(!p.out.includes(PASSWORD), p.out);
});

test('--config without a file exits 2 with a clear message', () => {
  for (const args of [
    ['--config'],
    ['--config='],
    ['-c', '--tcp-port=0'],
    ['--config', '--metrics-port=-1'],
  ]) {
    const r = cli([...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.out}`);
    assert.match(r.out, /--config needs a file name/);
  }
});

test('the deprecated limits.maxBufferedBytes still starts the proxy, with a warning', async () => {
  const proxy = await startCli({ cwd: root, args: [...base, '--max-buffered-bytes=2048'] });
  try {
    const line = await proxy.waitForLog(
      (r) => /maxBufferedBytes .*deprecated/.test(String(r['msg'])),
      10_000,
    );
    assert.equal(line['level'], 40);
    proxy.child.kill('SIGTERM');
    assert.equal(await exitWithin(proxy, 10_000), 0);
  } finally {
    await proxy.kill();
  }
});
