// The `pipeline` command line: dispatches to each command. Exit codes: 0 success, 1 a stage failed
// (or a remote refused, lacked or could not be reached),
// 2 bad spec or usage, 70 internal error (one line, the trace in a file), 77 no permission to write
// the cache or workspace, 130 interrupted.
import { UsageError } from '../diagnostics.ts';
import { PACKAGE_VERSION } from '../cache/fingerprint.ts';
import { HELP, help } from './help.ts';
import { cmdRun } from './run.ts';
import { cmdStatus, cmdValidate, cmdDag } from './inspect.ts';
import { cmdGc, cmdVerify } from './cache.ts';
import { cmdExp } from './exp.ts';
import { cmdPlots } from './plots.ts';
import { cmdPull, cmdPush, cmdRemote } from './remote.ts';
import { cmdInit } from './init.ts';
import { reportError } from './errors.ts';

/**
 * A reader that went away (`pipeline exp show | head`): stop quietly, as a Unix tool stopped by
 * SIGPIPE does, not with a stack trace. What a run had committed stays (every write is atomic).
 */
function endQuietlyOnClosedPipe(): void {
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    });
  }
}

export async function main(argv: string[]): Promise<number> {
  endQuietlyOnClosedPipe();
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await cmdRun(rest);
      case 'status':
        return await cmdStatus(rest);
      case 'validate':
        return await cmdValidate(rest);
      case 'dag':
        return await cmdDag(rest);
      case 'gc':
        return await cmdGc(rest);
      case 'verify':
        return await cmdVerify(rest);
      case 'init':
        return cmdInit(rest);
      case 'exp':
        return await cmdExp(rest);
      case 'plots':
        return await cmdPlots(rest);
      case 'remote':
        return await cmdRemote(rest);
      case 'push':
        return await cmdPush(rest);
      case 'pull':
        return await cmdPull(rest);
      case '--version':
      case '-V':
      case 'version':
        process.stdout.write(`${PACKAGE_VERSION}\n`);
        return 0;
      case 'help':
        if (rest[0] && !HELP[rest[0]]) throw new UsageError(`no command '${rest[0]}'\n\n${HELP.main}`);
        return help(rest[0] ?? 'main');
      case undefined:
      case '-h':
      case '--help':
        return help('main');
      default:
        throw new UsageError(`unknown command '${command}'\n\n${HELP.main}`);
    }
  } catch (e) {
    return reportError(e);
  }
}
