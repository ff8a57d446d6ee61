/**
 * The gateway link's downlink routing index: a topic finds the owner whose filter matches it
 * (MQTT wildcards, empty levels), an owner re-indexed or deleted is found by its new filters
 * only, and the answer is the one a scan of every owner gives.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FilterIndex, topicMatches } from '../../src/upstream/filter-index.js';

const OWNERS: Record<string, string[]> = {
  d1: ['/devices/d1/config', '/devices/d1/commands/#'],
  d2: ['/devices/d2/config', '/devices/d2/commands/#'],
  sensors: ['site/+/temperature'],
  everything: ['#'],
  rootEmpty: ['/#'],
  exact: ['a/b'],
  under: ['a/b/#'],
};

function build(owners: Record<string, string[]>): FilterIndex<string> {
  const index = new FilterIndex<string>();
  for (const [owner, filters] of Object.entries(owners)) index.set(owner, filters);
  return index;
}

const accepts =
  (owners: Record<string, string[]>, topic: string) =>
  (owner: string): boolean =>
    (owners[owner] ?? []).some((f) => topicMatches(f, topic));

describe('FilterIndex', () => {
  const cases: Array<[topic: string, without: string[], expected: string | undefined]> = [
    ['/devices/d1/config', ['everything', 'rootEmpty'], 'd1'],
    ['/devices/d2/commands', ['everything', 'rootEmpty'], 'd2'],
    ['/devices/d2/commands/reboot/now', ['everything', 'rootEmpty'], 'd2'],
    ['/devices/d3/config', ['everything', 'rootEmpty'], undefined],
    ['/devices/d3/config', ['everything'], 'rootEmpty'],
    ['site/north/temperature', ['everything'], 'sensors'],
    ['site/north/humidity', ['everything'], undefined],
    ['a/b', ['everything'], 'exact'],
    ['a/b', ['everything', 'exact'], 'under'],
    ['a/b/c', ['everything'], 'under'],
    ['a', ['everything'], undefined],
    ['x/y', [], 'everything'],
  ];
  for (const [topic, without, expected] of cases) {
    it(`routes ${topic} to ${expected ?? 'no one'}${without.length ? ` (without ${without.join(', ')})` : ''}`, () => {
      const owners = Object.fromEntries(Object.entries(OWNERS).filter(([o]) => !without.includes(o)));
      const found = build(owners).find(topic, accepts(owners, topic));
      assert.equal(found, expected);
      // The same answer as a scan of every owner, when exactly one owner matches.
      const scan = Object.keys(owners).filter((o) => accepts(owners, topic)(o));
      if (scan.length <= 1) assert.equal(found, scan[0]);
    });
  }

  it('finds an owner by its new filters only once re-indexed, and no one once deleted', () => {
    const owners: Record<string, string[]> = { d1: ['/devices/d1/config'] };
    const index = build(owners);
    owners.d1 = ['/devices/d1/commands/#'];
    index.set('d1', owners.d1);
    assert.equal(index.find('/devices/d1/config', accepts(owners, '/devices/d1/config')), undefined);
    assert.equal(index.find('/devices/d1/commands/x', accepts(owners, '/devices/d1/commands/x')), 'd1');
    index.delete('d1');
    assert.equal(index.has('d1'), false);
    assert.equal(index.size, 0);
    assert.equal(
      index.find('/devices/d1/commands/x', () => true),
      undefined,
    );
  });

  it('asks only the owners a prefix of the topic names', () => {
    const index = new FilterIndex<number>();
    for (let i = 0; i < 1000; i++) index.set(i, [`/devices/d${i}/config`, `/devices/d${i}/commands/#`]);
    const asked: number[] = [];
    const found = index.find('/devices/d777/commands/reboot', (o) => {
      asked.push(o);
      return true;
    });
    assert.equal(found, 777);
    assert.deepEqual(asked, [777]);
  });
});
