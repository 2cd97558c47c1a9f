import { InvalidOptionError } from '@wscale/core';

/**
 * Wraps a name in a Redis Cluster hash tag: `{name}`.
 *
 * Redis Cluster hashes only what stands between the first `{` and the next `}`, so every key or
 * shard channel built from one name lands in the same slot (what a multi-key Lua script needs),
 * and different names spread over the cluster. A `}` inside the name would end the tag early, so
 * `%` and `}` are percent-escaped (which keeps distinct names distinct); the empty name becomes
 * `{%}` because an empty tag `{}` makes Redis hash the whole key instead.
 */
export function hashTagged(name: string): string {
  if (name === '') return '{%}';
  // Nearly every name has neither: skip the two scans that would copy it (a publish runs this).
  if (!name.includes('%') && !name.includes('}')) return `{${name}}`;
  return `{${name.replaceAll('%', '%25').replaceAll('}', '%7D')}}`;
}

/** The Redis channel that carries a broker topic: `<channelPrefix>{<topic>}`. */
export function channelName(channelPrefix: string, topic: string): string {
  return `${channelPrefix}${hashTagged(topic)}`;
}

/** The topic a channel made by {@link channelName} carries, or `undefined` if it is not one. */
export function topicOfChannel(channelPrefix: string, channel: string): string | undefined {
  if (!channel.startsWith(channelPrefix) || !channel.endsWith('}')) return undefined;
  const inner = channel.slice(channelPrefix.length + 1, -1);
  if (!inner.includes('%')) return inner;
  if (inner === '%') return '';
  return inner.replace(/%(25|7D)/g, (_, code: string) => (code === '25' ? '%' : '}'));
}

/**
 * Checks a key or channel prefix. Braces are refused: a prefix with a hash tag of its own would
 * move every name into one slot (or, half-open, make the room's keys and its channel disagree).
 */
export function checkPrefix(option: string, prefix: string): string {
  if (typeof prefix !== 'string' || /[{}]/.test(prefix)) {
    throw new InvalidOptionError(`${option} must be a string without { or }`);
  }
  return prefix;
}
