import type { NetworkSignal } from '../../src/index.js';

/** A network signal the test switches on and off, as a browser's `online`/`offline` events would. */
export class FakeNetwork implements NetworkSignal {
  online = true;
  readonly listeners = new Set<(online: boolean) => void>();

  subscribe(listener: (online: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  set(online: boolean): void {
    this.online = online;
    for (const listener of this.listeners) listener(online);
  }
}
