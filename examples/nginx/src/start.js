// @ts-check
// `pnpm --filter @wscale/example-nginx start`: Redis, three wscale nodes and nginx in front.
// Environment: PORT, HOST, REDIS_URL, REDIS_PORT (see the README). Ctrl-C stops everything.
import { runStack } from '@wscale/example-load-balanced';
import * as balancer from './balancer.js';

await runStack({ balancer });
