// Where each of a model's tensors lives in the compiled step's flat buffers, in the order the tfjs
// Model (stages/lib/tf/models.ts) creates its variables: trainable ones in `params` (and `grads`,
// and AdamW's moments), batch-norm running statistics in `running`. Weights move between the two
// paths by name, in the Model's own manifest format, so a checkpoint of either resumes on the other.
import { RESNET14_CHANNELS, resnetConvs } from '../tf/resnet.ts';

export type Backbone = 'small' | 'cnn6' | 'cnn10' | 'cnn14' | 'resnet14';

/** The model, as models.ts's ModelSpec describes it. */
export interface NetModel {
  backbone: Backbone;
  mels: number;
  outputs: number;
  channels?: number[];
  embedding?: number;
  dropout?: number;
  headDropout?: number;
  projector?: number;
}

export interface TensorSlot {
  name: string;
  shape: number[];
  size: number;
  trainable: boolean;
  /** Offset in `params` (trainable) or `running` (statistics). */
  offset: number;
}

export interface Layout {
  tensors: TensorSlot[];
  byName: Map<string, TensorSlot>;
  params: number;
  running: number;
}

/** The block widths, as Model.blocks(). */
export function blocksOf(m: NetModel): number[] {
  if (m.channels) return m.channels;
  switch (m.backbone) {
    case 'small':
      return [16, 32, 64, 128];
    case 'cnn6':
    case 'cnn10':
      return [64, 128, 256, 512];
    case 'cnn14':
      return [64, 128, 256, 512, 1024, 2048];
    case 'resnet14':
      return RESNET14_CHANNELS;
  }
}

/** PANNs' block layouts, as Model.layout(). */
export function cnnLayout(m: NetModel): { kernel: number; convs: 1 | 2 } {
  if (m.backbone === 'cnn6') return { kernel: 5, convs: 1 };
  if (m.backbone === 'small') return { kernel: 3, convs: 1 };
  return { kernel: 3, convs: 2 };
}

export function embeddingSize(m: NetModel): number {
  if (m.embedding && m.backbone !== 'resnet14') return m.embedding;
  const b = blocksOf(m);
  return b[b.length - 1]!;
}

/** Every tensor of the model, in the Model's order, with its place; `extra` (RUWL's s) appended to params. */
export function layoutOf(m: NetModel, extra: Array<{ name: string; size: number }> = []): Layout {
  const tensors: TensorSlot[] = [];
  let params = 0;
  let running = 0;
  // Each tensor starts on a 16-byte boundary, so kernels can read it through vec4 views (the gaps
  // hold zeros, which AdamW keeps at zero).
  const align = (n: number) => Math.ceil(n / 4) * 4;
  const add = (name: string, shape: number[], trainable: boolean) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const offset = align(trainable ? params : running);
    tensors.push({ name, shape, size, trainable, offset });
    if (trainable) params = offset + size;
    else running = offset + size;
  };
  const bn = (name: string, c: number) => {
    add(`${name}.gamma`, [c], true);
    add(`${name}.beta`, [c], true);
    add(`${name}.running_mean`, [c], false);
    add(`${name}.running_var`, [c], false);
  };
  const dense = (name: string, cin: number, cout: number) => {
    add(`${name}.weight`, [cin, cout], true);
    add(`${name}.bias`, [cout], true);
  };
  if (m.backbone === 'resnet14') {
    for (const c of resnetConvs(blocksOf(m))) {
      add(c.name, [c.k, c.k, c.cin, c.cout], true);
      bn(`${c.name}.bn`, c.cout);
    }
  } else {
    const { kernel, convs } = cnnLayout(m);
    bn('bn0', m.mels);
    let cin = 1;
    for (const [b, cout] of blocksOf(m).entries()) {
      add(`block${b}.conv1`, [kernel, kernel, cin, cout], true);
      bn(`block${b}.bn1`, cout);
      if (convs === 2) {
        add(`block${b}.conv2`, [kernel, kernel, cout, cout], true);
        bn(`block${b}.bn2`, cout);
      }
      cin = cout;
    }
    dense('fc1', cin, embeddingSize(m));
  }
  dense('fc_out', embeddingSize(m), m.outputs);
  if (m.projector) {
    dense('proj', embeddingSize(m), m.projector);
    bn('proj.bn', m.projector);
  }
  for (const e of extra) add(e.name, [e.size], true);
  return { tensors, byName: new Map(tensors.map((t) => [t.name, t])), params, running };
}

/** A slot by name (throws on a name the layout lacks: a bug in the network description). */
export function slot(l: Layout, name: string): TensorSlot {
  const s = l.byName.get(name);
  if (!s) throw new Error(`internal: no tensor '${name}' in the layout`);
  return s;
}
