import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parse as yamlParse } from 'yaml';
import { main } from '../../src/cli/config.js';
import {
  listeningBanner,
  MASK,
  maskConfig,
  maskUrlPassword,
  resolveConfig,
  sensitivePaths,
} from '../../src/config/print.js';
import { configWith, type ProxyConfig } from '../../src/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'mdp-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function run(argv: string[], env: Record<string, string | undefined> = {}) {
  let out = '';
  let err = '';
  return main(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t), env }).then((code) => ({
    code,
    out,
    err,
  }));
}

test('every field marked sensitive in the schema is known to the masker', () => {
  assert.deepEqual(sensitivePaths().sort(), ['listen.tlsKey', 'north.key', 'store.redisUrl']);
});

test('precedence: defaults < --config file < environment < flags', async () => {
  const file = join(dir, 'precedence.yaml');
  writeFileSync(
    file,
    'listen:\n  tcpPort: 1001\n  wsPort: 1002\n  wsPath: /from-file\nmetrics:\n  port: 1003\n',
  );
  const env = { MQTT_PROXY_WS_PORT: '2002', MQTT_PROXY_METRICS_PORT: '2003' };
  const r = await run(['config', '--print', '--config', file, '--metrics-port', '3003'], env);
  assert.equal(r.code, 0, r.err);
  const printed = yamlParse(r.out) as ProxyConfig;
  assert.equal(printed.listen.tcpPort, 1001, 'file beats default');
  assert.equal(printed.listen.wsPath, '/from-file');
  assert.equal(printed.listen.wsPort, 2002, 'env beats file');
  assert.equal(printed.metrics.port, 3003, 'flag beats env and file');
  assert.equal(printed.listen.tlsPort, 8883, 'default where nothing is set');
});

test('secrets are masked in the printed configuration, in YAML and JSON', async () => {
  const file = join(dir, 'secrets.json');
  // Each key with its certificate: one without the other is refused (see the next test).
  writeFileSync(
    file,
    JSON.stringify({ listen: { tlsCert: '/run/tls.crt', tlsKey: '/run/secrets/tls-key-s3cr3t.pem' } }),
  );
  const env = {
    MQTT_PROXY_REDIS_URL: 'redis://:redisPassw0rd@127.0.0.1:6379/0',
    MQTT_PROXY_NORTH_URL: 'mqtts://device-1:northPassw0rd@broker.example:8883',
  };
  for (const format of ['yaml', 'json']) {
    const r = await run(
      [
        '--print',
        `--format=${format}`,
        '--config',
        file,
        '--north-cert',
        '/run/north.crt',
        '--north-key',
        'k3y-file-s3cr3t',
      ],
      env,
    );
    assert.equal(r.code, 0, r.err);
    for (const secret of ['redisPassw0rd', 'northPassw0rd', 'k3y-file-s3cr3t', 'tls-key-s3cr3t']) {
      assert.ok(!r.out.includes(secret), `${secret} leaked in ${format}`);
    }
    const printed = (format === 'json' ? JSON.parse(r.out) : yamlParse(r.out)) as ProxyConfig;
    assert.equal(printed.north.key, MASK);
    assert.equal(printed.listen.tlsKey, MASK);
    assert.equal(printed.store.redisUrl, MASK);
    assert.equal(printed.north.url, `mqtts://device-1:${MASK}@broker.example:8883`);
    assert.equal(printed.north.cert, '/run/north.crt', 'a non-secret is shown');
    assert.equal(printed.listen.tlsCa, '', 'an unset non-secret stays visible');
  }
});

test('a certificate without its key, a key without its certificate, a CA without both: exit 2 naming the option', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--tls-cert', '/run/tls.crt'], /listen\.tlsKey: must be set with listen\.tlsCert/],
    [['--tls-key', '/run/secrets/tls-k3y.pem'], /listen\.tlsCert: must be set with listen\.tlsKey/],
    [['--tls-ca', '/run/ca.crt'], /listen\.tlsCa: .*set listen\.tlsCert and listen\.tlsKey/],
    [['--north-cert', '/run/north.crt'], /north\.key: must be set with north\.cert/],
    [['--north-key', '/run/secrets/north-k3y.pem'], /north\.cert: must be set with north\.key/],
  ];
  for (const [args, want] of cases) {
    const r = await run(['--print', ...args], {});
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.out}`);
    assert.match(r.err, want);
    assert.ok(!r.err.includes('k3y'), r.err);
  }
});

test('maskConfig leaves unset secrets empty and masks URL passwords anywhere', () => {
  const c = configWith({ north: { url: 'mqtt://u:p%40ss@h:1883' } });
  const m = maskConfig(c);
  assert.equal(m.north.key, '');
  assert.equal(m.north.url, `mqtt://u:${MASK}@h:1883`);
  assert.equal(c.north.url, 'mqtt://u:p%40ss@h:1883', 'the input is not modified');
  assert.equal(maskUrlPassword('value was "wss://a:b@c/mqtt"'), `value was "wss://a:${MASK}@c/mqtt"`);
  assert.equal(maskUrlPassword('mqtt://host-only:1883'), 'mqtt://host-only:1883');
  // A password with quotes or an @ is masked whole.
  for (const pw of ["s3cr'et", 's3cr"et', 'p@ss', 'a@b@c']) {
    const masked = maskUrlPassword(`north.url: value was "mqtts://user:${pw}@h:8883"`);
    assert.equal(masked.includes(pw), false, masked);
    assert.ok(masked.includes(`mqtts://user:${MASK}@h:8883`), masked);
  }
});

test('the start-up banner shows the north URL without its password', () => {
  const c = configWith({ north: { url: "mqtts://user:s3cr'et@broker:8883" } });
  const line = listeningBanner(c, { tcp: 1883, ws: 8080, metrics: 9464 });
  assert.equal(line.includes("s3cr'et"), false, line);
  assert.match(line, new RegExp(`north mqtts://user:${MASK.replace(/[[\]]/g, '\\$&')}@broker:8883`));
  assert.match(listeningBanner(configWith({}), {}), /north embedded broker/);
});

test('a YAML syntax error in the config file is reported without quoting the file', async () => {
  const file = join(dir, 'leaky.yaml');
  writeFileSync(file, 'store:\n  redisUrl: redis://:Sup3rS3cretPw@redis:6379/0\n   north:\n  url: x\n');
  const r = await run(['--print', '--config', file]);
  assert.equal(r.code, 2);
  assert.match(r.err, /not valid YAML/);
  assert.equal(r.err.includes('Sup3rS3cretPw'), false, r.err);
});

test('an invalid value is explained on stderr with exit code 2, and no secret is echoed', async () => {
  const r = await run(['--print', '--tcp-port', '70000', '--north-url', 'mqtt://dev:leakyPassw0rd@h:1883']);
  assert.equal(r.code, 2);
  assert.equal(r.out, '');
  assert.match(r.err, /listen\.tcpPort: must be a port number/);
  assert.ok(!r.err.includes('leakyPassw0rd'));
  const bad = await run(['--print', '--redis-url', 'redis://:p@h', '--store', 'sqlite']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /store\.kind/);
  for (const value of ['0', '65536', '2.5']) {
    const window = await run(['--print', '--gateway-inflight', value]);
    assert.equal(window.code, 2, `--gateway-inflight ${value}`);
    assert.match(window.err, /limits\.gatewayInflight: must be a whole number from 1 to 65535/);
  }
  const ok = await run(['--print', '--format', 'json'], { MQTT_PROXY_GATEWAY_INFLIGHT: '65535' });
  assert.equal(ok.code, 0);
  assert.equal((JSON.parse(ok.out) as ProxyConfig).limits.gatewayInflight, 65535);
});

test('unknown keys, unreadable and malformed files are clear errors', async () => {
  const unknown = join(dir, 'unknown.yaml');
  writeFileSync(unknown, 'listen:\n  tcpPortt: 1\n');
  const r1 = await run(['--print', '--config', unknown]);
  assert.equal(r1.code, 2);
  assert.match(r1.err, /tcpPortt/);

  const r2 = await run(['--print', '--config', join(dir, 'missing.yaml')]);
  assert.equal(r2.code, 2);
  assert.match(r2.err, /cannot read configuration file .*missing\.yaml: ENOENT/);

  const broken = join(dir, 'broken.yaml');
  writeFileSync(broken, 'listen: [1, 2\n');
  const r3 = await run(['--print', '--config', broken]);
  assert.equal(r3.code, 2);
  assert.match(r3.err, /not valid YAML/);

  const scalar = join(dir, 'scalar.yaml');
  writeFileSync(scalar, '42\n');
  const r4 = await run(['--print', '--config', scalar]);
  assert.equal(r4.code, 2);
  assert.match(r4.err, /must hold a mapping/);
});

test('usage errors: no --print, bad --format, --config without a file; --help exits 0', async () => {
  assert.equal((await run([])).code, 2);
  assert.equal((await run(['--print', '--format', 'toml'])).code, 2);
  assert.equal((await run(['--print', '--config'])).code, 2);
  const help = await run(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.out, /config --print/);
});

test('resolveConfig equals configWith for the same overrides', () => {
  const viaFlags = resolveConfig({ args: ['--tcp-port', '1884', '--route', 'akenza'], env: {} });
  assert.deepEqual(viaFlags, configWith({ listen: { tcpPort: 1884 }, mapping: { route: 'akenza' } }));
});

test('the installed command: mqtt-dialect-proxy config --print through the CLI dispatcher', async () => {
  const { execFile } = await import('node:child_process');
  const root = new URL('../../', import.meta.url);
  const run = (args: string[], env: Record<string, string>) =>
    new Promise<{ code: number; out: string; err: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', 'src/cli/main.ts', 'config', ...args],
        { cwd: root, timeout: 30_000, env: { PATH: process.env.PATH ?? '', ...env } },
        (e, out, err) => resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out, err }),
      );
    });
  const ok = await run(['--print', '--format', 'json', '--tcp-port', '1999'], {
    MQTT_PROXY_NORTH_URL: 'mqtts://dev:cliPassw0rd@broker.example:8883',
  });
  assert.equal(ok.code, 0, ok.err);
  const printed = JSON.parse(ok.out) as ProxyConfig;
  assert.equal(printed.listen.tcpPort, 1999);
  assert.equal(printed.north.url, `mqtts://dev:${MASK}@broker.example:8883`);
  assert.ok(!ok.out.includes('cliPassw0rd'));
  const bad = await run(['--print', '--metrics-port', 'nine'], {});
  assert.equal(bad.code, 2);
  assert.match(bad.err, /metrics\.port/);
});

test('a YAML syntax error names its line and column, never the content', async () => {
  const file = join(dir, 'syntax.yaml');
  writeFileSync(file, 'north:\n  url: mqtt://broker:1883\nb: |x SECRETVALUE\n  t\n');
  const r = await run(['--print', '--config', file]);
  assert.equal(r.code, 2);
  assert.match(r.err, /syntax\.yaml is not valid YAML\/JSON at line 3, column 5: /);
  assert.doesNotMatch(r.err, /SECRETVALUE/);
});

test('a north or Redis URL that does not parse is refused without quoting it (its password escapes the mask)', () => {
  for (const [flag, pw] of [
    ['--north-url', 'sEcr3t"Pw9 zQ4'],
    ['--redis-url', "oNe7'tWo8 kQ5"],
  ] as const) {
    const url = `${flag === '--north-url' ? 'mqtt://' : 'redis//'}user:${pw}@host:1883`;
    const args = flag === '--redis-url' ? ['--store', 'redis', flag, url] : [flag, url];
    assert.throws(
      () => resolveConfig({ args, env: {} }),
      (e: Error) => {
        assert.match(e.message, flag === '--north-url' ? /north\.url: / : /store\.redisUrl: /);
        for (const part of pw.split(/[ "']/)) assert.ok(!e.message.includes(part), e.message);
        return true;
      },
    );
  }
});

test('on/off options read 0, no and off as false, and refuse a word they do not know', () => {
  const read = (env: Record<string, string>) => resolveConfig({ args: [], env });
  for (const [value, want] of [
    ['0', false],
    ['no', false],
    ['OFF', false],
    ['false', false],
    ['1', true],
    ['yes', true],
    ['on', true],
    ['true', true],
  ] as const) {
    // MQTT_PROXY_NATIVE_WS=0 used to turn native WebSocket clients on: only "false" was false.
    assert.equal(
      read({ MQTT_PROXY_NATIVE_WS: value }).listen.nativeWs,
      want,
      `MQTT_PROXY_NATIVE_WS=${value}`,
    );
    assert.equal(
      read({ MQTT_PROXY_NORTH_REJECT_UNAUTHORIZED: value }).north.rejectUnauthorized,
      want,
      `MQTT_PROXY_NORTH_REJECT_UNAUTHORIZED=${value}`,
    );
    assert.equal(resolveConfig({ args: [`--native-ws=${value}`], env: {} }).listen.nativeWs, want);
  }
  assert.equal(resolveConfig({ args: ['--native-ws'], env: {} }).listen.nativeWs, true);
  assert.throws(() => read({ MQTT_PROXY_NATIVE_WS: 'maybe' }), /listen\.nativeWs: must be true or false/);
  assert.throws(
    () => read({ MQTT_PROXY_NORTH_REJECT_UNAUTHORIZED: 'nope' }),
    /north\.rejectUnauthorized: must be true or false/,
  );
});

test('a number with a unit or trailing text is refused, not read as its leading digits', () => {
  const cases: Array<[Record<string, string>, string[], RegExp]> = [
    // Read as 10 ms and 1 byte before: the drain skipped, every packet too large.
    [{ MQTT_PROXY_SHUTDOWN_GRACE_MS: '10s' }, [], /shutdown\.graceMs: must be a positive whole number/],
    [{ MQTT_PROXY_MAX_PACKET_BYTES: '1MB' }, [], /limits\.maxPacketBytes: must be a positive whole number/],
    [{ MQTT_PROXY_TCP_PORT: '1883abc' }, [], /listen\.tcpPort: must be a port number/],
    [{}, ['--connect-timeout-ms', '10s'], /limits\.connectTimeoutMs: must be a positive whole number/],
    [
      { MQTT_PROXY_GATEWAY_INFLIGHT: '1e3' },
      [],
      /limits\.gatewayInflight: must be a whole number from 1 to 65535/,
    ],
    [{}, ['--embedded-port=80.5'], /embedded\.port: must be a port number/],
  ];
  for (const [env, args, want] of cases) assert.throws(() => resolveConfig({ args, env }), want);
  const ok = resolveConfig({
    args: ['--tcp-port', '-1', '--metrics-port=0', '--shutdown-grace-ms', '20000'],
    env: { MQTT_PROXY_WS_PORT: ' 8081 ', MQTT_PROXY_MAX_PACKET_BYTES: '2048' },
  });
  assert.equal(ok.listen.tcpPort, -1);
  assert.equal(ok.listen.wsPort, 8081);
  assert.equal(ok.metrics.port, 0);
  assert.equal(ok.shutdown.graceMs, 20000);
  assert.equal(ok.limits.maxPacketBytes, 2048);
});
