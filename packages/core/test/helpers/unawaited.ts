/**
 * What a test of sends nobody awaits watches: the process's unhandled rejections (none may
 * happen), and the codes of the failures a logger was told of at `warn`. `stop()` when done.
 */
export function watchUnawaited() {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  const warned: unknown[] = [];
  const logger = {
    debug() {},
    info() {},
    error() {},
    warn: (fields: { code?: string }) => warned.push(fields.code),
  };
  return { unhandled, warned, logger, stop: () => process.off('unhandledRejection', onUnhandled) };
}
