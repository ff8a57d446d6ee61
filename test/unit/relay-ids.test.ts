/**
 * Relay bookkeeping: clear() on session close, balanced in-flight hooks, and the packet
 * identifier allocator (wrap-around, skipping ids in use, exhaustion).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { QoS } from 'mqtt-packet';
import { IdAllocator } from '../../src/codec/packet-ids.js';
import { out, publishIds, setup } from './relay-kit.js';

describe('Relay: clear() and hooks', () => {
  it('clear() frees the destination ids of unacknowledged copies and settles what was started', () => {
    const { dst, relay, ids, hooks } = setup();
    relay.forward({ messageId: 1, qos: 1 }, [out('a', 1), out('b', 1)]);
    relay.forward({ messageId: 2, qos: 2 }, [out('c', 2)]);
    relay.forward(null, [out('d', 1)]);
    assert.equal(publishIds(dst.take()).length, 4);
    assert.equal(ids.inUse, 4);
    relay.clear();
    assert.equal(ids.inUse, 0);
    assert.equal(relay.size, 0);
    assert.equal(relay.pendingDestination, 0);
    assert.equal(hooks.started, 2);
    assert.deepEqual(hooks.settled, [-1, -1], 'cleared messages settle with t0 = -1');
  });

  it('after clear() late acknowledgements are unknown', () => {
    const { src, dst, relay } = setup();
    relay.forward({ messageId: 1, qos: 1 }, [out('a', 1)]);
    const [y] = publishIds(dst.take());
    relay.clear();
    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y }), 'unknown');
    assert.deepEqual(src.sent, []);
  });

  it('onStart and onSettled balance over a mixed sequence', () => {
    const { src, dst, relay, hooks } = setup();
    let next = 1;
    const pending: Array<{ y: number; cmd: 'puback' | 'pubrec' }> = [];
    for (let round = 0; round < 50; round++) {
      const qos = ((round % 3) as QoS) || 1;
      const n = round % 4;
      relay.forward(
        { messageId: next++, qos },
        Array.from({ length: n }, (_, i) => out(`r${round}/${i}`, qos)),
      );
      for (const y of publishIds(dst.take())) pending.push({ y, cmd: qos === 1 ? 'puback' : 'pubrec' });
    }
    for (const p of pending) relay.onDestinationAck({ cmd: p.cmd, messageId: p.y });
    for (const p of src.take()) if (p.cmd === 'pubrec') relay.onSourcePubrel(p.messageId ?? 0);
    for (const p of dst.take())
      if (p.cmd === 'pubrel') relay.onDestinationAck({ cmd: 'pubcomp', messageId: p.messageId });
    assert.equal(relay.size, 0);
    assert.ok(hooks.started > 0);
    assert.equal(hooks.settled.length, hooks.started);
    for (const t0 of hooks.settled) assert.ok(t0 > 0, 'settled with the arrival time');
  });
});

describe('IdAllocator', () => {
  it('starts at 1, counts up, and skips ids in use after wrapping', () => {
    const ids = new IdAllocator();
    assert.equal(ids.alloc(), 1);
    assert.equal(ids.alloc(), 2);
    assert.equal(ids.alloc(), 3);
    ids.free(1);
    ids.free(3);
    // Walk to the end of the space, freeing as we go: 2 stays in use.
    for (let expect = 4; expect <= 65535; expect++) {
      const id = ids.alloc();
      assert.equal(id, expect);
      ids.free(id);
    }
    assert.equal(ids.alloc(), 1, 'wraps from 65535 to 1');
    assert.equal(ids.alloc(), 3, 'skips 2, still in use');
    assert.equal(ids.inUse, 3);
  });

  it('never returns 0 and never returns an id in use', () => {
    const ids = new IdAllocator();
    const seen = new Set<number>();
    for (let i = 0; i < 65535; i++) {
      const id = ids.alloc();
      assert.ok(id >= 1 && id <= 65535);
      assert.ok(!seen.has(id));
      seen.add(id);
    }
    assert.equal(ids.inUse, 65535);
    assert.throws(() => ids.alloc(), /MDP_ERR_NO_PACKET_ID/);
    ids.free(4242);
    assert.equal(ids.alloc(), 4242, 'the one free id is found');
  });
});
