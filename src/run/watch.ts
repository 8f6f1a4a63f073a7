// `pipeline run --watch`: after each run, watch what the stage keys were computed from (the spec,
// each stage's code and the files it imports, the scripts a command names, workspace inputs), and
// run again when one changes: debounced, and a change during a run queues exactly one more run.
// Published outputs and the cache are not watched (a run writes them).
import { existsSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isWithin } from '../paths.ts';
import type { Planner } from './plan.ts';

/** Files and folders a pipeline's stage keys depend on, absolute; outputs and the cache left out. */
export async function watchedPaths(planner: Planner, specAbs: string): Promise<string[]> {
  const p = planner.pipeline;
  const out = new Set<string>([specAbs]);
  for (const node of p.stages.values()) {
    for (const d of node.deps) out.add(join(p.workspace, d));
    const ev = await planner.evaluate(node, new Map(), true).catch(() => undefined);
    for (const label of Object.keys(ev?.fingerprint.code ?? {})) if (!label.startsWith('pipeline:')) out.add(join(p.workspace, label));
  }
  const outs = [...p.stages.values()].flatMap((n) => Object.values(n.outs).map((o) => join(p.workspace, o)));
  const cache = planner.store.root;
  return [...out].filter((f) => !isWithin(cache, f) && !outs.some((o) => f === o || isWithin(o, f))).sort();
}

/**
 * Calls `onChange(path)` for each change under the given paths: a folder is watched whole, a file
 * through its folder (editors replace files by rename, which a watch on the file itself loses), a
 * path that does not exist yet through its nearest existing folder. Returns a function that stops.
 */
export function watchPaths(paths: string[], onChange: (path: string) => void): () => void {
  const watchers: FSWatcher[] = [];
  const byDir = new Map<string, Set<string> | 'all'>();
  for (const p of paths) {
    let dir = p;
    let name: string | undefined;
    if (existsSync(p) && statSync(p).isDirectory()) name = undefined;
    else {
      name = basename(p);
      dir = dirname(p);
      while (!existsSync(dir) && dirname(dir) !== dir) {
        name = basename(dir);
        dir = dirname(dir);
      }
    }
    const cur = byDir.get(dir);
    if (name === undefined) byDir.set(dir, 'all');
    else if (cur !== 'all') byDir.set(dir, (cur ?? new Set()).add(name));
  }
  for (const [dir, names] of byDir) {
    try {
      const w = watch(dir, { recursive: names === 'all', persistent: true }, (_event, file) => {
        const f = file ? String(file) : '';
        if (names === 'all' || names.has(f.split('/')[0]!)) onChange(join(dir, f));
      });
      w.on('error', () => undefined); // a watched folder removed: the next run watches again
      watchers.push(w);
    } catch {
      // cannot watch this one (gone already): the next run's list watches again
    }
  }
  return () => {
    for (const w of watchers) w.close();
  };
}

/**
 * Changes under a set of paths, kept from the moment they are watched: a change while a run is in
 * progress is not lost, it makes the next wait return at once (one more run, however many changes).
 */
export class ChangeWatcher {
  private stop: () => void = () => undefined;
  private readonly seen = new Set<string>();
  /** Every event counts (a path changing twice is still activity): quiet means no new event. */
  private events = 0;
  private wake: (() => void) | undefined;

  /** Watches these paths from now on (replacing the previous set); what was seen is kept. */
  watch(paths: string[]): void {
    this.stop();
    this.stop = watchPaths(paths, (p) => {
      this.seen.add(p);
      this.events++;
      this.wake?.();
    });
  }

  /** Forgets the changes seen so far (a run is about to start and will see them). */
  clear(): void {
    this.seen.clear();
    this.events = 0;
  }

  /**
   * Resolves with the changed paths once there has been a change and then `quietMs` without
   * another (an editor saving several files is one change); undefined when `signal` aborts.
   */
  async next(quietMs: number, signal: AbortSignal): Promise<string[] | undefined> {
    for (;;) {
      if (signal.aborted) return undefined;
      const pending = this.seen.size > 0;
      const before = this.events;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          this.wake = undefined;
          resolve();
        };
        // With changes pending, wait for quiet; otherwise for the first change.
        const timer = pending ? setTimeout(done, quietMs) : undefined;
        this.wake = done;
        signal.addEventListener('abort', done, { once: true });
      });
      if (signal.aborted) return undefined;
      if (pending && this.events === before) return [...this.seen];
    }
  }

  close(): void {
    this.stop();
  }
}
