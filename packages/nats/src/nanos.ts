/** Milliseconds as the nanoseconds JetStream configurations use. */
export function nanos(ms: number): number {
  return Math.round(ms * 1_000_000);
}
