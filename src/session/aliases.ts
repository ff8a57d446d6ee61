/**
 * MQTT 5 topic aliases, resolved when the proxy rewrites topics (a pass-through session
 * forwards them untouched, since both hops then share the same alias sequence).
 */
import type { IPublishPacket } from 'mqtt-packet';

/** Replaces an alias by its topic, learning new aliases. False when the alias is unknown. */
export function resolveAlias(p: IPublishPacket, table: Map<number, string>): boolean {
  const props = p.properties!;
  const alias = props.topicAlias!;
  if (p.topic) {
    table.set(alias, p.topic);
  } else {
    const topic = table.get(alias);
    if (topic === undefined) return false;
    p.topic = topic;
  }
  delete props.topicAlias;
  return true;
}
