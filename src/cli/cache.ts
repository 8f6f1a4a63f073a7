// Commands on the cache itself: `gc` and `verify`.
import { collectGarbage, formatSize, parseSize } from '../cache/gc.ts';
import { UsageError } from '../diagnostics.ts';
import { dropAllSnapshots } from '../cache/snapshot.ts';
import { acquireExclusive } from '../cache/lock.ts';
import { parseDuration } from '../spec/duration.ts';
import { parse, openWorkspace, sayWaiting } from './args.ts';
import { help } from './help.ts';

export async function cmdGc(argv: string[]): Promise<number> {
  const { values } = parse('gc', argv, { 'dry-run': { type: 'boolean', short: 'n' }, 'max-size': { type: 'string' }, 'forget-after': { type: 'string' } });
  if (values.help) return help('gc');
  let maxSize: number | undefined;
  try {
    maxSize = values['max-size'] === undefined ? undefined : parseSize(values['max-size'] as string);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const forgetAfter = values['forget-after'] as string | undefined;
  const forgetAfterMs = forgetAfter === undefined ? undefined : /^0+$/.test(forgetAfter) ? 0 : parseDuration(forgetAfter);
  if (forgetAfter !== undefined && forgetAfterMs === undefined) throw new UsageError(`--forget-after: bad duration '${forgetAfter}' (e.g. 14d, 12h, 0)`);
  const env = await openWorkspace(values);
  const lock = await acquireExclusive(env.store.root, 'pipeline gc', { onWait: sayWaiting });
  try {
    const dryRun = !!values['dry-run'];
    const r = await collectGarbage(env.store, { dryRun, maxSize, forgetAfterMs });
    await env.digests.prune();
    await env.digests.save();
    for (const n of r.notes) process.stderr.write(`gc: ${n}\n`);
    if (dryRun) for (const x of r.removed) process.stdout.write(`would remove ${x.what}, ${formatSize(x.bytes)}: ${x.why}\n`);
    const verb = dryRun ? 'would remove' : 'removed';
    process.stdout.write(`gc: ${verb} ${r.runsRemoved} runs and ${r.objectsRemoved} objects (${formatSize(r.bytesFreed)} in all); ${formatSize(r.bytesKept)} kept\n`);
    return 0;
  } finally {
    await lock.release();
  }
}

export async function cmdVerify(argv: string[]): Promise<number> {
  const { values } = parse('verify', argv, {});
  if (values.help) return help('verify');
  const env = await openWorkspace(values);
  const lock = await acquireExclusive(env.store.root, 'pipeline verify', { onWait: sayWaiting });
  try {
    let last = 0;
    const r = await env.store.verifyObjects((done, total) => {
      if (Date.now() - last < 2000) return;
      last = Date.now();
      process.stderr.write(`verify: ${done} of ${total} objects\n`);
    });
    await dropAllSnapshots(env.store);
    process.stdout.write(`verify: ${r.checked} objects checked, ${r.corrupt.length} corrupt${r.corrupt.length ? ` and removed (the stages that wrote them rerun on the next run): ${r.corrupt.slice(0, 5).join(', ')}${r.corrupt.length > 5 ? ', ...' : ''}` : ''}\n`);
    return r.corrupt.length ? 1 : 0;
  } finally {
    await lock.release();
  }
}
