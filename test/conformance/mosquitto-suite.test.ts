/**
 * Conformance: mosquitto's own broker test suite (a suite this project did not write; see
 * README.md here) gives the same results through the proxy in pass-through to mosquitto as
 * against mosquitto directly: the same tests pass and the same tests fail.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureSuite, prepareTree, runTests, selectTests, startController, type TestRun } from './suite.js';

describe('conformance: mosquitto broker test suite through the proxy', () => {
  let tree: { brokerDir: string; cleanup(): void };
  let tests: string[];
  let ctlDir: string;
  const runs: Partial<Record<'direct' | 'proxy', TestRun[]>> = {};

  before(() => {
    tree = prepareTree(ensureSuite());
    tests = selectTests(tree.brokerDir);
    if (process.env.MQTT_PROXY_CONFORMANCE_ONLY) {
      const only = new RegExp(process.env.MQTT_PROXY_CONFORMANCE_ONLY);
      tests = tests.filter((t) => only.test(t));
    }
    ctlDir = mkdtempSync(join(tmpdir(), 'mqtt-proxy-ctl-'));
  });
  after(() => {
    tree?.cleanup();
    if (ctlDir) rmSync(ctlDir, { recursive: true, force: true });
  });

  for (const mode of ['direct', 'proxy'] as const) {
    const target = mode === 'direct' ? 'mosquitto directly' : 'the proxy in front of mosquitto';
    it(`runs the suite against ${target}`, { timeout: 400_000 }, async () => {
      const ctl = await startController(mode, ctlDir);
      try {
        runs[mode] = await runTests(tree.brokerDir, tests, ctl, 3);
      } finally {
        await ctl.close();
      }
      assert.equal(runs[mode]?.length, tests.length);
      if (mode === 'direct') {
        // The suite really ran: mosquitto passes its own tests.
        const passed = runs.direct?.filter((r) => r.passed).length ?? 0;
        assert.ok(tests.length >= 40, `only ${tests.length} tests selected`);
        assert.ok(
          passed >= tests.length * 0.8,
          `mosquitto passed only ${passed} of ${tests.length} of its own tests`,
        );
      }
    });
  }

  it('passes and fails the same tests through the proxy as directly', () => {
    assert.ok(runs.direct && runs.proxy, 'both runs completed');
    const direct = new Map(runs.direct.map((r) => [r.name, r]));
    const differences = runs.proxy
      .filter((p) => direct.get(p.name)?.passed !== p.passed)
      .map(
        (p) =>
          `${p.name}: direct ${direct.get(p.name)?.passed ? 'pass' : 'fail'}, proxy ${p.passed ? 'pass' : 'fail'}\n${p.output.slice(-1500)}`,
      );
    assert.equal(
      differences.length,
      0,
      `${differences.length} of ${tests.length} differ:\n${differences.join('\n---\n')}`,
    );
  });
});
