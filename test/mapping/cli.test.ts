/**
 * The check and translate commands, run in-process through their exported main().
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { main as check, type Io } from '../../src/cli/check.js';
import { main as translate } from '../../src/cli/translate.js';
import { MAPPINGS_DIR } from './shipped.js';

async function capture(fn: (io: Io) => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await fn({
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
  });
  return { code, out, err };
}

let tmp = '';
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'mdp-cli-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

test('check: the shipped mappings are valid (exit 0)', async () => {
  const r = await capture((io) => check([MAPPINGS_DIR], io));
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /ok \(5 dialects: akenza, clearblade, connector, evrythng, foxtrackr;/);
});

test('check: an unknown option is a usage error (exit 2), not errors found (exit 1)', async () => {
  const r = await capture((io) => check([MAPPINGS_DIR, '--bogus'], io));
  assert.equal(r.code, 2);
  assert.match(r.err, /check: unknown option --bogus/);
  assert.match(r.err, /usage: mqtt-dialect-proxy check/);
});

test('check: reports every error of a broken folder with file:line:col (exit 1)', async () => {
  const dir = join(tmp, 'broken');
  await cp(MAPPINGS_DIR, dir, { recursive: true });
  await writeFile(
    join(dir, 'dialects', 'evrythng.yaml'),
    'dialect: evrythng\ntopics:\n  - name: p\n    topic: "/thngs/{thngId}/x"\n    up: samples\n    colour: blue\n',
  );
  await writeFile(join(dir, 'routes', 'bad.yaml'), 'route: bad\nsouth: connector\nnorth: nowhere\n');
  const r = await capture((io) => check([dir], io));
  assert.equal(r.code, 1);
  const lines = r.err.trim().split('\n');
  assert.ok(
    lines.includes(
      `${join(dir, 'dialects', 'evrythng.yaml')}:6:5: unknown key 'colour' in 'topics.0' (see docs/mapping-reference.md for the keys allowed here)`,
    ),
    r.err,
  );
  assert.ok(
    lines.some((l) => l.startsWith(`${join(dir, 'routes', 'bad.yaml')}:3:8: unknown dialect 'nowhere'`)),
    r.err,
  );
  assert.match(lines[lines.length - 1] ?? '', /^\d+ errors in /);
});

test('translate: one Connector resource to EVRYTHNG, as JSON with exactly the documented fields', async () => {
  const r = await capture((io) =>
    translate(
      [
        '--dir',
        MAPPINGS_DIR,
        '--south',
        'connector',
        '--north',
        'evrythng',
        '--var',
        'deviceId=12345',
        '--var',
        'thngId=UXYZ',
        '--topic',
        '$resource/temp',
        '--payload',
        '23',
        '--qos',
        '1',
        '--now',
        '1700000000000',
        '--json',
      ],
      io,
    ),
  );
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), [
    {
      topic: '/thngs/UXYZ/properties/temp',
      payload: '[{"value":23,"timestamp":1700000000000}]',
      qos: 1,
      retain: false,
      properties: {},
    },
  ]);
});

test('translate --downlink: an EVRYTHNG property update to the Connector device (text)', async () => {
  const r = await capture((io) =>
    translate(
      [
        '--dir',
        MAPPINGS_DIR,
        '--south',
        'connector',
        '--north',
        'evrythng',
        '--var',
        'thngId=UXYZ',
        '--downlink',
        '--topic',
        '/thngs/UXYZ/properties/temp',
        '--payload',
        '[{"value":5}]',
      ],
      io,
    ),
  );
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, '→ south $resource/temp qos=0 retain=false\n  5\n');
});

/** `translate` on the shipped mappings with these arguments. */
const translateShipped = (args: string[]) => capture((io) => translate(['--dir', MAPPINGS_DIR, ...args], io));

test('translate: what the platform behind takes decides the output (table)', async () => {
  const cases: Array<[string, string, string]> = [
    [
      'a QoS 2 publish goes to a Connector platform at QoS 1 (it treats QoS 2 as QoS 0 and never answers PUBREC)',
      '--south akenza --north connector --var secret=S3 --var deviceId=12345 --var connectorId=c1 --topic /up/S3/id/12345 --payload {"temp":5} --qos 2',
      '→ north $resource/temp qos=1 retain=false\n  5\n',
    ],
    [
      'a ClearBlade event subfolder of several levels becomes one EVRYTHNG action name, escaped',
      '--south clearblade --north evrythng --var deviceId=d1 --var thngId=T1 --topic /devices/d1/events/alerts/critical --payload {"level":3}',
      '→ north /thngs/T1/actions/alerts%2Fcritical qos=0 retain=false\n  {"level":3}\n',
    ],
    [
      'a 20-digit integer reaches EVRYTHNG with all its digits',
      '--south connector --north evrythng --var deviceId=12345 --var thngId=UXYZ --topic $resource/count --payload 12345678901234567890 --now 1700000000000',
      '→ north /thngs/UXYZ/properties/count qos=0 retain=false\n  [{"value":12345678901234567890,"timestamp":1700000000000}]\n',
    ],
    [
      "an akenza object's numbers reach the Connector as written",
      '--south akenza --north connector --var secret=S3 --var deviceId=12345 --var connectorId=c1 --topic /up/S3/id/12345 --payload {"big":12345678901234567890,"t":23.10}',
      '→ north $resource/big qos=0 retain=false\n  12345678901234567890\n→ north $resource/t qos=0 retain=false\n  23.10\n',
    ],
  ];
  for (const [what, args, want] of cases) {
    const r = await translateShipped(args.split(' '));
    assert.equal(r.code, 0, `${what}: ${r.err}`);
    assert.equal(r.out, want, what);
  }
});

test('translate: a dropped message exits 1 with its reason', async () => {
  const r = await capture((io) =>
    translate(
      [
        '--dir',
        MAPPINGS_DIR,
        '--south',
        'connector',
        '--north',
        'evrythng',
        '--var',
        'thngId=UXYZ',
        '--topic',
        'nope',
        '--payload',
        '1',
      ],
      io,
    ),
  );
  assert.equal(r.code, 1);
  assert.equal(r.out, 'the device would be disconnected (unknown_topic)\n');
});

test('translate --credentials: identity from a credentials file, secrets never printed', async () => {
  const file = join(tmp, 'creds.yaml');
  await writeFile(
    file,
    '- south: { deviceId: "12345", token: "tok-secret-1" }\n  north: { connectorId: c1, secret: "S3CR3T-VALUE" }\n',
  );
  const r = await capture((io) =>
    translate(
      [
        '--dir',
        MAPPINGS_DIR,
        '--south',
        'connector',
        '--north',
        'akenza',
        '--credentials',
        file,
        '--topic',
        '$resource',
        '--payload',
        '{"t":1}',
        '--json',
      ],
      io,
    ),
  );
  assert.equal(r.code, 0, r.err);
  // The akenza uplink topic carries the secret by design: that is the packet the proxy sends.
  assert.deepEqual(JSON.parse(r.out), [
    { topic: '/up/S3CR3T-VALUE/id/12345', payload: '{"t":1}', qos: 0, retain: false, properties: {} },
  ]);
  assert.ok(!r.err.includes('tok-secret-1'));
});

test('translate --session: replays a recorded session step by step', async () => {
  const r = await capture((io) =>
    translate(
      [
        '--dir',
        MAPPINGS_DIR,
        '--session',
        join(import.meta.dirname, 'sessions', 'connector-evrythng.yaml'),
        '--now',
        '1700000000000',
      ],
      io,
    ),
  );
  assert.equal(r.code, 0, r.err);
  assert.equal(
    r.out,
    [
      '#1 subscribe north [] granted [0]',
      '#2 → north /thngs/UXYZ/properties/temp qos=1 retain=false',
      '  [{"value":21,"timestamp":1700000000000}]',
      '#3 → south $resource/target qos=0 retain=false',
      '  19',
      '#4 the device would be disconnected (unknown_topic)',
      '',
    ].join('\n'),
  );
});

test('translate: usage errors exit 2 and name the problem', async () => {
  const r = await capture((io) =>
    translate(['--dir', MAPPINGS_DIR, '--south', 'connector', '--north', 'mqttx', '--topic', 'a'], io),
  );
  assert.equal(r.code, 2);
  assert.match(
    r.err,
    /unknown dialect 'mqttx' \(dialects: akenza, clearblade, connector, evrythng, foxtrackr\)/,
  );
  const v = await capture((io) => translate(['--var', 'novalue'], io));
  assert.equal(v.code, 2);
  assert.match(v.err, /--var takes NAME=VALUE/);
});

test('translate --session --json: one object per step', async () => {
  const r = await capture((io) =>
    translate(
      [
        '--dir',
        MAPPINGS_DIR,
        '--session',
        join(import.meta.dirname, 'sessions', 'connector-evrythng.yaml'),
        '--now',
        '1700000000000',
        '--json',
      ],
      io,
    ),
  );
  assert.equal(r.code, 0, r.err);
  const steps = JSON.parse(r.out) as Array<Record<string, unknown>>;
  assert.equal(steps.length, 4);
  assert.deepEqual(steps[0], { step: 1, subscribe: { north: [], granted: [{ code: 0 }] } });
  assert.deepEqual(steps[1], {
    step: 2,
    verdict: 'continue',
    north: [
      {
        topic: '/thngs/UXYZ/properties/temp',
        payload: '[{"value":21,"timestamp":1700000000000}]',
        qos: 1,
        retain: false,
        properties: {},
      },
    ],
  });
  assert.deepEqual(steps[3], { step: 4, verdict: 'disconnect', reason: 'unknown_topic', north: [] });
  assert.match(r.err, /#4 the device would be disconnected \(unknown_topic\)/);
});
