import type { CompressionResults } from '../compression/compression-scenario.js';
import type { CapacityRound } from './capacity-scenario.js';
import type { Sizes } from './config.js';
import type { Machine } from './machine.js';
import type { ChurnRound, FanoutRound, IdleRound, ScaleRound } from './scenarios.js';
import type { SoakRound } from './soak-scenario.js';
import type { StormRound } from './storm-scenario.js';

/** Everything one run measured; written as `benchmarks/results.json`. */
export interface Results {
  version: 1;
  meta: {
    startedAt: string;
    durationMs: number;
    smoke: boolean;
    sizes: Sizes;
    machine: Machine;
    brokers: Record<string, string | undefined>;
    packages: Record<string, string>;
    command: string;
    /** How busy the machine was: other work on it disturbs the numbers. */
    load?: { loadavgStart: number; loadavgEnd: number; busyPercent: number };
  };
  implementations: Array<{
    id: string;
    label: string;
    available: boolean;
    reason?: string;
    fanout: boolean;
    idle: boolean;
    experimental?: boolean;
    churn?: boolean;
    soak?: boolean;
    scale?: boolean;
    storm?: boolean;
    capacity?: boolean;
  }>;
  fanout: Record<string, FanoutRound[]>;
  idle: Record<string, IdleRound[]>;
  /** Absent in results written before the churn scenario existed. */
  churn?: Record<string, ChurnRound[]>;
  /** Absent in results written before the churn soak existed. */
  soak?: Record<string, SoakRound[]>;
  /** Absent in results written before the direct-scaling scenario existed. */
  scale?: Record<string, ScaleRound[]>;
  /** Absent in results written before the resume storm existed. */
  storm?: Record<string, StormRound[]>;
  /** Most connections across nodes; absent in results written before it existed. */
  capacity?: Record<string, CapacityRound[]>;
  /** The compression scenario (its own contenders); absent when it did not run. */
  compression?: CompressionResults;
  errors: Array<{ implementation: string; scenario: string; round: number; message: string }>;
}
