/**
 * Turns of the event loop for chains of promises that settle at once
 * (src/util/event-loop-turns.ts): what the reading of Manifests asks for,
 * so that the hashing threads' answers are taken while it goes on.
 */
import { describe, expect, it } from 'vitest';
import { EventLoopTurns } from '../src/util/event-loop-turns.js';

/** Busy for `ms` on this thread. */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/**
 * `chains` chains of `steps` steps, 1 ms each, each step followed by a
 * promise that settles at once; with `turns`, each step first waits as a
 * Manifest's reading does. Resolves with how many times a repeating setImmediate ran
 * while the chains ran.
 */
async function run(chains: number, steps: number, turns?: EventLoopTurns): Promise<number> {
  let ran = 0;
  let going = true;
  const tick = (): void => {
    if (!going) return;
    ran++;
    setImmediate(tick);
  };
  setImmediate(tick);
  const chain = async (): Promise<void> => {
    for (let i = 0; i < steps; i++) {
      if (turns) for (let turn = turns.due(); turn !== undefined; turn = turns.due()) await turn;
      spin(1);
      await Promise.resolve();
    }
  };
  await Promise.all(Array.from({ length: chains }, chain));
  going = false;
  return ran;
}

describe('turns of the event loop', () => {
  it('come while many chains of settled promises run, not only once they end', async () => {
    // Without: 200 ms of work, and the event loop never turns.
    expect(await run(20, 10)).toBe(0);
    // With a turn due every 10 ms: about 20; the bound leaves room for a
    // slow machine.
    expect(await run(20, 10, new EventLoopTurns(10))).toBeGreaterThanOrEqual(5);
  });

  it('come again while the chains that waited for one run on after it', async () => {
    // 100 chains take their first step unbroken (none is due yet), then all
    // wait for one turn at their second. Were they all let on after it,
    // the next 100 ms would pass with no turn; each asks again, so a turn
    // comes every 10 ms.
    expect(await run(100, 2, new EventLoopTurns(10))).toBeGreaterThanOrEqual(5);
  });

  it('cost nothing while none is due: the chain goes on at once', () => {
    const turns = new EventLoopTurns(60_000);
    expect(turns.due()).toBeUndefined();
  });
});
