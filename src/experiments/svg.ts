// Vega-Lite charts rendered to SVG text in Node, at build time, as DVC's plots are: the pages that
// hold them need no script and no network. No canvas: text is measured by estimate.
export type VlSpec = Record<string, unknown>;

export async function renderSvg(spec: VlSpec): Promise<string> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(vl.compile(spec as never).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Text for HTML element content. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
