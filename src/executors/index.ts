// Executors by name. A stage's `executor:` picks one; command stages always run as processes
// unless sent to a cluster.
import type { ExecutorName, StageNode } from '../spec/model.ts';
import { inlineExecutor } from './inline.ts';
import { processExecutor } from './process.ts';
import type { Executor } from './types.ts';

const executors = new Map<ExecutorName, Executor>([
  ['inline', inlineExecutor],
  ['process', processExecutor],
]);

export function registerExecutor(name: ExecutorName, executor: Executor): void {
  executors.set(name, executor);
}

export function executorFor(node: StageNode): Executor {
  const name: ExecutorName = node.kind === 'command' && node.executor === 'inline' ? 'process' : node.executor;
  const e = executors.get(name);
  if (!e) throw new Error(`no executor named '${name}' is available`);
  return e;
}
