import { describe, expect, it } from 'vitest';
import { prepareMessage, receivedText } from '../../src/protocol/payload.js';

describe('a text a client sent, sent on', () => {
  it('goes as the bytes it came as, a text frame', () => {
    const frame = Buffer.from('D1.0|7|héllo ✓', 'utf8');
    const text = receivedText(frame);
    expect(text).toBe('D1.0|7|héllo ✓');
    const message = prepareMessage(text);
    expect(message.bytes).toBe(frame);
    expect(message.binary).toBe(false);
  });

  it('another text is encoded as usual, and so is the last one once another came', () => {
    const first = receivedText(Buffer.from('first', 'utf8'));
    expect(prepareMessage('other').bytes).toEqual(Buffer.from('other'));
    const second = Buffer.from('second', 'utf8');
    receivedText(second);
    const again = prepareMessage(first).bytes;
    expect(again).toEqual(Buffer.from('first'));
    expect(prepareMessage('second').bytes).toBe(second);
  });
});
