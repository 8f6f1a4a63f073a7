// A remote cache in a plain folder (an NFS mount, a USB disk). Every file is written beside its
// final name and renamed into place after an fsync, so a reader (or a second machine pushing the
// same object) never sees half a file; temp files a killed push left are skipped by listings.
// What is read is untrusted (anyone who can write the folder can put anything there): only regular
// files are opened, without following a link and without blocking (a FIFO put where a record was
// would otherwise hang the reader past Ctrl-C), and never more bytes than the caller allows.
import { constants } from 'node:fs';
import { copyFile, mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fsyncDir, isErrno, specialKind, tempName, writeFileAtomic } from '../fsutil.ts';
import { BadObject, RemoteError, type Listing, type Remote } from './remote.ts';

/** What a file being written is named beside its final name (tempName's form), and how listings know it. */
const PART = 'part';
const TEMP = new RegExp(`\\.${PART}-\\d+-[0-9a-f]+$`);

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
    const tmp = `${dest}.${tempName(PART)}`;
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

  /** The file `name` opened for reading if it is a regular file; undefined when absent; BadObject when it is something else. */
  private async openRegular(name: string): Promise<{ fh: FileHandle; size: number } | undefined> {
    let fh: FileHandle;
    try {
      fh = await open(join(this.root, name), constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    } catch (e) {
      if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR')) return undefined;
      if (isErrno(e, 'ELOOP')) throw new BadObject(`${name} on ${this.where} is a symbolic link, not a file: refused`);
      throw e;
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw new BadObject(`${name} on ${this.where} is ${specialKind(st) ?? 'a folder'}, not a file: refused`);
    }
    return { fh, size: st.size };
  }

  async get(name: string, dest: string, onBytes: (n: number) => void, max: number): Promise<boolean> {
    const f = await this.openRegular(name);
    if (!f) return false;
    try {
      if (f.size > max) throw new BadObject(`${name} on ${this.where} holds ${f.size} bytes, more than the ${max} expected: refused`);
      // Copied from the file just checked (its descriptor's own path), not by name again: a name
      // swapped for a FIFO meanwhile is not what gets read. A reflink where the filesystem has them.
      await copyFile(`/proc/self/fd/${f.fh.fd}`, dest, constants.COPYFILE_FICLONE).catch(async () => {
        const out = await open(dest, 'wx');
        try {
          const buf = Buffer.allocUnsafe(1 << 20);
          for (let pos = 0; ; ) {
            const { bytesRead } = await f.fh.read(buf, 0, buf.length, pos);
            if (!bytesRead) break;
            await out.write(buf, 0, bytesRead);
            pos += bytesRead;
          }
        } finally {
          await out.close();
        }
      });
    } finally {
      await f.fh.close();
    }
    const size = (await stat(dest)).size;
    if (size > max) throw new BadObject(`${name} on ${this.where} grew past the ${max} bytes expected while it was read: refused`);
    onBytes(size);
    return true;
  }

  async getBytes(name: string, max: number): Promise<Buffer | undefined> {
    const f = await this.openRegular(name);
    if (!f) return undefined;
    try {
      if (f.size > max) throw new BadObject(`${name} on ${this.where} holds ${f.size} bytes, more than the ${max} it may: refused`);
      // Read up to one byte past the size seen: a file that grows meanwhile is caught, not read without end.
      const buf = Buffer.allocUnsafe(f.size + 1);
      let got = 0;
      for (;;) {
        const { bytesRead } = await f.fh.read(buf, got, buf.length - got, got);
        if (!bytesRead) break;
        got += bytesRead;
        if (got > f.size) throw new BadObject(`${name} on ${this.where} grew while it was read: refused`);
      }
      return buf.subarray(0, got);
    } finally {
      await f.fh.close();
    }
  }

  async getRange(name: string, start: number, end: number): Promise<Buffer | undefined> {
    const f = await this.openRegular(name);
    if (!f) return undefined;
    try {
      const buf = Buffer.alloc(end - start);
      const { bytesRead } = await f.fh.read(buf, 0, buf.length, start);
      return buf.subarray(0, bytesRead);
    } finally {
      await f.fh.close();
    }
  }

  async remove(name: string): Promise<void> {
    await unlink(join(this.root, name)).catch((e: unknown) => {
      if (!isErrno(e, 'ENOENT')) throw e;
    });
  }

  close(): void {}
}
