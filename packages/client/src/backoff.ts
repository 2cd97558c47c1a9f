/**
 * Delay before reconnect attempt `attempt` (0 for the first): exponential backoff with full
 * jitter, a random delay in `[0, min(capMs, baseMs × 2^attempt))`. Full jitter spreads the clients
 * of a failed node evenly instead of bringing them back in waves.
 */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: () => number = Math.random,
): number {
  // 2^attempt overflows to Infinity for large attempts, and min() keeps the cap.
  const ceiling = Math.min(capMs, baseMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}
