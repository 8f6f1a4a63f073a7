// `pipeline dag`: the stage graph as Mermaid (default) or Graphviz dot.
import type { Pipeline } from '../spec/model.ts';

export function renderDag(p: Pipeline, format: 'mermaid' | 'dot'): string {
  const ids = p.order;
  const nid = new Map(ids.map((id, i) => [id, `s${i}`]));
  const label = (id: string) => {
    const n = p.stages.get(id)!;
    return `${id}\\n${n.module ? n.module.rel : 'command'}`;
  };
  const lines: string[] = [];
  if (format === 'dot') {
    lines.push(`digraph "${p.name.replace(/"/g, '\\"')}" {`, '  rankdir=LR;', '  node [shape=box, style=rounded];');
    for (const id of ids) lines.push(`  ${nid.get(id)} [label="${label(id).replace(/"/g, '\\"')}"];`);
    for (const id of ids) for (const u of p.stages.get(id)!.upstream) lines.push(`  ${nid.get(u)} -> ${nid.get(id)};`);
    lines.push('}');
  } else {
    lines.push('flowchart LR');
    for (const id of ids) lines.push(`  ${nid.get(id)}["${label(id).replace(/\\n/g, '<br/>').replace(/"/g, '#quot;')}"]`);
    for (const id of ids) for (const u of p.stages.get(id)!.upstream) lines.push(`  ${nid.get(u)} --> ${nid.get(id)}`);
  }
  return `${lines.join('\n')}\n`;
}
