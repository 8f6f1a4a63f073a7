// The stage graph: edges point from a stage to the stages it reads from (StageNode.upstream).

export interface GraphNode {
  id: string;
  upstream: string[];
}

/** A cycle as a list of stage ids (first not repeated), or undefined when the graph is acyclic. */
export function findCycle(nodes: Map<string, GraphNode>): string[] | undefined {
  const state = new Map<string, 1 | 2>(); // 1: on the DFS stack, 2: done
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    state.set(id, 1);
    stack.push(id);
    for (const up of nodes.get(id)?.upstream ?? []) {
      if (!nodes.has(up)) continue;
      const s = state.get(up);
      if (s === 1) return stack.slice(stack.indexOf(up)).reverse();
      if (s === undefined) {
        const c = visit(up);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(id, 2);
    return undefined;
  };
  for (const id of nodes.keys()) {
    if (!state.has(id)) {
      const c = visit(id);
      if (c) return c;
    }
  }
  return undefined;
}

/** Ids with every stage after all its upstream stages; ties keep spec order. Assumes no cycle. */
export function topoOrder(nodes: Map<string, GraphNode>): string[] {
  const done = new Set<string>();
  const out: string[] = [];
  const visit = (id: string): void => {
    if (done.has(id)) return;
    done.add(id);
    for (const up of nodes.get(id)?.upstream ?? []) if (nodes.has(up)) visit(up);
    out.push(id);
  };
  for (const id of nodes.keys()) visit(id);
  return out;
}

/** The given stages and everything upstream of them (what must be up to date to run them). */
export function withUpstream(nodes: Map<string, GraphNode>, ids: string[]): Set<string> {
  const out = new Set<string>();
  const visit = (id: string): void => {
    if (out.has(id)) return;
    out.add(id);
    for (const up of nodes.get(id)?.upstream ?? []) visit(up);
  };
  ids.forEach(visit);
  return out;
}
