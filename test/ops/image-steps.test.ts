/**
 * What the container image does, without a Docker engine: the npm commands of the
 * Dockerfile's build and runtime stages run in a temp dir laid out like /app (package files,
 * src and tsconfig for the build; dist from the build plus mappings for the runtime), then
 * the compiled CLI starts from there, configured by environment alone, and answers
 * /healthz, /readyz, the image's own HEALTHCHECK command, MQTT traffic and SIGTERM.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DockerfileParser } from 'dockerfile-ast';
import {
  closeAll,
  connectClient,
  type MqttClient,
  nextMessage,
  publish,
  subscribe,
} from '../helpers/clients.js';
import { trackDir } from '../helpers/reaper.js';
import { type CliProxy, exitWithin, httpText, startCli } from './cli-process.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tmp = trackDir(mkdtempSync(join(tmpdir(), 'mdp-image-')));
after(() => rmSync(tmp, { recursive: true, force: true }));

const dockerfile = DockerfileParser.parse(readFileSync(join(root, 'Dockerfile'), 'utf8'));
const froms = dockerfile.getFROMs();
const runtimeLine = froms[froms.length - 1]!.getRange().start.line;

/** The npm commands of a stage's RUN instructions (cache cleaning left out: it is the machine's cache). */
function npmCommands(stage: 'build' | 'runtime'): string[][] {
  return dockerfile
    .getInstructions()
    .filter(
      (i) => i.getKeyword() === 'RUN' && i.getRange().start.line >= runtimeLine === (stage === 'runtime'),
    )
    .flatMap((i) => (i.getArgumentsContent() ?? '').replace(/\\\n/g, ' ').split('&&'))
    .map((c) => c.trim().split(/\s+/))
    .filter((c) => c[0] === 'npm' && c[1] !== 'cache');
}

function sh(cmd: string[], cwd: string, timeoutMs: number): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd[0] as string,
      cmd.slice(1),
      {
        cwd,
        timeout: timeoutMs,
        maxBuffer: 16 * 1024 * 1024,
        env: { ...process.env, npm_config_prefer_offline: 'true' },
      },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` });
      },
    );
  });
}

/** The HEALTHCHECK command of the image, as an argv. */
function healthcheckArgv(): string[] {
  const hc = dockerfile.getInstructions().find((i) => i.getKeyword() === 'HEALTHCHECK')!;
  const content = hc.getArgumentsContent() ?? '';
  return JSON.parse(content.slice(content.indexOf('['))) as string[];
}

test('the image build and runtime steps produce a working proxy', { timeout: 300_000 }, async () => {
  // Build stage: /app with package files, tsconfig and src; its npm commands.
  const build = join(tmp, 'build');
  mkdirSync(build);
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) {
    cpSync(join(root, f), join(build, f));
  }
  cpSync(join(root, 'src'), join(build, 'src'), { recursive: true });
  const buildCmds = npmCommands('build');
  assert.ok(buildCmds.some((c) => c.join(' ') === 'npm run build'));
  for (const cmd of buildCmds) {
    const r = await sh(cmd, build, 240_000);
    assert.equal(r.code, 0, `build stage: ${cmd.join(' ')} failed:\n${r.out.slice(-3000)}`);
  }
  assert.ok(existsSync(join(build, 'dist/cli/main.js')), 'npm run build wrote dist/cli/main.js');

  // Runtime stage: package files, production install, then dist from the build and mappings.
  const app = join(tmp, 'app');
  mkdirSync(join(app, 'data'), { recursive: true });
  for (const f of ['package.json', 'package-lock.json']) cpSync(join(root, f), join(app, f));
  const runtimeCmds = npmCommands('runtime');
  assert.ok(runtimeCmds.some((c) => c[1] === 'ci' && c.includes('--omit=dev')));
  for (const cmd of runtimeCmds) {
    const r = await sh(cmd, app, 240_000);
    assert.equal(r.code, 0, `runtime stage: ${cmd.join(' ')} failed:\n${r.out.slice(-3000)}`);
  }
  cpSync(join(build, 'dist'), join(app, 'dist'), { recursive: true });
  cpSync(join(root, 'mappings'), join(app, 'mappings'), { recursive: true });

  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  for (const dep of Object.keys(pkg.dependencies)) {
    assert.ok(
      existsSync(join(app, 'node_modules', dep, 'package.json')),
      `production dependency ${dep} installed`,
    );
  }
  // Packages the lock marks dev-only (typescript, tsx, biome, test tools) stay out of the image.
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean }>;
  };
  const devOnly = Object.entries(lock.packages).filter(([path, p]) => path && p.dev);
  assert.ok(devOnly.some(([path]) => path === 'node_modules/typescript'));
  for (const [path] of devOnly)
    assert.ok(!existsSync(join(app, path)), `dev-only ${path} must not be in the image`);

  // Start the compiled CLI as the image's ENTRYPOINT does, configured by environment alone.
  let proxy: CliProxy | undefined;
  const clients: MqttClient[] = [];
  try {
    proxy = await startCli({
      cwd: app,
      command: [process.execPath, 'dist/cli/main.js'],
      args: [],
      env: {
        NODE_ENV: 'production',
        MQTT_PROXY_LOG_FORMAT: 'json',
        MQTT_PROXY_MAPPINGS_DIR: join(app, 'mappings'),
        MQTT_PROXY_STORE_FILE: join(app, 'data/store.json'),
        MQTT_PROXY_HOST: '127.0.0.1',
        MQTT_PROXY_TCP_PORT: '0',
        MQTT_PROXY_WS_PORT: '0',
        MQTT_PROXY_TLS_PORT: '-1',
        MQTT_PROXY_WSS_PORT: '-1',
        MQTT_PROXY_METRICS_HOST: '127.0.0.1',
        MQTT_PROXY_METRICS_PORT: '0',
      },
    });
    const metrics = `http://127.0.0.1:${proxy.ports.metrics}`;
    assert.equal((await httpText(`${metrics}/healthz`)).status, 200);
    let ready = await httpText(`${metrics}/readyz`);
    for (let i = 0; i < 100 && ready.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      ready = await httpText(`${metrics}/readyz`);
    }
    assert.equal(ready.status, 200, ready.body);
    assert.deepEqual(JSON.parse(ready.body).checks, { listeners: true, mappings: true, north: true });

    const [node, ...hcArgs] = healthcheckArgv();
    assert.equal(node, 'node');
    const hcEnv = { MQTT_PROXY_METRICS_PORT: String(proxy.ports.metrics) };
    const healthy = await sh([process.execPath, ...hcArgs], app, 10_000).then((r) => r.code);
    assert.notEqual(healthy, 0, 'the HEALTHCHECK fails against the default port, where nothing listens');
    const hc = await new Promise<number>((resolve) => {
      execFile(
        process.execPath,
        hcArgs,
        { cwd: app, timeout: 10_000, env: { ...process.env, ...hcEnv } },
        (err) => resolve(err ? 1 : 0),
      );
    });
    assert.equal(hc, 0, 'the image HEALTHCHECK passes against the running proxy');
    const hcWith = (env: Record<string, string>): Promise<number> =>
      new Promise<number>((resolve) => {
        execFile(
          process.execPath,
          hcArgs,
          { cwd: app, timeout: 10_000, env: { ...process.env, ...hcEnv, ...env } },
          (err) => resolve(err ? 1 : 0),
        );
      });
    // The metrics host is asked (127.0.0.2 is loopback, but the proxy listens on 127.0.0.1 only);
    // an address meaning "every address" is asked on loopback; no metrics port, nothing to ask.
    assert.equal(
      await hcWith({ MQTT_PROXY_METRICS_HOST: '127.0.0.2' }),
      1,
      'the configured metrics host is asked',
    );
    assert.equal(await hcWith({ MQTT_PROXY_METRICS_HOST: '0.0.0.0' }), 0, '0.0.0.0 is asked on loopback');
    assert.equal(await hcWith({ MQTT_PROXY_METRICS_PORT: '-1' }), 0, 'metrics off: the check passes');

    // MQTT through the built proxy (embedded north broker: no MQTT_PROXY_NORTH_URL).
    const url = `mqtt://127.0.0.1:${proxy.ports.tcp}`;
    const sub = await connectClient(url, { clientId: 'img-sub' });
    const pub = await connectClient(url, { clientId: 'img-pub' });
    clients.push(sub, pub);
    await subscribe(sub, 'img/#', { qos: 1 });
    const got = nextMessage(sub, 'img/#', 5000);
    await publish(pub, 'img/1', 'from the image', { qos: 1 });
    assert.equal((await got).payload.toString(), 'from the image');
    await closeAll(clients);

    proxy.child.kill('SIGTERM');
    assert.equal(await exitWithin(proxy, 20_000), 0);
  } finally {
    await closeAll(clients);
    await proxy?.kill();
  }
});
