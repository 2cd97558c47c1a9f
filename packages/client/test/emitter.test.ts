import { describe, expect, it } from 'vitest';
import { TypedEmitter } from '../src/emitter.js';

class Emitter extends TypedEmitter<{ ping: (n: number) => void }> {
  fire(n: number): void {
    this.emit('ping', n);
  }
}

describe('the client emitter', () => {
  it('removes a listener added with once by off(event, listener), as Node and the DOM do', () => {
    const emitter = new Emitter();
    const heard: number[] = [];
    const listener = (n: number) => heard.push(n);
    emitter.once('ping', listener);
    emitter.off('ping', listener);
    emitter.fire(1);
    // Still once when not removed, and removable by the function once returned.
    emitter.once('ping', listener);
    emitter.fire(2);
    emitter.fire(3);
    emitter.once('ping', listener)();
    emitter.fire(4);
    expect(heard).toEqual([2]);
  });
});
