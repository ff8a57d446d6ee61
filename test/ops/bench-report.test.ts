/**
 * The benchmark report's device medians: the first round is a cold hop's rate, the later
 * rounds the reconnect rate, and memory per device comes only from the rounds that read the
 * JS heap (BENCHMARKS.md finding 18), whatever the other rounds' RSS says.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { medians, type Results } from '../../bench/lib/report.js';
import type { DevicesSample } from '../../bench/lib/scenarios.js';

function round(connectsPerSec: number, rss: number, heap: number): DevicesSample {
  return {
    devices: 8000,
    failed: 0,
    firstError: '',
    connectsPerSec,
    hopUsPerConnect: 1e6 / connectsPerSec,
    brokerUsPerConnect: 80,
    genUsPerConnect: 150,
    hopCoreShare: 1,
    foreignCpuShare: 0.02,
    machineCpuShare: 0.9,
    // As `devices` reports a round: RSS growth, or the JS heap + external growth when larger.
    hopBytesPerDevice: Number.isFinite(heap) ? Math.max(rss, heap) : rss,
    rssBytesPerDevice: rss,
    heapBytesPerDevice: heap,
    externalBytesPerDevice: Number.isFinite(heap) ? 70 : Number.NaN,
  };
}

/** The devices medians of one path's rounds, in order. */
const devicesOf = (rounds: DevicesSample[]) => {
  const r: Results = { throughput: {}, latency: {}, devices: { proxy: rounds } };
  const d = medians(r).devices.proxy;
  assert.ok(d);
  return d;
};

/** A first round and the last read the heap; the middle one (RSS only, no forced GC) did not. */
const ROUNDS = [round(2000, 9000, 5000), round(3000, 500, Number.NaN), round(3400, 9500, 5200)];

test('the first round is the cold rate, the later rounds the reconnect rate', () => {
  const d = devicesOf(ROUNDS);
  assert.equal(d.firstConnectsPerSec, 2000);
  assert.equal(d.firstHopUsPerConnect, 500);
  assert.equal(d.connectsPerSec, 3200);
});

test('memory per device comes from the rounds that read the heap, not a round with RSS alone', () => {
  // A hop keeps the pages it grew to, so the middle round's RSS growth reads low and must not
  // pull the median down.
  const d = devicesOf(ROUNDS);
  assert.equal(d.hopBytesPerDevice, 9250);
  assert.equal(d.rssBytesPerDevice, 9250);
  assert.equal(d.heapBytesPerDevice, 5100);
});

test('a hop without a JS heap (no round read one) takes its memory from every round', () => {
  const d = devicesOf([
    round(2000, 9000, Number.NaN),
    round(3000, 8000, Number.NaN),
    round(3400, 7000, Number.NaN),
  ]);
  assert.equal(d.hopBytesPerDevice, 8000);
  assert.ok(Number.isNaN(d.heapBytesPerDevice));
});
