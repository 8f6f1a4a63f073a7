// Views: outputs as stages read them, built from objects by hardlink (views/<key>/<d>/<output>,
// <d> the start of the output's digest, so a forced rerun never replaces a view in use), checked
// by stat against what the run stored; and copies of outputs published into a workspace, swapped
// in by rename so a path is never seen half-written.
import { chmod, copyFile, constants, mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { lstatSync } from 'node:fs';
import type { CachedRun, OutputDigest } from './entries.ts';
import { objectProblem, type ObjectStore } from './objects.ts';
import { exists, fsyncDir, linkOrCopy, listFiles, readdirIfExists, tempName } from '../fsutil.ts';

export class Views {
  /** `tempDir`: where a view is built before it is renamed in (the same filesystem). */
  constructor(
    readonly root: string,
    private readonly objects: ObjectStore,
    private readonly tempDir: () => string,
  ) {}

  /** Every view of a run's outputs (views/<key>/). */
  viewFolder(key: string): string {
    return join(this.root, 'views', key);
  }

  /**
   * Where downstream stages read a run's output: views/<key>/<digest>/<output>. Named by content
   * too, so a forced rerun that writes other bytes under the same key makes a view of its own,
   * and one that writes the same bytes finds its view there: a view another run is reading is
   * never replaced under it (gc removes those no record uses).
   */
  viewPath(record: Pick<CachedRun, 'key' | 'outputs'>, output: string): string {
    const digest = record.outputs[output]?.digest ?? 'none';
    return join(this.root, 'views', record.key, digest.slice(0, 16), output);
  }

  /** The path downstream stages read an output from, rebuilt from objects if the view is gone. */
  async ensureView(record: CachedRun, output: string): Promise<string> {
    const p = this.viewPath(record, output);
    const out = record.outputs[output];
    if (!out) throw new Error(`run ${record.key} has no output '${output}'`);
    if (await exists(p)) {
      if (!(await this.viewProblems(record, output)).length) return p;
      await rm(p, { recursive: true, force: true }); // damaged or changed: rebuilt from the objects
    }
    const tmp = join(this.tempDir(), tempName('view'));
    await this.materializeInto(out, tmp);
    await mkdir(dirname(p), { recursive: true });
    await rename(tmp, p).catch(async (e) => {
      await rm(tmp, { recursive: true, force: true });
      if (!(await exists(p))) throw e;
    });
    return p;
  }

  /**
   * How a view of an output differs from what the run stored: files added, missing, or changed
   * (by stat: kind, size, the objects' mtime stamp). Empty when it is intact.
   */
  async viewProblems(record: CachedRun, output: string): Promise<string[]> {
    const out = record.outputs[output];
    const p = this.viewPath(record, output);
    const files = out && (await this.objects.outputFiles(out));
    if (!files) return [`${output}: the cache lost its file list`];
    const problems: string[] = [];
    if (out.kind === 'file') {
      const why = objectProblem(p, out.size);
      return why ? [`${output}: ${why}`] : [];
    }
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st?.isDirectory()) return [`${output}: ${st ? 'not a folder' : 'missing'}`];
    const want = new Map(files.map(([f, , size]) => [f, size]));
    for (const f of await listFiles(p, undefined, { followLinks: false })) {
      const size = want.get(f);
      if (size === undefined) problems.push(`${output}/${f}: added`);
      else {
        const why = objectProblem(join(p, f), size);
        if (why) problems.push(`${output}/${f}: ${why}`);
        want.delete(f);
      }
    }
    for (const f of want.keys()) problems.push(`${output}/${f}: removed`);
    return problems;
  }

  /**
   * After a stage ran: if it wrote into an output of another stage it read, that view and every
   * object it changed are dropped (their producer reruns), and the changes are returned.
   */
  async dropWrittenView(record: CachedRun, output: string): Promise<string[]> {
    const problems = await this.viewProblems(record, output);
    if (!problems.length) return [];
    const out = record.outputs[output]!;
    for (const [, d, size] of (await this.objects.outputFiles(out)) ?? []) {
      const obj = this.objects.objectPath(d);
      const why = objectProblem(obj, size);
      if (why && why !== 'missing') await rm(obj, { recursive: true, force: true });
    }
    await rm(this.viewPath(record, output), { recursive: true, force: true });
    return problems;
  }

  /**
   * Writes an output at `dest` (which must not exist): as hardlinks of its objects (views in the
   * cache), or as copies (`copy`: workspace outputs, so an edit there never reaches the cache;
   * a reflink where the filesystem has them, so no bytes are copied).
   */
  async materializeInto(out: OutputDigest, dest: string, copy = false): Promise<void> {
    const files = await this.objects.outputFiles(out);
    if (!files) throw new Error(`the cache lost the file list of output ${out.digest}; run \`pipeline run --force\` on the stage`);
    if (out.kind === 'dir') await mkdir(dest, { recursive: true });
    for (const [rel, d] of files) {
      const target = rel ? join(dest, rel) : dest;
      if (!copy) await linkOrCopy(this.objects.objectPath(d), target);
      else {
        await mkdir(dirname(target), { recursive: true });
        await copyFile(this.objects.objectPath(d), target, constants.COPYFILE_FICLONE);
        await chmod(target, 0o644);
      }
    }
  }

  /**
   * Makes a workspace path hold an output (a copy, see materializeInto): built beside it, then
   * swapped in by rename, so the path is never seen half-written.
   */
  async publish(out: OutputDigest, dest: string): Promise<void> {
    const tmp = join(dirname(dest), `.${basename(dest)}.${tempName('new')}`);
    await mkdir(dirname(dest), { recursive: true });
    // What a run killed half-way through a publish left beside it (runs hold the lock: none is live).
    for (const f of await readdirIfExists(dirname(dest))) {
      if (f.startsWith(`.${basename(dest)}.new-`) || f.startsWith(`.${basename(dest)}.old-`)) await rm(join(dirname(dest), f), { recursive: true, force: true });
    }
    await this.materializeInto(out, tmp, true);
    if (out.kind === 'dir' && (await exists(dest))) {
      const old = join(dirname(dest), `.${basename(dest)}.${tempName('old')}`);
      await rename(dest, old);
      // If the new folder cannot go in, the old one goes back: the path is never left empty.
      await rename(tmp, dest).catch(async (e: unknown) => {
        await rename(old, dest);
        throw e;
      });
      await rm(old, { recursive: true, force: true });
    } else {
      if (out.kind === 'file' && (await stat(dest).catch(() => undefined))?.isDirectory()) await rm(dest, { recursive: true });
      await rename(tmp, dest);
    }
    await fsyncDir(dirname(dest));
  }

  /**
   * gc, under the cache lock: views of a kept run that its record no longer names (the bytes of a
   * forced rerun before this one). Returns how many were removed.
   */
  async pruneViews(record: CachedRun): Promise<number> {
    const keep = new Set(Object.values(record.outputs).map((o) => o.digest.slice(0, 16)));
    let n = 0;
    for (const d of await readdirIfExists(this.viewFolder(record.key))) {
      if (keep.has(d)) continue;
      await rm(join(this.viewFolder(record.key), d), { recursive: true, force: true });
      n++;
    }
    return n;
  }
}
