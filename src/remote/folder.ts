// A remote cache in a plain folder (an NFS mount, a USB disk). Every file is written beside its
// final name and renamed into place after an fsync, so a reader (or a second machine pushing the
// same object) never sees half a file; temp files a killed push left are skipped by listings.
import { constants } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fsyncDir, isErrno, tempName, writeFileAtomic } from '../fsutil.ts';
import { RemoteError, type Listing, type Remote } from './remote.ts';

const TEMP = /\.part-\d+-[0-9a-f]+$/;

export class FolderRemote implements Remote {
  constructor(readonly root: string) {}

  get where(): string {
    return this.root;
  }

  /** Checked once before a transfer: a missing mount is said as such, not as a missing object. */
  async check(): Promise<void> {
    const st = await stat(this.root).catch(() => undefined);
    if (!st?.isDirectory()) throw new RemoteError(`the remote folder ${this.root} does not exist (is it mounted?); create it, or fix the remote with \`pipeline remote add NAME URL\``);
  }

  async list(prefix: string): Promise<Listing> {
    const out: Listing = new Map();
    const walk = async (rel: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(join(this.root, rel), { withFileTypes: true });
      } catch (e) {
        if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR')) return;
        throw e;
      }
      await Promise.all(entries.map(async (e) => {
        const name = `${rel}${e.name}`;
        if (e.isDirectory()) return walk(`${name}/`);
        if (!e.isFile() || TEMP.test(e.name)) return;
        const st = await stat(join(this.root, name)).catch(() => undefined);
        if (st) out.set(name, st.size);
      }));
    };
    await walk(prefix);
    return out;
  }

  async put(name: string, file: string, size: number, onBytes: (n: number) => void): Promise<void> {
    const dest = join(this.root, name);
    const tmp = `${dest}.${tempName('part')}`;
    await mkdir(dirname(dest), { recursive: true });
    try {
      // A reflink where the filesystem has them; a copy otherwise.
      await copyFile(file, tmp, constants.COPYFILE_FICLONE);
      const fh = await open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, dest);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    await fsyncDir(dirname(dest));
    onBytes(size);
  }

  async putBytes(name: string, body: Uint8Array): Promise<void> {
    await writeFileAtomic(join(this.root, name), body);
  }

  async get(name: string, dest: string, onBytes: (n: number) => void): Promise<boolean> {
    try {
      await copyFile(join(this.root, name), dest, constants.COPYFILE_FICLONE);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return false;
      throw e;
    }
    onBytes((await stat(dest)).size);
    return true;
  }

  async getBytes(name: string): Promise<Buffer | undefined> {
    try {
      return await readFile(join(this.root, name));
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return undefined;
      throw e;
    }
  }

  async getRange(name: string, start: number, end: number): Promise<Buffer | undefined> {
    let fh;
    try {
      fh = await open(join(this.root, name), 'r');
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return undefined;
      throw e;
    }
    try {
      const buf = Buffer.alloc(end - start);
      const { bytesRead } = await fh.read(buf, 0, buf.length, start);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  close(): void {}
}
