/**
 * Bad mapping files give clear errors: every error of every file, each with
 * file:line:col, a message and a hint.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadMappings, type MappingFile } from '../../src/mapping/load.js';
import { parseCredentials } from '../../src/routes/credentials.js';
import { shippedMappings } from './shipped.js';

const dialect = (name: string, text: string): MappingFile => ({
  path: `mappings/dialects/${name}.yaml`,
  folder: 'dialects',
  text,
});
const errorsOf = (...files: MappingFile[]) => loadMappings(files).errors;

test('the shipped mappings are valid', () => {
  assert.deepEqual(loadMappings(shippedMappings()).errors, []);
});

test('broken YAML reports the syntax error where it is', () => {
  const e = errorsOf(dialect('x', 'dialect: x\ntopics: [\n  - name: a\n'));
  assert.ok(e.length >= 1);
  assert.match(
    e[0] ?? '',
    /^mappings\/dialects\/x\.yaml:3:3: YAML syntax error: .+ \(fix the YAML syntax\)$/,
  );
});

test('an unknown key is reported at the key, with a hint', () => {
  const e = errorsOf(
    dialect(
      'x',
      'dialect: x\ntopics:\n  - name: a\n    topic: "a/{key}"\n    up: samples\n    colour: red\n',
    ),
  );
  assert.deepEqual(e, [
    "mappings/dialects/x.yaml:6:5: unknown key 'colour' in 'topics.0' (see docs/mapping-reference.md for the keys allowed here)",
  ]);
});

test('a broken template is reported at the topic', () => {
  const e = errorsOf(
    dialect('x', 'dialect: x\ntopics:\n  - name: a\n    topic: "a/{key"\n    up: samples\n'),
  );
  assert.deepEqual(e, [
    "mappings/dialects/x.yaml:4:12: bad topic template: malformed capture '{key': a capture is a whole level, {name} or {name...}",
  ]);
  const w = errorsOf(dialect('y', 'dialect: y\ntopics:\n  - name: a\n    topic: "a/+/b"\n    up: event\n'));
  assert.match(
    w[0] ?? '',
    /^mappings\/dialects\/y\.yaml:4:12: bad topic template: a topic template may not contain \+, # or NUL/,
  );
});

test('a capture used but never defined is reported', () => {
  const e = errorsOf(
    dialect(
      'x',
      'dialect: x\nidentity: [deviceId]\ntopics:\n  - name: a\n    topic: "a/{thing}/{key}"\n    up: samples\n',
    ),
  );
  assert.deepEqual(e, [
    "mappings/dialects/x.yaml:5:12: unknown capture {thing} in 'a/{thing}/{key}' (declare it under 'identity:' or use {key} (samples) or {name} (event, command, action, config))",
  ]);
  const auth = errorsOf(
    dialect(
      'z',
      'dialect: z\nidentity: [deviceId]\ntopics:\n  - { name: a, topic: "a/{deviceId}", up: state }\nauth:\n  north:\n    - { scheme: k, password: "{apiKey}" }\n',
    ),
  );
  assert.deepEqual(auth, [
    "mappings/dialects/z.yaml:7:30: unknown variable {apiKey} (declare it under 'identity:')",
  ]);
});

test('every error of every file is reported together', () => {
  const e = errorsOf(
    dialect(
      'a',
      'dialect: a\ntopics:\n  - name: r\n    topic: "x/{key}"\n    up: samples\n  - name: s\n    topic: "x/y"\n    up: samples\n    key: y\n',
    ),
    dialect(
      'b',
      'dialect: b\ntopics:\n  - name: r\n    topic: "x/{name...}"\n    join: "_"\n    up: event\n    down: event\n',
    ),
    {
      path: 'mappings/routes/r.yaml',
      folder: 'routes',
      text: 'route: r\nsouth: a\nnorth: nowhere\nprefer: { samples: all }\n',
    },
  );
  assert.deepEqual(e, [
    "mappings/dialects/a.yaml:7:12: rule 's' (up) can never match: rule 'r' above matches every topic it does (put the more specific rule first)",
    "mappings/dialects/b.yaml:5:11: a rule both ways cannot join a multi-level capture (an uplink keeps the levels, a downlink joins them) (split the rule: 'up' with join, 'down' with join of its own)",
    "mappings/routes/r.yaml:4:20: 'prefer.samples' must be one of: one_per_key, one_list",
  ]);
});

test('a route naming an unknown dialect is reported with the known ones', () => {
  const e = loadMappings([
    ...shippedMappings(),
    {
      path: 'mappings/routes/x.yaml',
      folder: 'routes',
      text: 'route: x\nsouth: connector\nnorth: thingsboard\n',
    },
  ]).errors;
  assert.deepEqual(e, [
    "mappings/routes/x.yaml:3:8: unknown dialect 'thingsboard' (dialects: akenza, clearblade, connector, evrythng, foxtrackr)",
  ]);
});

test('a subscription receiving a kind no rule carries is reported', () => {
  const e = errorsOf(
    dialect(
      'x',
      'dialect: x\ntopics:\n  - { name: a, topic: "a/{key}", up: samples }\nsubscriptions:\n  allowed:\n    - { filter: "a/#", kinds: [command] }\n',
    ),
  );
  assert.deepEqual(e, [
    "mappings/dialects/x.yaml:6:32: no 'down' rule carries kind 'command': this subscription could never receive it",
  ]);
});

test('mistakes that used to load without a word are reported where they are', () => {
  const cases: Array<[string, string, RegExp]> = [
    [
      'a capture typo in an allowed filter',
      'dialect: x\nidentity: [thngId]\ntopics:\n  - { name: a, topic: "t/{thngId}", down: state }\nsubscriptions:\n  allowed:\n    - { filter: "t/{thngId}x", kinds: [state] }\n',
      /x\.yaml:7:17: bad filter 't\/\{thngId\}x': a capture must be a whole level/,
    ],
    [
      'an unknown variable in the gateway errors topic',
      'dialect: x\nidentity: [deviceId]\ntopics:\n  - { name: a, topic: "d/{deviceId}", up: attach }\ngateway:\n  key: "{deviceId}"\n  errors: "/devices/{gatewayID}/errors"\n',
      /x\.yaml:7:11: unknown variable \{gatewayID\}/,
    ],
    [
      'an unknown variable in a JWT claim',
      'dialect: x\nidentity: [deviceId, privateKey]\ntopics:\n  - { name: a, topic: "d/{deviceId}", up: state }\nauth:\n  north:\n    - { scheme: jwt, client_id: "{deviceId}", password: { jwt: { key: privateKey, claims: { sub: "{deviceID}" } } } }\n',
      /x\.yaml:7:\d+: unknown variable \{deviceID\}/,
    ],
    [
      'an unknown variable in an envelope field',
      'dialect: x\nidentity: [deviceId]\ntopics:\n  - name: a\n    topic: "d/{deviceId}/{key}"\n    up: samples\n    payload: { codec: envelope, add: { id: "{deviceID}" } }\n',
      /x\.yaml:7:\d+: unknown variable \{deviceID\}/,
    ],
    [
      'a JWT algorithm that does not exist',
      'dialect: x\nidentity: [deviceId, privateKey]\ntopics:\n  - { name: a, topic: "d/{deviceId}", up: state }\nauth:\n  north:\n    - { scheme: jwt, client_id: "{deviceId}", password: { jwt: { key: privateKey, alg: ES265 } } }\n',
      /x\.yaml:7:\d+: 'auth\.north\.0\.password\.jwt\.alg' must be one of: RS256, ES256, auto/,
    ],
  ];
  for (const [what, text, want] of cases) {
    const e = errorsOf(dialect('x', text));
    assert.ok(
      e.some((l) => want.test(l)),
      `${what}: ${JSON.stringify(e)}`,
    );
  }
});

test('a route mapping a kind onto one the other side does not carry is reported', () => {
  const files = shippedMappings().map((f) =>
    f.path.endsWith('routes/connector-to-akenza.yaml')
      ? { ...f, text: `${f.text}\nkinds:\n  up: { samples: location }\n` }
      : f,
  );
  const e = loadMappings(files).errors;
  assert.ok(
    e.some((l) => /connector-to-akenza\.yaml:\d+:\d+: 'akenza' has no 'up' rule of kind 'location'/.test(l)),
    JSON.stringify(e),
  );
});

test('credentials: unset environment variables are named, never their values', () => {
  const r = parseCredentials(
    'creds.yaml',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the text of a credentials file, ${NAME} is its syntax
    '- south: { token: "t1" }\n  north: { apiKey: "${NOT_SET_FOR_TEST}" }\n',
    {},
  );
  assert.deepEqual(r.errors, [
    'creds.yaml:2:20: environment variable NOT_SET_FOR_TEST not set (export it before starting the proxy)',
  ]);
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the text of a credentials file, ${NAME} is its syntax
  const ok = parseCredentials('creds.yaml', '- south: { token: "t1" }\n  north: { apiKey: "${K}" }\n', {
    K: 'secret-value',
  });
  assert.deepEqual(ok, {
    records: [{ south: { token: 't1' }, north: { apiKey: 'secret-value' } }],
    errors: [],
  });
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the text of a credentials file, ${NAME} is its syntax
  const csv = parseCredentials('creds.csv', 'south.token,north.thngId,north.apiKey\nt1,T1,${K}\nt2,T2\n', {
    K: 'k',
  });
  assert.deepEqual(csv.records, [{ south: { token: 't1' }, north: { thngId: 'T1', apiKey: 'k' } }]);
  assert.deepEqual(csv.errors, ['creds.csv:3:1: 2 cells, the header has 3']);
});

test('credentials: a field named __proto__ is kept alike from CSV, YAML and JSON', () => {
  const fields = (file: string, text: string) =>
    parseCredentials(file, text, {}).records.map((r) => Object.entries(r.south));
  const want = [
    [
      ['__proto__', 'x'],
      ['token', 'tok'],
    ],
  ];
  assert.deepEqual(fields('c.csv', 'south.__proto__,south.token\nx,tok\n'), want);
  assert.deepEqual(fields('c.yaml', '- south: { __proto__: x, token: tok }\n  north: {}\n'), want);
  assert.deepEqual(fields('c.json', '[{"south":{"__proto__":"x","token":"tok"},"north":{}}]'), want);
});

test('credentials as JSON: the same records as YAML; errors still carry their line', () => {
  const list = Array.from({ length: 50 }, (_, i) => ({
    south: { token: `t${i}`, deviceId: `d${i}` },
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the text of a credentials file, ${NAME} is its syntax
    north: { thngId: `T${i}`, apiKey: i === 7 ? '${K}' : `k${i}` },
  }));
  const yaml = list
    .map((r) => `- south: ${JSON.stringify(r.south)}\n  north: ${JSON.stringify(r.north)}\n`)
    .join('');
  const env = { K: 'from-env' };
  const fromYaml = parseCredentials('creds.yaml', yaml, env);
  assert.equal(fromYaml.records.length, 50);
  assert.equal(fromYaml.records[7]?.north.apiKey, 'from-env');
  // A .json file, and a .yaml file that holds JSON (JSON is YAML), give the same records.
  assert.deepEqual(parseCredentials('creds.json', JSON.stringify(list, null, 2), env), fromYaml);
  assert.deepEqual(parseCredentials('creds.yaml', JSON.stringify(list), env), fromYaml);
  // Errors in JSON are found by the YAML reader, with their line and column.
  const text = JSON.stringify(list, null, 1);
  const line = text.split('\n').findIndex((l) => l.includes('"k3"')) + 1;
  const bad = parseCredentials('creds.json', text.replace('"k3"', 'true'), env).errors;
  assert.equal(bad.length, 1);
  assert.match(bad[0] ?? '', new RegExp(`^creds\\.json:${line}:14: '3\\.north\\.apiKey' must be string`));
  const unset = parseCredentials('creds.json', text, {});
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the text of a credentials file, ${NAME} is its syntax
  const at = text.split('\n').findIndex((l) => l.includes('${K}')) + 1;
  assert.equal(unset.records.length, 49);
  assert.deepEqual(unset.errors, [
    `creds.json:${at}:14: environment variable K not set (export it before starting the proxy)`,
  ]);
  const cut = parseCredentials('creds.json', '[{"south": {"token": "t"}', env).errors;
  assert.ok(cut.length > 0);
  for (const e of cut) assert.match(e, /^creds\.json:1:\d+: YAML syntax error: /);
});

test('a pair file overrides a rule for one pair; its errors point into the pair file', async () => {
  const { planFor } = await import('../../src/mapping/load.js');
  const { openTranslator } = await import('../../src/mapping/translator.js');
  const pair = {
    path: 'mappings/pairs/connector-evrythng.yaml',
    folder: 'pairs',
    text: 'south: connector\nnorth: evrythng\noverride:\n  north:\n    property:\n      payload: { codec: value_list, value: v, time: t, unit: s, stamp: true }\n',
  };
  const m = loadMappings([...shippedMappings(), pair]);
  assert.deepEqual(m.errors, []);
  const plan = planFor(m, 'connector', 'evrythng');
  assert.ok(plan);
  const t = openTranslator(
    plan,
    { deviceId: 'd', token: 'x', thngId: 'T', apiKey: 'k' },
    { nowUs: () => 1_700_000_000_000_000 },
  );
  const o = await t.uplink({
    cmd: 'publish',
    topic: '$resource/temp',
    payload: Buffer.from('5'),
    qos: 0,
    retain: false,
    dup: false,
  });
  assert.equal(o.north?.[0]?.payload.toString(), '[{"v":5,"t":1700000000}]');
  // other pairs keep the dialect as written
  const other = planFor(m, 'akenza', 'evrythng');
  assert.ok(other?.north.rules.find((r) => r.name === 'property')?.codec.name === 'value_list');

  const bad = loadMappings([
    ...shippedMappings(),
    {
      ...pair,
      text: 'south: connector\nnorth: evrythng\noverride:\n  north:\n    nothing: { qos: 1 }\n    property:\n      topic: "/thngs/{thing}/p/{key}"\n',
    },
  ]).errors;
  assert.deepEqual(bad, [
    "mappings/pairs/connector-evrythng.yaml:5:5: no topic rule named 'nothing' in dialect 'evrythng'",
  ]);
  const bad2 = loadMappings([
    ...shippedMappings(),
    {
      ...pair,
      text: 'south: connector\nnorth: evrythng\noverride:\n  north:\n    property:\n      topic: "/thngs/{thing}/p/{key}"\n',
    },
  ]).errors;
  assert.equal(bad2.length, 1);
  assert.match(bad2[0] ?? '', /^mappings\/pairs\/connector-evrythng\.yaml:6:14: unknown capture \{thing\}/);
});

test('a route keyed by, or setting, a variable no dialect knows is reported', () => {
  const e = loadMappings([
    ...shippedMappings(),
    {
      path: 'mappings/routes/k.yaml',
      folder: 'routes',
      text: 'route: k\nsouth: connector\nnorth: evrythng\nvars: { colour: red }\nidentity: { key: apiKey }\n',
    },
  ]).errors;
  assert.deepEqual(e, [
    "mappings/routes/k.yaml:5:18: identity key 'apiKey' is not an identity variable of dialect 'connector' (one of: deviceId, token, password)",
    "mappings/routes/k.yaml:4:9: variable 'colour' is used by neither 'connector' nor 'evrythng' (declare it under identity: in a dialect, or remove it)",
  ]);
});

test('a south scheme that proves nothing is reported', () => {
  const e = errorsOf(
    dialect(
      'x',
      'dialect: x\nidentity: [deviceId]\ntopics:\n  - { name: a, topic: "a/{deviceId}", up: state }\nauth:\n  south:\n    - { scheme: open, client_id: "{deviceId}" }\n',
    ),
  );
  assert.deepEqual(e, [
    "mappings/dialects/x.yaml:7:7: scheme 'open' proves nothing (give it a password variable, a common_name or a password: { jwt: ... })",
  ]);
});

test('credentials sharing one block through YAML aliases load; an alias bomb is an error, not a throw', () => {
  const shared = '- south: { token: "t0" }\n  north: &n { apiKey: "shared-key" }\n';
  const rest = Array.from({ length: 199 }, (_, i) => `- south: { token: "t${i + 1}" }\n  north: *n\n`).join(
    '',
  );
  const ok = parseCredentials('creds.yaml', shared + rest, {});
  assert.deepEqual(ok.errors, []);
  assert.equal(ok.records.length, 200);
  assert.equal(ok.records[199]?.north.apiKey, 'shared-key');
  // Nested aliases that would expand exponentially ("billion laughs").
  const levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < 9; i++) {
    const prev = String.fromCharCode(96 + i);
    const name = String.fromCharCode(97 + i);
    levels.push(`${name}: &${name} [${Array(10).fill(`*${prev}`).join(',')}]`);
  }
  let bomb: ReturnType<typeof parseCredentials> | undefined;
  assert.doesNotThrow(() => {
    bomb = parseCredentials('bomb.yaml', `${levels.join('\n')}\n`, {});
  });
  assert.equal(bomb?.records.length, 0);
  assert.match(bomb?.errors[0] ?? '', /^bomb\.yaml:1:1: YAML: .*alias/i);
});
