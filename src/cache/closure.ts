// What code a stage module is: the files esbuild compiles into it (its metafile's inputs, hashed as
// the very bytes compiled), the files it reads by its own location (`new URL('./k.wasm',
// import.meta.url)`), and the packages it imports: by version when installed from the registry, by
// content when linked in from a folder (`npm install ../lib`, workspaces), whose version says
// nothing of edits. Nothing is guessed from the source text, so no import form can be missed.
//
// Bundling costs tens of milliseconds, so the list is kept per stage module in the cache
// (`closures/`): a later command checks each listed file's digest through the digest cache (a stat
// each) and bundles again only when one changed (an edit may add an import).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { bundle } from '../bundle.js';
import type { DigestCache } from './digests.ts';
import { codeLabel, ENGINE_VERSION } from './fingerprint.ts';
import { hashBytes, hashJson } from './hash.ts';
import { isRecord } from '../records.ts';
import { CORRUPT, readSealed, sayDropped, writeSealed } from '../fsutil.ts';

export interface CodeClosure {
  /** Code label (codeLabel) -> content digest: the module, every file compiled in, every asset. */
  code: Record<string, string>;
  /** Package -> its version, or `linked:<digest of its files>` for a package linked from a folder. */
  packages: Record<string, string>;
  /** Absolute paths behind `code` (to watch, and to check before a result is committed). */
  files: string[];
  /** The compiled module (output path -> bytes), when this closure was found by bundling. */
  compiled?: Map<string, Uint8Array>;
}

/** What is kept between commands: each file by absolute path with its digest, and the packages. */
interface ClosureRecord {
  engine: string;
  entry: string;
  files: Record<string, string>;
  packages: Record<string, { root: string; linked: boolean }>;
}

function isClosureRecord(v: unknown, entry: string): v is ClosureRecord {
  return isRecord(v) && v.engine === ENGINE_VERSION && v.entry === entry && isRecord(v.files) && Object.hasOwn(v.files, entry) && Object.values(v.files).every((d) => typeof d === 'string') && isRecord(v.packages) && Object.values(v.packages).every((p) => isRecord(p) && typeof p.root === 'string' && typeof p.linked === 'boolean');
}

/** Folders a linked package's content digest leaves out: its own dependencies and its history. */
const NOT_PACKAGE_CONTENT = new Set(['node_modules', '.git']);

export class CodeClosures {
  private readonly memo = new Map<string, Promise<CodeClosure>>();
  private readonly versions = new Map<string, string>();
  /** package.json files whose versions entered a closure (the no-op snapshot checks them). */
  readonly packageFiles = new Set<string>();

  constructor(
    private readonly cacheDir: string,
    private readonly workspace: string,
    private readonly digests: DigestCache,
  ) {}

  /** The closure of a stage module, memoized for this command (its code does not change under us). */
  of(entry: string): Promise<CodeClosure> {
    let c = this.memo.get(entry);
    if (!c) {
      c = this.find(entry);
      this.memo.set(entry, c);
    }
    return c;
  }

  /** Bundles the module now, whatever is kept: a closure that holds its compiled output. */
  async fresh(entry: string): Promise<CodeClosure> {
    const c = await this.bundled(entry);
    this.memo.set(entry, Promise.resolve(c));
    return c;
  }

  private recordPath(entry: string): string {
    return join(this.cacheDir, 'closures', `${createHash('sha256').update(entry).digest('hex').slice(0, 32)}.json`);
  }

  private async find(entry: string): Promise<CodeClosure> {
    const path = this.recordPath(entry);
    const rec = await readSealed<unknown>(path);
    if (rec === CORRUPT || (rec !== undefined && !isRecord(rec))) sayDropped('a corrupt code closure', path);
    else if (rec !== undefined && isClosureRecord(rec, entry)) {
      const code: Record<string, string> = {};
      let same = true;
      for (const [file, digest] of Object.entries(rec.files)) {
        const now = await this.digests.file(file).catch(() => undefined);
        if (now?.digest !== digest) {
          same = false;
          break;
        }
        code[codeLabel(file, this.workspace)] = digest;
      }
      if (same) return { code, packages: await this.packageKeys(rec.packages), files: Object.keys(rec.files) };
    }
    return this.bundled(entry);
  }

  private async bundled(entry: string): Promise<CodeClosure> {
    for (let attempt = 1; ; attempt++) {
      const c = await this.bundleOnce(entry);
      if (c) return c;
      if (attempt === 3) throw new Error(`the code of ${entry} kept changing while it was compiled: try again once it is saved`);
    }
  }

  /**
   * One bundle of the module, or undefined if a file changed between esbuild's read and ours: each
   * file is then taken through the digest cache too, so that the signatures the no-op snapshot
   * and the commit check rely on are those of the very bytes compiled.
   */
  private async bundleOnce(entry: string): Promise<CodeClosure | undefined> {
    const b = await bundle({ stage: entry }, join(this.cacheDir, 'modules'), { splitting: true });
    const files: Record<string, string> = {};
    for (const [file, bytes] of b.sources) {
      files[file] = await hashBytes(bytes);
      if ((await this.digests.file(file)).digest !== files[file]) return undefined;
    }
    for (const asset of b.assets) {
      const d = await this.digests.path(asset);
      if (d.kind !== 'missing') files[asset] = d.digest;
    }
    const packages = Object.fromEntries(b.packages);
    await writeSealed(this.recordPath(entry), { engine: ENGINE_VERSION, entry, files, packages } satisfies ClosureRecord);
    const code = Object.fromEntries(Object.entries(files).map(([f, d]) => [codeLabel(f, this.workspace), d]));
    return { code, packages: await this.packageKeys(packages), files: Object.keys(files), compiled: b.files };
  }

  private async packageKeys(packages: ClosureRecord['packages']): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [name, p] of Object.entries(packages)) out[name] = p.linked ? `linked:${await this.linkedDigest(p.root)}` : this.version(p.root);
    return out;
  }

  private version(root: string): string {
    let v = this.versions.get(root);
    if (v === undefined) {
      const pj = join(root, 'package.json');
      this.packageFiles.add(pj);
      try {
        v = (JSON.parse(readFileSync(pj, 'utf8')) as { version?: string }).version ?? 'unknown';
      } catch {
        v = 'unknown';
      }
      this.versions.set(root, v);
    }
    return v;
  }

  /** A linked package by content: every file but its node_modules and .git, through the digest cache. */
  private async linkedDigest(root: string): Promise<string> {
    const entries: Array<[string, string]> = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const p = join(dir, e.name);
        if (e.isDirectory()) {
          if (!NOT_PACKAGE_CONTENT.has(e.name)) await walk(p);
        } else if (e.isFile()) entries.push([relative(root, p), (await this.digests.file(p)).digest]);
      }
    };
    await walk(root);
    return hashJson(entries);
  }
}
