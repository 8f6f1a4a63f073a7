// Progress of a transfer: files and bytes done of the total, and the rate. On a terminal, one line
// redrawn at most 10 times a second; elsewhere (pipes, CI), a line every 2 s and one at the end;
// or handed to a callback (a run's stage line shows it).

/** Where progress goes: a stream, or a function given the line and the fraction done. */
export type ProgressSink = NodeJS.WriteStream | ((text: string, fraction: number) => void);

export class Meter {
  private bytes = 0;
  private files = 0;
  private readonly t0 = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private readonly tty: boolean;

  constructor(
    private readonly verb: string,
    private totalFiles: number,
    private totalBytes: number,
    private readonly out: ProgressSink = process.stderr,
  ) {
    this.tty = typeof out !== 'function' && !!out.isTTY && !process.env.CI;
    if (totalFiles) this.startTimer();
  }

  private startTimer(): void {
    // unref: a transfer that ends without end() (an error on the way) must not keep the process up.
    this.timer ??= setInterval(() => this.draw(false), this.tty ? 100 : 2000).unref();
  }

  /** More to move, found on the way (a pull learns what a run needs once its record arrives). */
  grow(files: number, bytes: number): void {
    this.totalFiles += files;
    this.totalBytes += bytes;
    if (this.totalFiles) this.startTimer();
  }

  addBytes(n: number): void {
    this.bytes += n;
  }

  fileDone(): void {
    this.files++;
  }

  /** Bytes a second so far. */
  get rate(): number {
    return this.bytes / Math.max(1e-3, (Date.now() - this.t0) / 1000);
  }

  private line(withPercent = true): string {
    const pct = this.totalBytes && withPercent ? ` ${Math.floor((100 * this.bytes) / this.totalBytes)}%` : '';
    return `${this.verb}: ${this.files}/${this.totalFiles} files, ${formatBytes(this.bytes)} of ${formatBytes(this.totalBytes)}${pct}, ${formatBytes(this.rate)}/s`;
  }

  private draw(last: boolean): void {
    if (typeof this.out === 'function') this.out(this.line(false), this.totalBytes ? this.bytes / this.totalBytes : 1);
    else if (this.tty) this.out.write(`\r\x1b[2K${this.line()}${last ? '\n' : ''}`);
    else this.out.write(`${this.line()}\n`);
  }

  /** The last line (when there was anything to move). */
  end(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.totalFiles) this.draw(true);
    this.timer = undefined;
  }
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}
