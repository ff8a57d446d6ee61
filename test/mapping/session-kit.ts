/** Mapping sessions without sockets, for the pure tests of routes and dialects. */
import assert from 'node:assert/strict';
import type { IPublishPacket, QoS } from 'mqtt-packet';
import type { Plan } from '../../src/mapping/plan.js';
import { DialectSession, type SessionParams } from '../../src/mapping/session.js';
import type { Vars } from '../../src/mapping/template.js';
import { northSchemeFor, southSchemeFor } from '../../src/mapping/translator.js';

/** The clock of every session made here (µs): timestamps in expected payloads are this. */
export const NOW_US = 1_700_000_000_000_000;

/**
 * A session of `plan` for `vars`: MQTT 3.1.1 both ways, the fixed clock, the schemes the
 * vars select, anything else from `more`.
 */
export function mappingSession(
  plan: Plan | undefined,
  vars: Vars,
  more: Partial<Omit<SessionParams, 'plan' | 'vars'>> = {},
): DialectSession {
  assert.ok(plan, 'the plan exists');
  return new DialectSession({
    plan,
    vars,
    southScheme: southSchemeFor(plan.south, vars),
    northScheme: northSchemeFor(plan.north, vars),
    southVersion: 4,
    northVersion: 4,
    nowUs: () => NOW_US,
    ...more,
  });
}

/** A PUBLISH as the session receives it (QoS 1 unless given). */
export const pub = (topic: string, payload: string | Buffer, qos: QoS = 1): IPublishPacket => ({
  cmd: 'publish',
  topic,
  payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
  qos,
  retain: false,
  dup: false,
});
