/**
 * Whether the device is online, and a way to hear when that changes. While offline the client does
 * not spend reconnect attempts; when the device comes back online it reconnects at once.
 */
export interface NetworkSignal {
  /** Whether the device is online now. */
  readonly online: boolean;
  /** Calls `listener` when the device goes online or offline. Returns a function that stops it. */
  subscribe(listener: (online: boolean) => void): () => void;
}

/** The part of a browser's `window` that {@link browserNetwork} reads. */
export interface NetworkEventTarget {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
  readonly navigator?: { readonly onLine?: boolean };
}

/**
 * The browser's network signal (`navigator.onLine` and the `online`/`offline` events of `window`),
 * or `undefined` where they do not exist (Node, most workers without them).
 */
export function browserNetwork(
  target: NetworkEventTarget = globalThis as unknown as NetworkEventTarget,
): NetworkSignal | undefined {
  if (
    typeof target.addEventListener !== 'function' ||
    typeof target.removeEventListener !== 'function' ||
    typeof target.navigator?.onLine !== 'boolean'
  ) {
    return undefined;
  }
  return {
    get online() {
      return target.navigator?.onLine !== false;
    },
    subscribe(listener) {
      const online = () => listener(true);
      const offline = () => listener(false);
      target.addEventListener('online', online);
      target.addEventListener('offline', offline);
      return () => {
        target.removeEventListener('online', online);
        target.removeEventListener('offline', offline);
      };
    },
  };
}
