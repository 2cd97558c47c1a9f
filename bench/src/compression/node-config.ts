/** How a node is told what to run (JSON in its environment). */
export interface CompressionNodeConfig {
  /** `wscale` or `socketio`. */
  server: 'wscale' | 'socketio';
  deflate: boolean;
  threshold: number;
  node: number;
  redisUrl: string;
}

export const COMPRESSION_ENV = 'WSCALE_BENCH_COMPRESSION';
