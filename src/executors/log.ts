// A stage's log file: what the stage prints, kept for its record or for the failure report. A
// write that fails (a full disk: ENOSPC, a quota: EDQUOT) must not end the pipeline with an
// unhandled 'error' event: it is kept, the stage is stopped, and the stage fails saying why.
import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { isDiskFull } from '../fsutil.ts';
import { DiskFull, StageFailure } from './types.ts';

export interface StageLog {
  write(chunk: string | Uint8Array): void;
  /** The first write error, as the failure the stage ends with; undefined while all is well. */
  failure(): StageFailure | undefined;
  close(): Promise<void>;
}

/** Opens `path` for appending; `onError` is told once when a write fails (to stop the stage). */
export function openStageLog(path: string, onError: () => void = () => undefined): StageLog {
  const stream = createWriteStream(path, { flags: 'a' });
  let failure: StageFailure | undefined;
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (failure) return;
    failure = isDiskFull(e)
      ? new DiskFull(`the disk holding the cache is full (${e.code} writing the stage's log ${path}): the stage was stopped; free space there, or move the cache to a larger disk (--cache-dir, PIPELINE_CACHE_DIR)`)
      : new StageFailure(`cannot write the stage's log ${path}: ${e.message}`);
    onError();
  });
  return {
    write: (chunk) => {
      if (!failure && !stream.destroyed) stream.write(chunk);
    },
    failure: () => failure,
    close: async () => {
      if (!stream.destroyed) stream.end();
      await finished(stream).catch(() => undefined);
    },
  };
}
