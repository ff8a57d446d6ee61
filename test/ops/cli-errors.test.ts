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
import { schemaLeaves } from '../../src/config/print.js';
import { generateCerts } from '../helpers/certs.js';
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

function cli(args: string[], env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 20_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...env },
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

/** `s` as a regular expression matching it literally. */
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('a port in use exits 1 naming the option and the address', async () => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const { port } = taken.address() as AddressInfo;
  try {
    const tcp = cli([...base.filter((a) => !a.startsWith('--tcp-port')), `--tcp-port=${port}`]);
    assert.equal(tcp.status, 1, tcp.out);
    assert.match(
      tcp.out,
      new RegExp(
        `listen\\.tcpPort: cannot listen on 127\\.0\\.0\\.1:${port}: already in use \\(EADDRINUSE\\)`,
      ),
    );
    const metrics = cli([
      ...base.filter((a) => !a.startsWith('--metrics-port')),
      '--metrics-host=127.0.0.1',
      `--metrics-port=${port}`,
    ]);
    assert.equal(metrics.status, 1, metrics.out);
    assert.match(
      metrics.out,
      new RegExp(`metrics\\.port: cannot listen on 127\\.0\\.0\\.1:${port}: already in use`),
    );
  } finally {
    await new Promise<void>((r) => taken.close(() => r()));
  }
});

test("TLS files: unreadable, not PEM, or a key that is not the certificate's exit 1 naming the option, never the key", () => {
  const pki = generateCerts({ clients: ['other'] });
  try {
    const cases: Array<[string[], RegExp]> = [
      [
        [`--tls-cert=${pki.server.certPath}`, `--tls-key=${pki.clients['other']!.keyPath}`],
        new RegExp(
          `listen\\.tlsKey: ${esc(pki.clients['other']!.keyPath)} is not the key of listen\\.tlsCert`,
        ),
      ],
      [
        [`--tls-cert=${pki.server.certPath}`, `--tls-key=${join(tmp, 'none.key')}`],
        /listen\.tlsKey: cannot read .*none\.key: no such file \(ENOENT\)/,
      ],
      [
        [`--tls-cert=${pki.server.keyPath}`, `--tls-key=${pki.server.keyPath}`],
        /listen\.tlsCert: .* is not a PEM certificate/,
      ],
      [
        [
          `--north-url=mqtts://127.0.0.1:1`,
          `--north-cert=${pki.server.certPath}`,
          `--north-key=${pki.clients['other']!.keyPath}`,
        ],
        new RegExp(`north\\.key: ${esc(pki.clients['other']!.keyPath)} is not the key of north\\.cert`),
      ],
      [
        [`--north-url=mqtts://127.0.0.1:1`, `--north-ca=${tmp}`],
        /north\.ca: cannot read .*: a folder, not a file \(EISDIR\)/,
      ],
    ];
    for (const [args, want] of cases) {
      const r = cli([...base, ...args]);
      assert.equal(r.status, 1, r.out);
      assert.match(r.out, want);
      assert.ok(!r.out.includes('PRIVATE KEY'), r.out);
    }
    // An inline key (from the environment) is never quoted back.
    const inline = cli([...base, `--tls-cert=${pki.server.certPath}`], {
      MQTT_PROXY_TLS_KEY: pki.clients['other']!.key,
    });
    assert.equal(inline.status, 1, inline.out);
    assert.match(inline.out, /listen\.tlsKey: the inline value is not the key of listen\.tlsCert/);
    assert.ok(!inline.out.includes('PRIVATE KEY'), inline.out);
  } finally {
    pki.cleanup();
  }
});

test('an unknown option is named without its value; a stray value is not shown', () => {
  const url = cli([...base, `--north-ur=mqtt://u:${PASSWORD}@host`]);
  assert.equal(url.status, 2, url.out);
  assert.match(url.out, /unknown option "--north-ur"/);
  assert.ok(!url.out.includes(PASSWORD), url.out);
  // A PEM key after a flag that takes no value in that form: never echoed.
  const pem = `-----BEGIN PRIVATE KEY-----\n${PASSWORD}\n-----END PRIVATE KEY-----`;
  const stray = cli([...base, '--tls-key', pem]);
  assert.equal(stray.status, 2, stray.out);
  assert.ok(!stray.out.includes(PASSWORD), stray.out);
  assert.match(stray.out, /unexpected argument/);
  assert.match(cli(['bogus']).out, /unknown command or option "bogus"/);
});

test('--help lists every run option with its variable (the image holds no README to point to)', () => {
  for (const args of [['--help'], ['help'], ['run', '-h']]) {
    const r = cli(args);
    assert.equal(r.status, 0, r.out);
    for (const { path, leaf } of schemaLeaves()) {
      assert.ok(r.out.includes(`--${leaf.arg}  ${leaf.env}  (${path}, default `), `${args}: ${path}`);
    }
  }
});
