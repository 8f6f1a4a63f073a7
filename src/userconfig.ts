// The user's own configuration for this tool: what belongs to a person, not to a project or a
// cache (their signing key, the keys they trust, the salt their secrets are digested with). Never
// inside a workspace, a cache or a remote, all of which can come from someone else.
//
//   $XDG_CONFIG_HOME/rrtn-pipeline/ (default ~/.config/rrtn-pipeline/), mode 0700
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from './diagnostics.ts';
import { isErrno } from './fsutil.ts';

export function configDir(): string {
  const xdg = process.env.XDG_CONFIG_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.config'), 'rrtn-pipeline');
}

/**
 * The text of a file in the config folder, made by `make` on first use: written beside it (0600)
 * and linked into place, so two processes at once end up with one file (the first one's).
 */
export function configFile(name: string, make: () => string): string {
  const dir = configDir();
  const file = join(dir, name);
  const unusable = (e: unknown): never => {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM' || code === 'ENOTDIR') throw new UsageError(`cannot use ${dir} (${code}), where your signing key and secret salt live: set XDG_CONFIG_HOME to a folder of your own`);
    throw e;
  };
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if (!isErrno(e, 'ENOENT')) unusable(e);
  }
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(tmp, make(), { mode: 0o600 });
  } catch (e) {
    unusable(e);
  }
  try {
    linkSync(tmp, file);
  } catch (e) {
    if (!isErrno(e, 'EEXIST')) throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
  return readFileSync(file, 'utf8');
}
