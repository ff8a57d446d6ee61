/**
 * Loading and hot reload of a route from disk: a valid change is swapped in for new
 * sessions, an invalid one keeps the old version and logs every error; the proxy refuses
 * to start on an invalid mapping with a MappingError carrying the formatted list.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import type { IConnectPacket } from 'mqtt-packet';
import type { RouteHandler } from '../../src/core/contract.js';
import { createLogger } from '../../src/log/logger.js';
import { loadRoute, MappingError } from '../../src/routes/index.js';
import { MAPPINGS_DIR } from './shipped.js';

const TOKEN = 'tok-0123456789abcdef0123';
const connect: IConnectPacket = {
  cmd: 'connect',
  protocolVersion: 4,
  clientId: '12345',
  username: '12345',
  password: Buffer.from(TOKEN),
  keepalive: 60,
  clean: true,
};

let dir = '';
let creds = '';

/** The credentials file with the one device mapped to Thng `thngId`. */
const credsFor = (thngId: string): Promise<void> =>
  writeFile(
    creds,
    `- south: { deviceId: "12345", token: "${TOKEN}" }\n  north: { thngId: ${thngId}, apiKey: k }\n`,
  );
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mdp-reload-'));
  await cp(MAPPINGS_DIR, join(dir, 'mappings'), { recursive: true });
  creds = join(dir, 'creds.yaml');
  await credsFor('UOLD');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function logSink() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { log: createLogger({ level: 'info', format: 'json', destination: sink }), lines };
}

/** The north topic a `$resource/t` publish gets in a new session of the route. */
async function northTopic(h: RouteHandler): Promise<string | undefined> {
  const d = await h.openSession({ connect, listener: 'tcp' });
  assert.ok(d.accept, 'session accepted');
  const o = await d.mapper.uplink({
    cmd: 'publish',
    topic: '$resource/t',
    payload: Buffer.from('1'),
    qos: 0,
    retain: false,
    dup: false,
  });
  d.mapper.close();
  return o.north?.[0]?.topic;
}

test('a valid change is swapped in; an invalid one keeps the old version and logs every error', async () => {
  const { log, lines } = logSink();
  const route = await loadRoute({
    dir: join(dir, 'mappings'),
    route: 'connector-to-evrythng',
    credentials: creds,
    log,
    watch: false,
  });
  let good = '';
  try {
    assert.equal(await northTopic(route.handler), '/thngs/UOLD/properties/t');
    await credsFor('UNEW');
    assert.deepEqual(await route.reload(), { ok: true, errors: [] });
    assert.equal(await northTopic(route.handler), '/thngs/UNEW/properties/t');

    const evt = join(dir, 'mappings', 'dialects', 'evrythng.yaml');
    good = await readFile(evt, 'utf8');
    await writeFile(
      evt,
      good
        .replace('  - name: property\n', '  - name: property\n    colour: red\n')
        .replace('"/thngs/{thngId}/properties"', '"/thngs/{thing}/properties"'),
    );
    const r = await route.reload();
    assert.equal(r.ok, false);
    assert.equal(r.errors.length, 2, r.errors.join('\n'));
    assert.match(r.errors[0] ?? '', /evrythng\.yaml:\d+:\d+: unknown key 'colour'/);
    assert.match(r.errors[1] ?? '', /evrythng\.yaml:\d+:\d+: unknown capture \{thing\}/);
    assert.equal(
      await northTopic(route.handler),
      '/thngs/UNEW/properties/t',
      'the previous version still serves',
    );
    const logged = lines.join('');
    assert.ok(
      logged.includes("unknown key 'colour'") && logged.includes('unknown capture {thing}'),
      'every error is logged',
    );
  } finally {
    route.close();
    if (good) await writeFile(join(dir, 'mappings', 'dialects', 'evrythng.yaml'), good);
  }
});

test('with watching on, a changed credentials file is picked up without a reload call', async () => {
  const { log } = logSink();
  await credsFor('UW1');
  const route = await loadRoute({
    dir: join(dir, 'mappings'),
    route: 'connector-to-evrythng',
    credentials: creds,
    log,
  });
  try {
    assert.equal(await northTopic(route.handler), '/thngs/UW1/properties/t');
    await credsFor('UW2');
    let topic: string | undefined;
    for (let i = 0; i < 50 && topic !== '/thngs/UW2/properties/t'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      topic = await northTopic(route.handler);
    }
    assert.equal(topic, '/thngs/UW2/properties/t');
  } finally {
    route.close();
  }
});

test('a route closed while a reload runs stays closed: no new version, no watcher', async () => {
  const { log } = logSink();
  await credsFor('UC1');
  const route = await loadRoute({
    dir: join(dir, 'mappings'),
    route: 'connector-to-evrythng',
    credentials: creds,
    log,
  });
  await credsFor('UC2');
  const running = route.reload();
  route.close();
  assert.equal((await running).ok, false, 'the reload that finished after close was not applied');
  assert.equal(await northTopic(route.handler), '/thngs/UC1/properties/t');
  // Were a watcher made again, this change would be swapped in within the debounce (150 ms).
  await credsFor('UC3');
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(await northTopic(route.handler), '/thngs/UC1/properties/t');
});

test('an invalid mapping refuses to load with a MappingError listing every error', async () => {
  const bad = join(dir, 'bad');
  await cp(join(dir, 'mappings'), bad, { recursive: true });
  await writeFile(
    join(bad, 'dialects', 'connector.yaml'),
    'dialect: connector\ntopics:\n  - name: r\n    topic: "$resource/{key"\n    up: samples\n',
  );
  const { log } = logSink();
  await assert.rejects(
    loadRoute({ dir: bad, route: 'connector-to-evrythng', credentials: creds, log, watch: false }),
    (e: unknown) => {
      assert.ok(e instanceof MappingError);
      assert.equal(e.code, 'MDP_ERR_MAPPING');
      assert.ok(
        e.errors.some(
          (l) =>
            l ===
            `${join(bad, 'dialects', 'connector.yaml')}:4:12: bad topic template: malformed capture '{key': a capture is a whole level, {name} or {name...}`,
        ),
        e.errors.join('\n'),
      );
      return true;
    },
  );
  await assert.rejects(
    loadRoute({ dir: join(dir, 'mappings'), route: 'no-such-route', log, watch: false }),
    /no route named 'no-such-route'/,
  );
});
