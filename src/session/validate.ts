/**
 * Protocol rules mqtt-packet's parser does not enforce, checked on packets from the client.
 * Each returns a close reason (bounded, for metrics) or undefined when the packet is valid.
 * UTF-8 well-formedness and U+0000 in topics are checked on the raw bytes by the channel.
 */
import type { Packet } from 'mqtt-packet';

export function violation(p: Packet, version: number): string | undefined {
  switch (p.cmd) {
    case 'publish': {
      const t = p.topic;
      // MQTT-3.3.2-2: no wildcards in a PUBLISH topic.
      if (t.includes('+') || t.includes('#')) return 'wildcard_in_publish_topic';
      // MQTT-2.3.1-1: QoS > 0 needs a non-zero packet identifier.
      if (p.qos > 0 && !p.messageId) return 'missing_packet_id';
      if (version === 5 && p.properties?.topicAlias === 0) return 'bad_topic_alias';
      // An empty topic is only valid with a topic alias (MQTT 5).
      if (t === '' && p.properties?.topicAlias === undefined) return 'empty_topic';
      return undefined;
    }
    case 'subscribe':
      // MQTT-3.8.3-3: at least one filter.
      return p.subscriptions.length === 0 ? 'empty_subscribe' : undefined;
    case 'unsubscribe':
      // MQTT-3.10.3-2: at least one filter.
      return p.unsubscriptions.length === 0 ? 'empty_unsubscribe' : undefined;
    default:
      return undefined;
  }
}
