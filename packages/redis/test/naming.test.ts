import { describe, expect, it } from 'vitest';
import { channelName, hashTagged, topicOfChannel } from '../src/naming.js';

describe('key and channel naming', () => {
  const names = ['', 'plain', '{tag}', '}', '%', '%7D', '%25', 'a}b{c', 'ünï/cødé', '%%}}'];

  it('round-trips every topic through its channel name', () => {
    for (const name of names) expect(topicOfChannel('p:', channelName('p:', name))).toBe(name);
    expect(topicOfChannel('p:', 'other:{x}')).toBeUndefined();
  });

  it('gives every name one non-empty hash tag, and distinct names distinct tags', () => {
    const tags = names.map(hashTagged);
    for (const tag of tags) expect(tag).toMatch(/^\{[^}]+\}$/);
    expect(new Set(tags).size).toBe(names.length);
  });
});
