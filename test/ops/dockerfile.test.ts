/**
 * The Dockerfile checked without a Docker engine: the dockerfile-utils linter (every check
 * raised to error) must find nothing, and explicit rules are asserted on the parsed file.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { DockerfileParser } from 'dockerfile-ast';
import { ValidationSeverity, validate } from 'dockerfile-utils';

const root = new URL('../../', import.meta.url);
const text = readFileSync(new URL('Dockerfile', root), 'utf8');
const dockerfile = DockerfileParser.parse(text);
const stages = dockerfile.getFROMs();
const runtimeStart = stages[stages.length - 1]?.getRange().start.line ?? 0;
const runtime = dockerfile.getInstructions().filter((i) => i.getRange().start.line >= runtimeStart);
const args = (i: { getArguments(): Array<{ getValue(): string }> }) =>
  i.getArguments().map((a) => a.getValue());
/** COPY flags as name=value (`from=build`). */
const flags = (i: unknown): string[] =>
  (i as { getFlags(): Array<{ getName(): string; getValue(): string | null }> })
    .getFlags()
    .map((f) => `${f.getName()}=${f.getValue() ?? ''}`);

test('the dockerfile-utils linter reports nothing, with every check as an error', () => {
  const E = ValidationSeverity.ERROR;
  const problems = validate(text, {
    deprecatedMaintainer: E,
    directiveCasing: E,
    emptyContinuationLine: E,
    instructionCasing: E,
    instructionCmdMultiple: E,
    instructionEntrypointMultiple: E,
    instructionHealthcheckMultiple: E,
    instructionJSONInSingleQuotes: E,
    instructionWorkdirRelative: E,
  });
  assert.deepEqual(
    problems.map((p) => `line ${p.range.start.line + 1}: ${p.message}`),
    [],
  );
});

test('the linter is live: it flags a broken Dockerfile', () => {
  const problems = validate('FROM node:20-slim\nEXPOSE notaport\nWORKDIR app\n', {
    instructionWorkdirRelative: ValidationSeverity.ERROR,
  });
  assert.ok(problems.length >= 2);
});

test('multi-stage: a build stage installs all dependencies and runs npm run build, the runtime stage is small and pinned', () => {
  assert.ok(stages.length >= 2, 'at least two stages');
  const build = stages[0]!;
  assert.equal(build.getBuildStage(), 'build');
  for (const from of stages) {
    assert.match(from.getImageName() ?? '', /^node$/);
    assert.match(
      from.getImageTag() ?? '',
      /^20(\.\d+)*-(slim|alpine)/,
      'node 20 slim or alpine, never latest',
    );
  }
  const buildRuns = dockerfile
    .getInstructions()
    .filter((i) => i.getKeyword() === 'RUN' && i.getRange().start.line < runtimeStart)
    .map((i) => i.getArgumentsContent() ?? '');
  assert.ok(
    buildRuns.some((r) => /\bnpm (ci|install)\b/.test(r) && !/--omit=dev/.test(r)),
    'build installs dev dependencies',
  );
  assert.ok(buildRuns.some((r) => /\bnpm run build\b/.test(r)));
});

test('runtime stage: production dependencies only, dist and mappings copied, nothing else from the build', () => {
  const runs = runtime.filter((i) => i.getKeyword() === 'RUN').map((i) => i.getArgumentsContent() ?? '');
  assert.ok(
    runs.some((r) => /\bnpm ci\b[^&]*--omit=dev/.test(r)),
    'npm ci --omit=dev',
  );
  assert.ok(!runs.some((r) => /npm run build|\btsc\b/.test(r)), 'no compiling at runtime');
  const copies = runtime.filter((i) => i.getKeyword() === 'COPY').map((i) => [...flags(i), ...args(i)]);
  const fromBuild = copies.filter((c) => c[0] === 'from=build');
  assert.deepEqual(
    fromBuild,
    [['from=build', '/app/dist', './dist']],
    'only dist comes from the build stage',
  );
  assert.ok(
    copies.some((c) => c[0] === 'mappings'),
    'mappings copied',
  );
  assert.ok(!runtime.some((i) => i.getKeyword() === 'ADD'), 'COPY, never ADD');
});

test('runs as a non-root user, with an exec-form entrypoint of the compiled CLI', () => {
  const users = runtime.filter((i) => i.getKeyword() === 'USER').map((i) => args(i)[0]);
  assert.ok(users.length > 0, 'USER in the runtime stage');
  assert.ok(!['root', '0', '0:0'].includes(users[users.length - 1] ?? 'root'));
  const entry = runtime.filter((i) => i.getKeyword() === 'ENTRYPOINT');
  assert.equal(entry.length, 1);
  assert.deepEqual(JSON.parse(entry[0]!.getArgumentsContent() ?? ''), ['node', 'dist/cli/main.js']);
  const stop = runtime.find((i) => i.getKeyword() === 'STOPSIGNAL');
  assert.equal(stop && args(stop)[0], 'SIGTERM');
});

test('HEALTHCHECK fetches /healthz with node (no curl or wget in slim images)', () => {
  const hc = runtime.filter((i) => i.getKeyword() === 'HEALTHCHECK');
  assert.equal(hc.length, 1);
  const content = hc[0]!.getArgumentsContent() ?? '';
  assert.match(content, /CMD \["node", "-e", /);
  assert.match(content, /\/healthz/);
  assert.doesNotMatch(text, /\b(curl|wget)\b/);
  // The exact script the container runs must be valid JavaScript.
  const cmd = JSON.parse(content.slice(content.indexOf('['))) as string[];
  assert.doesNotThrow(() => new Function(cmd[2] as string));
});

test('configured by environment alone: only MQTT_PROXY_* and NODE_ENV, no secrets baked in', () => {
  const envText = runtime
    .filter((i) => i.getKeyword() === 'ENV')
    .map((i) => i.getArgumentsContent() ?? '')
    .join(' ');
  const names = [...envText.matchAll(/([A-Z_][A-Z0-9_]*)=/g)].map((m) => m[1]);
  assert.ok(names.length > 0);
  for (const n of names) assert.match(n ?? '', /^(NODE_ENV|MQTT_PROXY_[A-Z0-9_]+)$/);
  assert.doesNotMatch(envText, /PASSWORD|SECRET|TOKEN|KEY=|REDIS_URL/);
  const exposed = runtime.filter((i) => i.getKeyword() === 'EXPOSE').flatMap((i) => args(i));
  assert.deepEqual(exposed.sort(), ['1883', '8080', '8443', '8883', '9464']);
});

test('every file the build copies exists and is not excluded by .dockerignore', () => {
  const ignored = readFileSync(new URL('.dockerignore', root), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const copy of dockerfile.getInstructions().filter((i) => i.getKeyword() === 'COPY')) {
    if (flags(copy).some((f) => f.startsWith('from='))) continue;
    for (const src of args(copy).slice(0, -1)) {
      assert.ok(existsSync(new URL(src, root)), `${src} is copied but does not exist`);
      assert.ok(!ignored.includes(src), `${src} is copied but .dockerignore excludes it`);
    }
  }
  for (const must of ['node_modules', 'dist', '.git', '.env'])
    assert.ok(ignored.includes(must), `${must} ignored`);
});
