/**
 * How topics and filters appear in logs: by shape only. Topics carry device ids and, in
 * akenza's grammar, the device's secret; a log line must name neither.
 */

/** `/up/…/id/…` → "6 levels, first: up": enough to recognise a topic family, nothing secret. */
export function topicShape(topic: string): string {
  const levels = topic.split('/');
  const first = levels.find((l) => l !== '') ?? '';
  // Only a short all-lowercase word is shown: secrets and ids are long or mixed.
  const safeFirst = /^\$?[a-z]{1,12}$/.test(first) ? first : '?';
  return `${levels.length} levels, first: ${safeFirst}`;
}
