import { createRequire } from 'node:module';
import {
  HistoryError,
  ProtocolError,
  UpgradeRejectedError,
  WscaleError,
  type WscaleErrorCode,
} from '@wscale/core';
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster } from './helpers/nodes.js';
import { upgradeStatus } from './helpers/raw-socket.js';

/**
 * The package ships as ES modules and as CommonJS, and one application may load both: an ES module
 * server whose hook `require`s wscale. These tests hold the CommonJS build (`pnpm build` wrote it
 * in `packages/core/dist`) against the sources, which the other tests run.
 */
const require = createRequire(import.meta.url);
type Errors = Record<string, new (...args: never[]) => Error & { code: WscaleErrorCode }>;
const commonJs = (entry = '@wscale/core') => require(entry) as Errors;

const cluster = new TestCluster();
afterEach(() => cluster.closeAll());

describe('errors of both builds', () => {
  it('instanceof holds for an error of either build, by class', () => {
    const { UpgradeRejectedError: Rejected, HistoryError: Failed, WscaleError: Base } = commonJs();
    expect(Rejected).not.toBe(UpgradeRejectedError);
    const fromCommonJs = new Rejected!();
    expect(fromCommonJs).toBeInstanceOf(UpgradeRejectedError);
    expect(fromCommonJs).toBeInstanceOf(WscaleError);
    expect(fromCommonJs).toBeInstanceOf(Error);
    expect(fromCommonJs).not.toBeInstanceOf(HistoryError);
    const fromEsm = new HistoryError('read failed');
    expect(fromEsm).toBeInstanceOf(Failed!);
    expect(fromEsm).toBeInstanceOf(Base!);
    expect(fromEsm).not.toBeInstanceOf(Rejected!);
  });

  it('every error class of either build is named as it is exported, and so are its errors', async () => {
    const esm = (await import(new URL('../dist/index.js', import.meta.url).href)) as Errors;
    for (const build of [commonJs(), esm]) {
      const classes = Object.entries(build).filter(
        ([, value]) => typeof value === 'function' && value.prototype instanceof Error,
      );
      expect(classes.length).toBeGreaterThan(10);
      for (const [name, type] of classes) expect(type.name).toBe(name);
      expect(new build.HistoryError!('read failed' as never).name).toBe('HistoryError');
      expect(String(new build.InvalidArgumentError!('bad' as never))).toBe(
        'InvalidArgumentError: bad',
      );
    }
  });

  it('the CommonJS entries share one copy of each class', () => {
    expect(commonJs('@wscale/core/protocol').ProtocolError).toBe(commonJs().ProtocolError);
    const decoded = (() => {
      try {
        const protocol = require('@wscale/core/protocol') as typeof import('@wscale/core/protocol');
        protocol.decodeServerFrame('{');
      } catch (error) {
        return error;
      }
    })();
    expect(decoded).toBeInstanceOf(ProtocolError);
    expect(decoded).toBeInstanceOf(commonJs().WscaleError!);
  });

  it('an error that only looks like one, or a parent of an application subclass, is not one', () => {
    const lookalike = Object.assign(new Error('no'), { code: 'UPGRADE_REJECTED' });
    expect(lookalike).not.toBeInstanceOf(UpgradeRejectedError);
    expect(lookalike).not.toBeInstanceOf(WscaleError);
    class Banned extends UpgradeRejectedError {}
    expect(new Banned(403)).toBeInstanceOf(Banned);
    expect(new Banned(403)).toBeInstanceOf(UpgradeRejectedError);
    expect(new UpgradeRejectedError(403)).not.toBeInstanceOf(Banned);
  });

  it('an authenticate hook that requires wscale refuses an upgrade with its status', async () => {
    const { UpgradeRejectedError: Rejected } = commonJs();
    const [node] = await cluster.start(1, {
      authenticate: () => {
        throw new (Rejected as typeof UpgradeRejectedError)(403);
      },
    });
    const errors: unknown[] = [];
    node!.on('error', (error) => errors.push(error));
    expect(await upgradeStatus(node!.address()!.port)).toBe(403);
    expect(errors).toEqual([]);
  });
});
