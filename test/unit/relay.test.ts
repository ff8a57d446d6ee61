/**
 * The Relay QoS state machine with fake peers that record every packet: fan-out, the
 * source acknowledged only after every copy, reason codes, duplicates, unknown PUBREL,
 * local messages (clear(), hooks and the id allocator: relay-ids.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { out, publishIds, setup } from './relay-kit.js';

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

    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y2, reasonCode: 0x10 }), 'ok');
    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y1, reasonCode: 0x87 }), 'ok');
    assert.deepEqual(src.sent, [], 'no PUBACK while a copy is unacknowledged');
    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y3, reasonCode: 0 }), 'ok');
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

  it("the copies carry topic, payload, retain, properties, the sender's DUP and (when free) its id", () => {
    const { dst, relay } = setup();
    const properties = { contentType: 'application/json', userProperties: { k: 'v' } };
    relay.forward({ messageId: 2, qos: 1 }, [out('t', 1, { retain: true, dup: true, properties })]);
    relay.forward({ messageId: 3, qos: 0 }, [out('q0', 0, { dup: true })]);
    const [p, q0] = dst.take();
    assert.ok(p && p.cmd === 'publish' && q0 && q0.cmd === 'publish');
    assert.equal(p.topic, 't');
    assert.equal(p.payload.toString(), 't');
    assert.equal(p.retain, true);
    assert.equal(p.dup, true, 'a redelivery stays one');
    assert.equal(p.messageId, 2, 'the sender id is free here, so it is kept');
    assert.deepEqual(p.properties, properties);
    assert.equal(q0.dup, false, 'never DUP on QoS 0');
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
    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: 99 }), 'unknown');
    relay.forward({ messageId: 1, qos: 1 }, [out('a', 1)]);
    const [y] = publishIds(dst.take());
    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y }), 'ok');
    src.take();
    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y }), 'unknown');
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

  it('a PUBREC with a failure reason code (>= 0x80) ends the flow: accepted copies are released by the relay', () => {
    const { src, dst, relay, ids } = setup();
    relay.forward({ messageId: 21, qos: 2 }, [out('ok', 2), out('bad', 2)]);
    const [ok, bad] = publishIds(dst.take());
    relay.onDestinationAck({ cmd: 'pubrec', messageId: bad, reasonCode: 0x87 });
    assert.equal(ids.inUse, 1, 'the failed copy is over');
    relay.onDestinationAck({ cmd: 'pubrec', messageId: ok, reasonCode: 0 });
    // MQTT 5 4.3.3: the refusal ends the source's flow, so the relay releases the accepted copy.
    assert.deepEqual(dst.take(), [{ cmd: 'pubrel', messageId: ok, reasonCode: 0 }]);
    assert.deepEqual(src.take(), [{ cmd: 'pubrec', messageId: 21, reasonCode: 0x87 }]);
    assert.equal(relay.size, 0, 'the source message is settled');
    relay.onDestinationAck({ cmd: 'pubcomp', messageId: ok });
    assert.deepEqual(src.take(), [], 'the PUBCOMP of a released copy goes nowhere');
    assert.equal(ids.inUse, 0);
    // A 3.1.1 source (whose PUBREC carries no reason code) still releases: the PUBREL is
    // passed on under the same id and the destination's PUBCOMP completes it.
    relay.onSourcePubrel(21);
    assert.deepEqual(dst.take(), [{ cmd: 'pubrel', messageId: 21, reasonCode: 0 }]);
    relay.onDestinationAck({ cmd: 'pubcomp', messageId: 21, reasonCode: 0x92 });
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

  it('a DUP resend after PUBREC goes out again under the same id with DUP; the PUBREC answering it is relayed', () => {
    const { src, dst, relay, ids } = setup();
    relay.forward({ messageId: 23, qos: 2 }, [out('a', 2)]);
    const [y] = publishIds(dst.take());
    relay.onDestinationAck({ cmd: 'pubrec', messageId: y });
    src.take();
    relay.forward({ messageId: 23, qos: 2 }, [out('a', 2, { dup: true })]);
    const again = dst.take();
    assert.equal(again.length, 1);
    const p = again[0]!;
    assert.ok(p.cmd === 'publish' && p.messageId === y && p.dup && p.qos === 2 && p.topic === 'a');
    assert.deepEqual(src.sent, [], 'the destination answers the resend, not the relay');
    relay.onDestinationAck({ cmd: 'pubrec', messageId: y });
    assert.deepEqual(src.take(), [{ cmd: 'pubrec', messageId: 23, reasonCode: 0 }]);
    relay.onSourcePubrel(23);
    assert.deepEqual(dst.take(), [{ cmd: 'pubrel', messageId: y, reasonCode: 0 }]);
    relay.onDestinationAck({ cmd: 'pubcomp', messageId: y });
    assert.deepEqual(src.take(), [{ cmd: 'pubcomp', messageId: 23, reasonCode: 0 }]);
    assert.equal(ids.inUse, 0);
    assert.equal(relay.size, 0);
  });

  it('a resend after PUBREC with fan-out: only the QoS 2 copies go out again (same ids), never the acknowledged QoS 1 copy', () => {
    const { src, dst, relay, ids } = setup();
    relay.forward({ messageId: 30, qos: 2 }, [out('a', 2), out('b', 1), out('c', 2)]);
    const [ya, yb, yc] = publishIds(dst.take());
    relay.onDestinationAck({ cmd: 'pubrec', messageId: ya });
    relay.onDestinationAck({ cmd: 'puback', messageId: yb });
    relay.onDestinationAck({ cmd: 'pubrec', messageId: yc });
    assert.deepEqual(src.take(), [{ cmd: 'pubrec', messageId: 30, reasonCode: 0 }]);
    // The mapping may give other outputs for the resend: the copies already sent are what goes again.
    relay.forward({ messageId: 30, qos: 2 }, [out('x', 1)]);
    const again = dst.take();
    assert.deepEqual(
      again.map((p) => (p.cmd === 'publish' ? [p.topic, p.messageId, p.dup] : [p.cmd])),
      [
        ['a', ya, true],
        ['c', yc, true],
      ],
    );
    relay.onDestinationAck({ cmd: 'pubrec', messageId: yc });
    assert.deepEqual(src.sent, [], 'no PUBREC while a copy has not answered the resend');
    relay.onDestinationAck({ cmd: 'pubrec', messageId: ya });
    assert.deepEqual(src.take(), [{ cmd: 'pubrec', messageId: 30, reasonCode: 0 }]);
    relay.onSourcePubrel(30);
    const rels = dst.take();
    assert.ok(rels.every((p) => p.cmd === 'pubrel'));
    assert.deepEqual(rels.map((p) => p.messageId).sort(), [ya, yc].sort());
    relay.onDestinationAck({ cmd: 'pubcomp', messageId: ya });
    relay.onDestinationAck({ cmd: 'pubcomp', messageId: yc });
    assert.deepEqual(src.take(), [{ cmd: 'pubcomp', messageId: 30, reasonCode: 0 }]);
    assert.equal(ids.inUse, 0);
  });

  it("a PUBREL that comes before the resend's PUBREC is held, then released after it", () => {
    const { src, dst, relay } = setup();
    relay.forward({ messageId: 31, qos: 2 }, [out('a', 2)]);
    const [y] = publishIds(dst.take());
    relay.onDestinationAck({ cmd: 'pubrec', messageId: y });
    src.take();
    relay.forward({ messageId: 31, qos: 2 }, [out('a', 2)]);
    dst.take();
    relay.onSourcePubrel(31);
    assert.deepEqual(dst.sent, [], 'not released while the resend is unanswered');
    relay.onDestinationAck({ cmd: 'pubrec', messageId: y });
    assert.deepEqual(src.take(), [{ cmd: 'pubrec', messageId: 31, reasonCode: 0 }]);
    assert.deepEqual(dst.take(), [{ cmd: 'pubrel', messageId: y, reasonCode: 0 }]);
    relay.onDestinationAck({ cmd: 'pubcomp', messageId: y });
    assert.deepEqual(src.take(), [{ cmd: 'pubcomp', messageId: 31, reasonCode: 0 }]);
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

  it('an unknown PUBREL (a QoS 2 flow from an earlier connection) is passed on under its id', () => {
    const { src, dst, relay, hooks, ids } = setup();
    relay.onSourcePubrel(77);
    assert.deepEqual(src.take(), []);
    assert.deepEqual(dst.take(), [{ cmd: 'pubrel', messageId: 77, reasonCode: 0 }]);
    relay.onDestinationAck({ cmd: 'pubcomp', messageId: 77 });
    assert.deepEqual(src.take(), [{ cmd: 'pubcomp', messageId: 77, reasonCode: 0 }]);
    assert.equal(hooks.settled.length, 1);
    assert.equal(ids.inUse, 0);
  });

  it('an unknown PUBREL toward a destination that never takes QoS 2 is completed here, nothing passed on', () => {
    const { src, dst, relay, hooks, ids } = setup(false);
    relay.onSourcePubrel(78);
    assert.deepEqual(src.take(), [{ cmd: 'pubcomp', messageId: 78, reasonCode: 0 }]);
    assert.deepEqual(dst.take(), []);
    assert.equal(ids.inUse, 0, 'no id taken on the destination');
    assert.equal(hooks.started, 0, 'nothing counted in flight');
  });

  it('an unknown PUBREL whose id is taken on the other side is completed with PUBCOMP 0x92', () => {
    const { src, dst, relay, ids } = setup();
    relay.forward(null, [out('busy', 1)]); // a message of the proxy's own holds the id
    const [y] = publishIds(dst.take());
    relay.onSourcePubrel(y!);
    assert.deepEqual(src.take(), [{ cmd: 'pubcomp', messageId: y, reasonCode: 0x92 }]);
    assert.deepEqual(dst.take(), []);
    assert.equal(ids.inUse, 1, 'only the local copy holds an id');
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
    for (const y of ys) assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y }), 'ok');
    assert.deepEqual(src.sent, []);
    assert.equal(relay.pendingDestination, 0);
    assert.equal(ids.inUse, 0);
    assert.equal(hooks.started, 0);
    assert.equal(hooks.settled.length, 0);
  });

  it('SPEC (MQTT 3.1.1 4.3.3, 5.0 4.3.3): a local QoS 2 copy is released with PUBREL after its PUBREC', () => {
    // The relay is the sender of a local QoS 2 message: on PUBREC (< 0x80) a sender MUST send
    // PUBREL, or the receiver keeps the message forever and the id is never freed.
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

describe('Relay: the wrong kind of acknowledgement', () => {
  it('a PUBCOMP or PUBREC for a QoS 1 copy, a PUBACK for a QoS 2 copy are protocol errors', () => {
    const { dst, relay } = setup();
    relay.forward({ messageId: 31, qos: 1 }, [out('q1', 1)]);
    relay.forward({ messageId: 32, qos: 2 }, [out('q2', 2)]);
    const [y1, y2] = publishIds(dst.take());
    assert.equal(relay.onDestinationAck({ cmd: 'pubcomp', messageId: y1 }), 'unexpected');
    assert.equal(relay.onDestinationAck({ cmd: 'pubrec', messageId: y1 }), 'unexpected');
    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y2 }), 'unexpected');
    assert.equal(
      relay.onDestinationAck({ cmd: 'pubcomp', messageId: y2 }),
      'unexpected',
      'PUBCOMP before PUBREL',
    );
    assert.equal(relay.onDestinationAck({ cmd: 'puback', messageId: y1 }), 'ok');
    assert.equal(relay.onDestinationAck({ cmd: 'pubrec', messageId: y2 }), 'ok');
  });
});
