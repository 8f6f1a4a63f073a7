// Where remotes are configured: once per workspace (<workspace>/.pipeline/remotes.json) or once per
// cache (<cache>/remotes.json, for a cache several workspaces share), by `pipeline remote add`, never
// in a spec. A workspace's entry wins over the cache's of the same name. Only places are kept
// (URL, endpoint, region): credentials come from the AWS chain at each use.
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { UsageError } from '../diagnostics.ts';
import { isErrno, writeFileAtomic } from '../fsutil.ts';
import { isRecord } from '../records.ts';
import { printable } from '../text.ts';
import { FolderRemote } from './folder.ts';
import { RemoteError, type Remote } from './remote.ts';

export interface RemoteEntry {
  url: string;
  endpoint?: string;
  region?: string;
}

export interface RemoteConfig {
  default?: string;
  remotes: Record<string, RemoteEntry>;
}

export type Scope = 'workspace' | 'cache';

export function configPath(scope: Scope, workspace: string, cacheRoot: string): string {
  return scope === 'workspace' ? join(workspace, '.pipeline', 'remotes.json') : join(cacheRoot, 'remotes.json');
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A remotes file's entry checked as `remote add` checks what it is given; the entry, or why not. */
function checkEntry(name: string, v: unknown): RemoteEntry | string {
  if (!NAME.test(name)) return `'${printable(name).slice(0, 80)}' is not a usable remote name (letters, digits, '.', '_' and '-', starting with a letter or digit)`;
  if (!isRecord(v) || typeof v.url !== 'string' || (v.endpoint !== undefined && typeof v.endpoint !== 'string') || (v.region !== undefined && typeof v.region !== 'string')) return `remote '${name}' is not {"url": ..., "endpoint"?: ..., "region"?: ...}`;
  if (!v.url.startsWith('s3://') && !isAbsolute(v.url)) return `remote '${name}': a folder remote's path must be absolute, got '${printable(v.url).slice(0, 200)}'`;
  try {
    return normalizeEntry(name, v.url, { endpoint: v.endpoint as string | undefined, region: v.region as string | undefined }, '/');
  } catch (e) {
    return `remote '${name}': ${(e as Error).message}`;
  }
}

/**
 * One config file; a damaged one is an error naming it (it is the user's, not engine state to
 * rebuild). Every entry is checked as `remote add` checks it: the file may have been edited by
 * hand, or come with a repository. Names are looked up as own keys only (`constructor` is no remote).
 */
export function readConfig(path: string): RemoteConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return { remotes: {} };
    throw e;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${path} is not valid JSON (${(e as Error).message}): fix it, or remove it and add the remotes again`);
  }
  if (!isRecord(v) || !isRecord(v.remotes) || (v.default !== undefined && typeof v.default !== 'string')) {
    throw new UsageError(`${path} is not a remotes file ({"default": NAME, "remotes": {NAME: {"url": ...}}}): fix it, or remove it and add the remotes again`);
  }
  const remotes: Record<string, RemoteEntry> = {};
  for (const [name, raw] of Object.entries(v.remotes)) {
    const entry = checkEntry(name, raw);
    if (typeof entry === 'string') throw new UsageError(`${path}: ${entry}: fix it, or remove it and add the remote again`);
    remotes[name] = entry;
  }
  if (v.default !== undefined && !Object.hasOwn(remotes, v.default)) throw new UsageError(`${path}: the default remote '${printable(v.default).slice(0, 80)}' is not among its remotes: fix "default", or set it with \`pipeline remote add NAME URL --default\``);
  return { ...(v.default !== undefined ? { default: v.default } : {}), remotes };
}

export async function writeConfig(path: string, config: RemoteConfig): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(config, null, 2)}\n`);
}

/** Checks a remote's URL and makes a folder path absolute (against the workspace). */
export function normalizeEntry(name: string, url: string, opts: { endpoint?: string; region?: string }, workspace: string): RemoteEntry {
  if (!NAME.test(name)) throw new UsageError(`'${name}' is not a usable remote name: letters, digits, '.', '_' and '-', starting with a letter or digit`);
  if (url.startsWith('s3://')) {
    if (/^s3:\/\/[^/]*[@:]/.test(url)) throw new UsageError(`the S3 URL names credentials or a port: give s3://bucket/prefix, the server with --endpoint, and credentials through the AWS environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/credentials)`);
    if (!/^s3:\/\/[a-z0-9][a-z0-9.-]{1,62}(\/.*)?$/.test(url)) throw new UsageError(`'${url}': an S3 bucket name is 3-63 lowercase letters, digits, '.' and '-'`);
    if (opts.endpoint !== undefined) {
      let u: URL;
      try {
        u = new URL(opts.endpoint);
      } catch {
        throw new UsageError(`--endpoint '${opts.endpoint}' is not a URL (http://host:port)`);
      }
      if (u.username || u.password) throw new UsageError('--endpoint must not carry credentials: they come from the AWS environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/credentials)');
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--endpoint '${opts.endpoint}' must be http:// or https://`);
    }
    return { url, ...(opts.endpoint ? { endpoint: opts.endpoint } : {}), ...(opts.region ? { region: opts.region } : {}) };
  }
  if (opts.endpoint || opts.region) throw new UsageError('--endpoint and --region are for s3:// remotes');
  const path = url.startsWith('file://') ? decodeURIComponent(new URL(url).pathname) : url;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) throw new UsageError(`'${url}': a remote is s3://bucket/prefix or a folder`);
  return { url: isAbsolute(path) ? path : resolve(workspace, path) };
}

/** The remote a command uses: `--remote NAME`, else the default one, else the only one configured. */
export function pickRemote(name: string | undefined, workspace: string, cacheRoot: string): { name: string; entry: RemoteEntry } {
  const ws = readConfig(configPath('workspace', workspace, cacheRoot));
  const cache = readConfig(configPath('cache', workspace, cacheRoot));
  const all = { ...cache.remotes, ...ws.remotes };
  const names = Object.keys(all);
  const chosen = name ?? ws.default ?? cache.default ?? (names.length === 1 ? names[0] : undefined);
  if (chosen === undefined) {
    if (!names.length) throw new UsageError('no remote is configured: add one with `pipeline remote add origin s3://BUCKET/PREFIX [--endpoint URL]` or `pipeline remote add origin /shared/folder`');
    throw new UsageError(`several remotes are configured (${names.join(', ')}) and none is the default: name one with --remote, or \`pipeline remote add NAME URL --default\``);
  }
  const entry = Object.hasOwn(all, chosen) ? all[chosen] : undefined;
  if (!entry) throw new UsageError(`no remote '${printable(chosen)}' (configured: ${names.join(', ') || 'none'}; see \`pipeline remote list\`)`);
  return { name: chosen, entry };
}

/** A connection to a configured remote (the S3 client is loaded only when an S3 remote is used). */
export async function openRemote(entry: RemoteEntry): Promise<Remote> {
  if (entry.url.startsWith('s3://')) {
    const { S3Remote, parseS3Url } = await import('./s3.ts');
    return new S3Remote({ ...parseS3Url(entry.url), endpoint: entry.endpoint, region: entry.region });
  }
  const folder = new FolderRemote(entry.url);
  await folder.check().catch((e: unknown) => {
    throw e instanceof RemoteError ? e : new RemoteError(String(e));
  });
  return folder;
}

/** The remote a command names (or the default one), connected; the caller closes it. */
export async function connectRemote(name: string | undefined, workspace: string, cacheRoot: string): Promise<{ name: string; remote: Remote }> {
  const picked = pickRemote(name, workspace, cacheRoot);
  return { name: picked.name, remote: await openRemote(picked.entry) };
}
