import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger, REDACT_PATHS } from '../../src/log/logger.js';

const SECRET_FIELDS = ['password', 'token', 'apiKey', 'jwt', 'secret', 'authorization', 'key', 'privateKey'];

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  const log = createLogger({ level: 'trace', format: 'json', destination });
  return { log, lines };
}

test('every secret field name is redacted at the top level and one level down', () => {
  for (const f of SECRET_FIELDS) {
    assert.ok(REDACT_PATHS.includes(f), `${f} missing from REDACT_PATHS`);
    assert.ok(REDACT_PATHS.includes(`*.${f}`), `*.${f} missing from REDACT_PATHS`);
  }
  const { log, lines } = capture();
  const secrets: string[] = [];
  for (const f of SECRET_FIELDS) {
    const top = `top-${f}-S3cr3tValue`;
    const nested = `nested-${f}-S3cr3tValue`;
    secrets.push(top, nested);
    log.info({ [f]: top, connect: { [f]: nested, clientId: 'visible-client' } }, 'event for %s', f);
  }
  assert.equal(lines.length, SECRET_FIELDS.length);
  const all = lines.join('\n');
  for (const s of secrets) assert.ok(!all.includes(s), `secret ${s} appears in the log`);
  for (const [i, line] of lines.entries()) {
    const rec = JSON.parse(line) as Record<string, unknown> & { connect: Record<string, unknown> };
    const f = SECRET_FIELDS[i] as string;
    assert.equal(rec[f], '[redacted]');
    assert.equal(rec.connect[f], '[redacted]');
    assert.equal(rec.connect['clientId'], 'visible-client', 'non-secret fields stay readable');
    assert.equal(rec['service'], 'mqtt-dialect-proxy');
    assert.equal(rec['level'], 30);
  }
});

test('HTTP authorization headers (native WebSocket API keys) are redacted', () => {
  const { log, lines } = capture();
  log.warn({ req: { headers: { authorization: 'Bearer evt-ApiKey-123', host: 'h' } } }, 'ws upgrade refused');
  log.warn({ headers: { authorization: 'plain-ApiKey-456' } }, 'ws upgrade refused');
  const all = lines.join('\n');
  assert.ok(!all.includes('evt-ApiKey-123'));
  assert.ok(!all.includes('plain-ApiKey-456'));
  const first = JSON.parse(lines[0] as string) as { req: { headers: Record<string, string> } };
  assert.equal(first.req.headers['authorization'], '[redacted]');
  assert.equal(first.req.headers['host'], 'h');
});

test('redaction applies to child loggers and at every level', () => {
  const { log, lines } = capture();
  const child = log.child({ session: 'abc', token: 'child-binding-T0ken' });
  for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const) {
    child[level]({ password: `pw-at-${level}` }, 'm');
  }
  assert.equal(lines.length, 6);
  const all = lines.join('\n');
  assert.ok(!all.includes('child-binding-T0ken'));
  assert.ok(!/pw-at-/.test(all));
  assert.ok(all.includes('"session":"abc"'));
});
