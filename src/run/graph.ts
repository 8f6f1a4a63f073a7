// The stage graph: edges point from a stage to the stages it reads from (StageNode.upstream).
// Every walk is iterative: a valid spec may chain thousands of stages, deeper than the call stack.

export interface GraphNode {
  id: string;
  upstream: string[];
}

/** A cycle as a list of stage ids (first not repeated), or undefined when the graph is acyclic. */
export function findCycle(nodes: Map<string, GraphNode>): string[] | undefined {
  const state = new Map<string, 1 | 2>(); // 1: on the DFS path, 2: done
  for (const root of nodes.keys()) {
    if (state.has(root)) continue;
    // The DFS path, each entry with the index of the next upstream edge to follow.
    const path: Array<{ id: string; next: number }> = [{ id: root, next: 0 }];
    state.set(root, 1);
    while (path.length) {
      const top = path[path.length - 1]!;
      const ups = nodes.get(top.id)?.upstream ?? [];
      if (top.next >= ups.length) {
        state.set(top.id, 2);
        path.pop();
        continue;
      }
      const up = ups[top.next++]!;
      if (!nodes.has(up)) continue;
      const s = state.get(up);
      if (s === 1) return path.slice(path.findIndex((e) => e.id === up)).map((e) => e.id).reverse();
      if (s === undefined) {
        state.set(up, 1);
        path.push({ id: up, next: 0 });
      }
    }
  }
  return undefined;
}

/** Ids with every stage after all its upstream stages; ties keep spec order. Assumes no cycle. */
export function topoOrder(nodes: Map<string, GraphNode>): string[] {
  const done = new Set<string>();
  const out: string[] = [];
  for (const root of nodes.keys()) {
    if (done.has(root)) continue;
    done.add(root);
    const path: Array<{ id: string; next: number }> = [{ id: root, next: 0 }];
    while (path.length) {
      const top = path[path.length - 1]!;
      const ups = nodes.get(top.id)?.upstream ?? [];
      if (top.next >= ups.length) {
        out.push(top.id);
        path.pop();
        continue;
      }
      const up = ups[top.next++]!;
      if (nodes.has(up) && !done.has(up)) {
        done.add(up);
        path.push({ id: up, next: 0 });
      }
    }
  }
  return out;
}

/** The given stages and everything upstream of them (what must be up to date to run them). */
export function withUpstream(nodes: Map<string, GraphNode>, ids: string[]): Set<string> {
  const out = new Set<string>();
  const todo = [...ids];
  while (todo.length) {
    const id = todo.pop()!;
    if (out.has(id)) continue;
    out.add(id);
    todo.push(...(nodes.get(id)?.upstream ?? []));
  }
  return out;
}
