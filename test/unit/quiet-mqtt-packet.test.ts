/**
 * The proxy's packet channel uses a copy of mqtt-packet whose loggers are no-ops when DEBUG
 * leaves them disabled (their per-packet `debug()` calls cost CPU even when off), while
 * DEBUG=mqtt-packet:* still shows its logs and every other user of mqtt-packet or debug keeps
 * the real ones. Each case runs in a fresh node process: a PacketChannel over a loop-back
 * stream writes and reads a PINGREQ after every logger was turned on at run time (real
 * loggers would now print, no-ops do not), then the shared mqtt-packet parses one too.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const channel = join(import.meta.dirname, '..', '..', 'src', 'codec', 'channel.ts');

const script = `
import { createRequire } from 'node:module';
import { PassThrough } from 'node:stream';
const { PacketChannel } = await import(${JSON.stringify(channel)});
const require = createRequire(import.meta.url);
const debug = require(require.resolve('debug', { paths: [require.resolve('mqtt-packet')] }));
debug.enable('*');
await new Promise((resolve) => {
  const ch = new PacketChannel(
    new PassThrough(),
    { onPacket: (p) => { console.log('channel read', p.cmd); resolve(); }, onClose() {}, onDrain() {} },
    { maxPacketBytes: 1024, protocolVersion: 4 },
  );
  ch.write({ cmd: 'pingreq' });
});
console.error('--- shared mqtt-packet ---');
const shared = require('mqtt-packet');
shared.parser({ protocolVersion: 4 }).parse(shared.generate({ cmd: 'pingreq' }));
`;

function run(debugEnv: string): { channel: string; shared: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, DEBUG: debugEnv, DEBUG_COLORS: 'no' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /channel read pingreq/);
  const [channel = '', shared = ''] = r.stderr.split('--- shared mqtt-packet ---');
  return { channel, shared };
}

test('DEBUG unset: the channel parses and writes without mqtt-packet logging; the shared copy logs', () => {
  const out = run('');
  assert.doesNotMatch(out.channel, /mqtt-packet:/);
  assert.match(out.shared, /mqtt-packet:parser /);
  assert.match(out.shared, /mqtt-packet:writeToStream /);
});

test('DEBUG=mqtt-packet:*: the channel logs through mqtt-packet as before', () => {
  const out = run('mqtt-packet:*');
  assert.match(out.channel, /mqtt-packet:writeToStream generate called/);
  assert.match(out.channel, /mqtt-packet:parser .*_parseHeader/);
});
