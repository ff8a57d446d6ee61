/**
 * The Relay QoS state machine with fake peers that record every packet: fan-out, the
 * source acknowledged only after every copy, reason codes, duplicates, unknown ids, local
 * messages, the packet-id allocator, and balanced in-flight hooks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Packet, QoS } from 'mqtt-packet';
import type { PublishOut } from '../../src/core/contract.js';
import { IdAllocator, Relay } from '../../src/session/relay.js';

interface Peer {
  sent: Packet[];
  send(p: Packet): boolean;
  /** Takes and returns what was sent since the last take. */
  take(): Packet[];
}

function peer(): Peer {
  const p: Peer = {
    sent: [],
    send(packet) {
      p.sent.push(packet);
      return true;
    },
    take() {
      const out = p.sent;
      p.sent = [];
      return out;
    },
  };
  return p;
}

function setup() {
  const src = peer();
  const dst = peer();
  const ids = new IdAllocator();
  const hooks = { started: 0, settled: [] as number[] };
  const relay = new Relay(src, dst, ids, {
    onStart: () => hooks.started++,
    onSettled: (t0) => hooks.settled.push(t0),
  });
  return { src, dst, ids, hooks, relay };
}

function out(topic: string, qos: QoS, extra: Partial<PublishOut> = {}): PublishOut {
  return { topic, payload: Buffer.from(topic), qos, retain: false, ...extra };
}

/** Destination message ids of the PUBLISH packets among `packets`. */
function publishIds(packets: Packet[]): number[] {
  return packets.filter((p) => p.cmd === 'publish').map((p) => p.messageId ?? 0);
}

describe('Relay: QoS 1', () => {
  it('fan-out of 3: PUBACK to the source only after all 3, the worst reason code wins', () => {
    const { src, dst, relay, hooks, ids } = setup();
    relay.forward({ messageId: 10, qos: 1 }, [out('a', 1), out('b', 1), out('c', 1)]);
    const sent = dst.take();
    assert.deepEqual(
      sent.map((p) => (p.cmd === 'publish' ? p.topic : p.cmd)),
      ['a', 'b', 'c'],
    );
    const [y1, y2, y3] = publishIds(sent);
    assert.equal(new Set([y1, y2, y3]).size, 3, 'distinct destination ids');
    assert.equal(ids.inUse, 3);
    assert.equal(relay.size, 1);
    assert.equal(hooks.started, 1);

    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y2, reasonCode: 0x10 }), true);
    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y1, reasonCode: 0x87 }), true);
    assert.deepEqual(src.sent, [], 'no PUBACK while a copy is unacknowledged');
    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y3, reasonCode: 0 }), true);
    assert.deepEqual(src.take(), [{ cmd: 'puback', messageId: 10, reasonCode: 0x87 }]);
    assert.equal(ids.inUse, 0, 'every destination id freed');
    assert.equal(relay.size, 0);
    assert.equal(hooks.settled.length, 1);
  });

  it('every copy acknowledged with success: PUBACK reason 0', () => {
    const { src, dst, relay } = setup();
    relay.forward({ messageId: 1, qos: 1 }, [out('a', 1), out('b', 1)]);
    for (const id of publishIds(dst.take())) relay.onDestinationAck({ cmd: 'puback', messageId: id });
    assert.deepEqual(src.take(), [{ cmd: 'puback', messageId: 1, reasonCode: 0 }]);
  });

  it('QoS 0 copies need no acknowledgement: only the QoS 1 copy is awaited', () => {
    const { src, dst, relay, ids } = setup();
    relay.forward({ messageId: 4, qos: 1 }, [out('zero', 0), out('one', 1), out('zero2', 0)]);
    const sent = dst.take();
    assert.equal(sent.length, 3);
    const zero = sent[0]!;
    assert.ok(zero.cmd === 'publish' && zero.messageId === undefined && zero.qos === 0);
    assert.equal(ids.inUse, 1);
    assert.deepEqual(src.sent, []);
    relay.onDestinationAck({ cmd: 'puback', messageId: publishIds(sent).find((id) => id > 0)! });
    assert.deepEqual(src.take(), [{ cmd: 'puback', messageId: 4, reasonCode: 0 }]);
  });

  it('the copies carry topic, payload, retain, properties, and DUP cleared', () => {
    const { dst, relay } = setup();
    const properties = { contentType: 'application/json', userProperties: { k: 'v' } };
    relay.forward({ messageId: 2, qos: 1 }, [out('t', 1, { retain: true, dup: true, properties })]);
    const [p] = dst.take();
    assert.ok(p && p.cmd === 'publish');
    assert.equal(p.topic, 't');
    assert.equal(p.payload.toString(), 't');
    assert.equal(p.retain, true);
    assert.equal(p.dup, false);
    assert.deepEqual(p.properties, properties);
  });

  it('a DUP resend while in flight is not forwarded twice; the one PUBACK answers both', () => {
    const { src, dst, relay, hooks } = setup();
    relay.forward({ messageId: 5, qos: 1 }, [out('a', 1)]);
    const [y] = publishIds(dst.take());
    relay.forward({ messageId: 5, qos: 1 }, [out('a', 1)]);
    assert.deepEqual(dst.sent, [], 'not forwarded again');
    assert.deepEqual(src.sent, []);
    relay.onDestinationAck({ cmd: 'puback', messageId: y });
    assert.deepEqual(src.take(), [{ cmd: 'puback', messageId: 5, reasonCode: 0 }]);
    assert.equal(hooks.started, 1);
    assert.equal(hooks.settled.length, 1);
  });

  it('zero outputs (dropped): PUBACK at once, nothing in flight', () => {
    const { src, dst, relay, hooks } = setup();
    relay.forward({ messageId: 6, qos: 1 }, []);
    assert.deepEqual(src.take(), [{ cmd: 'puback', messageId: 6, reasonCode: 0 }]);
    assert.deepEqual(dst.sent, []);
    assert.equal(relay.size, 0);
    assert.equal(hooks.started, 0);
    assert.equal(hooks.settled.length, 0);
  });

  it('only QoS 0 outputs: PUBACK at once', () => {
    const { src, dst, relay } = setup();
    relay.forward({ messageId: 7, qos: 1 }, [out('a', 0), out('b', 0)]);
    assert.equal(dst.take().length, 2);
    assert.deepEqual(src.take(), [{ cmd: 'puback', messageId: 7, reasonCode: 0 }]);
    assert.equal(relay.size, 0);
  });

  it('an acknowledgement for an unknown or already acknowledged id returns false and sends nothing', () => {
    const { src, dst, relay } = setup();
    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: 99 }), false);
    relay.forward({ messageId: 1, qos: 1 }, [out('a', 1)]);
    const [y] = publishIds(dst.take());
    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y }), true);
    src.take();
    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y }), false);
    assert.deepEqual(src.sent, []);
  });

  it('a QoS 0 source is never acknowledged, whatever its copies', () => {
    const { src, dst, relay, hooks } = setup();
    relay.forward({ qos: 0 }, [out('a', 0)]);
    assert.equal(dst.take().length, 1);
    assert.deepEqual(src.sent, []);
    assert.equal(hooks.started, 0);
  });
});

describe('Relay: QoS 2', () => {
  it('full flow with fan-out: PUBREC after all PUBRECs, PUBREL fan-out, PUBCOMP after all PUBCOMPs', () => {
    const { src, dst, relay, ids, hooks } = setup();
    relay.forward({ messageId: 20, qos: 2 }, [out('a', 2), out('b', 2), out('c', 2)]);
    const ys = publishIds(dst.take());
    assert.equal(ys.length, 3);
    assert.equal(hooks.started, 1);

    relay.onDestinationAck({ cmd: 'pubrec', messageId: ys[0], reasonCode: 0 });
    relay.onDestinationAck({ cmd: 'pubrec', messageId: ys[2], reasonCode: 0x10 });
    assert.deepEqual(src.sent, [], 'no PUBREC while a copy has not answered');
    relay.onDestinationAck({ cmd: 'pubrec', messageId: ys[1], reasonCode: 0 });
    assert.deepEqual(src.take(), [{ cmd: 'pubrec', messageId: 20, reasonCode: 0x10 }]);
    assert.deepEqual(dst.sent, [], 'no PUBREL before the source releases');
    assert.equal(ids.inUse, 3, 'ids kept until PUBCOMP');

    relay.onSourcePubrel(20);
    const rels = dst.take();
    assert.deepEqual(
      rels.map((p) => p.cmd),
      ['pubrel', 'pubrel', 'pubrel'],
    );
    assert.deepEqual(
      rels.map((p) => p.messageId).sort((a, b) => (a ?? 0) - (b ?? 0)),
      [...ys].sort((a, b) => a - b),
    );
    for (const p of rels) assert.equal(p.cmd === 'pubrel' ? p.reasonCode : -1, 0);

    relay.onDestinationAck({ cmd: 'pubcomp', messageId: ys[1] });
    relay.onDestinationAck({ cmd: 'pubcomp', messageId: ys[0] });
    assert.deepEqual(src.sent, [], 'no PUBCOMP while a copy is incomplete');
    relay.onDestinationAck({ cmd: 'pubcomp', messageId: ys[2] });
    assert.deepEqual(src.take(), [{ cmd: 'pubcomp', messageId: 20, reasonCode: 0 }]);
    assert.equal(ids.inUse, 0);
    assert.equal(relay.size, 0);
    assert.equal(hooks.settled.length, 1);
  });

  it('a PUBREC with a failure reason code (>= 0x80) is not released; its id is freed at once', () => {
    const { src, dst, relay, ids } = setup();
    relay.forward({ messageId: 21, qos: 2 }, [out('ok', 2), out('bad', 2)]);
    const [ok, bad] = publishIds(dst.take());
    relay.onDestinationAck({ cmd: 'pubrec', messageId: bad, reasonCode: 0x87 });
    assert.equal(ids.inUse, 1, 'the failed copy is over');
    relay.onDestinationAck({ cmd: 'pubrec', messageId: ok, reasonCode: 0 });
    assert.deepEqual(src.take(), [{ cmd: 'pubrec', messageId: 21, reasonCode: 0x87 }]);
    // A 3.1.1 source always releases (its PUBREC carries no reason code).
    relay.onSourcePubrel(21);
    assert.deepEqual(dst.take(), [{ cmd: 'pubrel', messageId: ok, reasonCode: 0 }]);
    relay.onDestinationAck({ cmd: 'pubcomp', messageId: ok });
    assert.deepEqual(src.take(), [{ cmd: 'pubcomp', messageId: 21, reasonCode: 0 }]);
    assert.equal(ids.inUse, 0);
  });

  it('a DUP resend before PUBREC is not forwarded twice and not answered', () => {
    const { src, dst, relay } = setup();
    relay.forward({ messageId: 22, qos: 2 }, [out('a', 2)]);
    const [y] = publishIds(dst.take());
    relay.forward({ messageId: 22, qos: 2 }, [out('a', 2)]);
    assert.deepEqual(dst.sent, []);
    assert.deepEqual(src.sent, []);
    relay.onDestinationAck({ cmd: 'pubrec', messageId: y });
    assert.deepEqual(src.take(), [{ cmd: 'pubrec', messageId: 22, reasonCode: 0 }]);
  });

  it("a DUP resend in phase 'rel' (after PUBREC): PUBREC resent, not forwarded", () => {
    const { src, dst, relay } = setup();
    relay.forward({ messageId: 23, qos: 2 }, [out('a', 2)]);
    const [y] = publishIds(dst.take());
    relay.onDestinationAck({ cmd: 'pubrec', messageId: y });
    src.take();
    relay.forward({ messageId: 23, qos: 2 }, [out('a', 2)]);
    assert.deepEqual(dst.sent, [], 'not forwarded again');
    assert.deepEqual(src.take(), [{ cmd: 'pubrec', messageId: 23, reasonCode: 0 }]);
  });

  it('a repeated PUBREL while the copies are being released sends nothing more', () => {
    const { src, dst, relay } = setup();
    relay.forward({ messageId: 24, qos: 2 }, [out('a', 2)]);
    const [y] = publishIds(dst.take());
    relay.onDestinationAck({ cmd: 'pubrec', messageId: y });
    src.take();
    relay.onSourcePubrel(24);
    assert.equal(dst.take().length, 1);
    relay.onSourcePubrel(24);
    assert.deepEqual(dst.sent, []);
    assert.deepEqual(src.sent, []);
    relay.onDestinationAck({ cmd: 'pubcomp', messageId: y });
    assert.deepEqual(src.take(), [{ cmd: 'pubcomp', messageId: 24, reasonCode: 0 }]);
  });

  it('an unknown PUBREL is completed with PUBCOMP 0x92 (packet identifier not found)', () => {
    const { src, dst, relay, hooks } = setup();
    relay.onSourcePubrel(77);
    assert.deepEqual(src.take(), [{ cmd: 'pubcomp', messageId: 77, reasonCode: 0x92 }]);
    assert.deepEqual(dst.sent, []);
    assert.equal(hooks.settled.length, 0);
  });

  it('zero outputs: PUBREC at once, then PUBCOMP on PUBREL', () => {
    const { src, dst, relay, hooks } = setup();
    relay.forward({ messageId: 25, qos: 2 }, []);
    assert.deepEqual(src.take(), [{ cmd: 'pubrec', messageId: 25, reasonCode: 0 }]);
    assert.equal(relay.size, 1, 'waits for the PUBREL');
    assert.equal(hooks.started, 1);
    relay.forward({ messageId: 25, qos: 2 }, []);
    assert.deepEqual(src.take(), [{ cmd: 'pubrec', messageId: 25, reasonCode: 0 }], 'DUP answered again');
    relay.onSourcePubrel(25);
    assert.deepEqual(src.take(), [{ cmd: 'pubcomp', messageId: 25, reasonCode: 0 }]);
    assert.deepEqual(dst.sent, []);
    assert.equal(relay.size, 0);
    assert.equal(hooks.settled.length, 1);
  });

  it('QoS 2 source with QoS 1 copies (capped): PUBREC after the PUBACKs, PUBCOMP on PUBREL', () => {
    const { src, dst, relay, ids } = setup();
    relay.forward({ messageId: 26, qos: 2 }, [out('a', 1), out('b', 1)]);
    const ys = publishIds(dst.take());
    for (const y of ys) relay.onDestinationAck({ cmd: 'puback', messageId: y });
    assert.deepEqual(src.take(), [{ cmd: 'pubrec', messageId: 26, reasonCode: 0 }]);
    assert.equal(ids.inUse, 0);
    relay.onSourcePubrel(26);
    assert.deepEqual(dst.sent, [], 'nothing to release downstream');
    assert.deepEqual(src.take(), [{ cmd: 'pubcomp', messageId: 26, reasonCode: 0 }]);
    assert.equal(relay.size, 0);
  });
});

describe('Relay: local messages (no source)', () => {
  it('QoS 1 local copies are tracked but never acknowledged upstream', () => {
    const { src, dst, relay, ids, hooks } = setup();
    relay.forward(null, [out('l1', 1), out('l2', 1)]);
    const ys = publishIds(dst.take());
    assert.equal(ys.length, 2);
    assert.equal(relay.pendingDestination, 2);
    assert.equal(relay.size, 0, 'nothing owed to a source');
    for (const y of ys) assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y }), true);
    assert.deepEqual(src.sent, []);
    assert.equal(relay.pendingDestination, 0);
    assert.equal(ids.inUse, 0);
    assert.equal(hooks.started, 0);
    assert.equal(hooks.settled.length, 0);
  });

  it('SPEC (MQTT 3.1.1 4.3.3, 5.0 4.3.3): a local QoS 2 copy is released with PUBREL after its PUBREC', () => {
    // KNOWN FAILING: the relay is the sender of a local QoS 2 message; on PUBREC (< 0x80)
    // a sender MUST send PUBREL. Today the group is local, so nothing is sent, the receiver
    // keeps the message forever and the destination id is never freed.
    const { src, dst, relay, ids } = setup();
    relay.forward(null, [out('local', 2)]);
    const [y] = publishIds(dst.take());
    relay.onDestinationAck({ cmd: 'pubrec', messageId: y, reasonCode: 0 });
    assert.deepEqual(dst.take(), [{ cmd: 'pubrel', messageId: y, reasonCode: 0 }]);
    relay.onDestinationAck({ cmd: 'pubcomp', messageId: y });
    assert.equal(ids.inUse, 0);
    assert.deepEqual(src.sent, []);
  });

  it('local QoS 0 copies are just sent', () => {
    const { src, dst, relay, ids } = setup();
    relay.forward(null, [out('l', 0)]);
    assert.equal(dst.take().length, 1);
    assert.deepEqual(src.sent, []);
    assert.equal(ids.inUse, 0);
  });

  it('a local message and a source message with the same destination flow do not mix', () => {
    const { src, dst, relay } = setup();
    relay.forward(null, [out('local', 1)]);
    relay.forward({ messageId: 0, qos: 1 }, [out('remote', 1)]);
    const [yl, yr] = publishIds(dst.take());
    relay.onDestinationAck({ cmd: 'puback', messageId: yl });
    assert.deepEqual(src.sent, [], 'the local ack does not acknowledge the source');
    relay.onDestinationAck({ cmd: 'puback', messageId: yr });
    assert.deepEqual(src.take(), [{ cmd: 'puback', messageId: 0, reasonCode: 0 }]);
  });
});

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
    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y }), false);
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
