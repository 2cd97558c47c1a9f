import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { dirname } from 'node:path';

/**
 * The V8 CPU profiler of this process (what `node --cpu-prof` uses), started and stopped around
 * one scenario so a profile shows that scenario only.
 */
export class Profiler {
  #session: Session | undefined;

  start(): Promise<boolean> {
    const session = new Session();
    session.connect();
    this.#session = session;
    return new Promise((resolve, reject) => {
      session.post('Profiler.enable', (error) => {
        if (error) return reject(error);
        // 250 µs between samples: fine enough for a hot path of a few µs per call.
        session.post('Profiler.setSamplingInterval', { interval: 250 }, () => {
          session.post('Profiler.start', (startError) =>
            startError ? reject(startError) : resolve(true),
          );
        });
      });
    });
  }

  /** Stops and writes the profile (`.cpuprofile`, for Chrome DevTools or `profile-summary`). */
  stop(file: string): Promise<string> {
    const session = this.#session;
    if (session === undefined) return Promise.reject(new Error('not profiling'));
    this.#session = undefined;
    return new Promise((resolve, reject) => {
      session.post('Profiler.stop', (error, result) => {
        session.disconnect();
        if (error) return reject(error);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, JSON.stringify(result.profile));
        resolve(file);
      });
    });
  }
}
