/**
 * Chat-like JSON messages for the compression scenario: natural-language text, ids, names and
 * timestamps, 200 to 2000 bytes, the same sequence on every run (a fixed pseudo-random stream), so
 * every contender sends the same bytes. `seq` comes first, so a client reads it without parsing.
 */

const WORDS = (
  'the of and to a in is it you that he was for on are with as I his they be at one have this ' +
  'from or had by hot word but what some we can out other were all there when up use your how ' +
  'said an each she which do their time if will way about many then them write would like so ' +
  'these her long make thing see him two has look more day could go come did number sound no ' +
  'most people my over know water than call first who may down side been now find any new work ' +
  'part take get place made live where after back little only round man year came show every ' +
  'good me give our under name very through just form sentence great think say help low line ' +
  'deploy release meeting tomorrow lunch ticket review merge branch build coffee weekend'
).split(' ');

const NAMES = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy'];

/** A small, fast pseudo-random stream (mulberry32). */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The message `seq` of a run: a chat event of `min` to `max` bytes of JSON; under 300 bytes, a
 * compact one (no avatar, id or reactions).
 */
export function chatMessage(seq: number, min = 200, max = 2000): string {
  const next = random(seq * 2654435761);
  const target = min + Math.floor(next() * (max - min));
  const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!;
  const user = pick(NAMES);
  if (target < 300) {
    const compact = { seq, type: 'message', room: `team-${seq % 20}`, user, text: '' };
    return grow(compact, target, next, pick);
  }
  const message = {
    seq,
    type: 'message',
    room: `team-${1 + Math.floor(next() * 20)}`,
    id: Math.floor(next() * 2 ** 48).toString(36),
    user: { id: `u${Math.floor(next() * 100_000)}`, name: user, avatar: `/avatars/${user}.png` },
    sentAt: new Date(1_764_000_000_000 + seq * 1_733).toISOString(),
    text: '',
    mentions: [] as string[],
    reactions: {} as Record<string, number>,
  };
  if (next() < 0.3) message.mentions.push(pick(NAMES));
  if (next() < 0.3) {
    message.reactions[pick(['+1', 'heart', 'tada', 'eyes'])] = 1 + Math.floor(next() * 5);
  }
  return grow(message, target, next, pick);
}

/** The message as JSON, its text grown word by word to `target` bytes. */
function grow(
  message: { text: string },
  target: number,
  next: () => number,
  pick: (items: readonly string[]) => string,
): string {
  const words: string[] = [];
  let json = JSON.stringify(message);
  while (json.length < target) {
    words.push(pick(WORDS));
    if (next() < 0.08) words[words.length - 1] += '.';
    message.text = words.join(' ');
    json = JSON.stringify(message);
  }
  return json;
}

/** The `seq` of a chat message, read from its start (`{"seq":N,`). */
export function seqOf(json: string): number {
  return Number(json.slice(7, json.indexOf(',')));
}
