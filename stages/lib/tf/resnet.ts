// The RRTN authors' ResNet14 twin backbone (EIHW/exvo2-rrtn, models/vmodels.py), as a list of
// convolutions and a forward pass over them. Their "ResNet14" is torchvision's ResNet with BasicBlocks
// [2, 2, 2, 2] (ResNet-18's layout): a one-channel 7x7 stride-2 stem conv + BatchNorm + ReLU, a 3x3
// stride-2 max-pool, four stages of two residual blocks (widths 64/128/256/512; stages 2-4 halve the
// grid in their first block, whose shortcut is a 1x1 stride-2 conv + BatchNorm), global average
// pooling to the 512-d embedding, and a Linear(512, outputs) head: no bn0, no fc1, no dropout.
// Their model sees (batch, 1, mels, frames); ours [batch, frames, mels, 1] (NHWC): every kernel and
// padding is symmetric, so it is the same network with each kernel transposed (the PyTorch parity
// fixture maps the weights that way). Padding is explicit (torch pads both sides; TF's 'same' pads a
// stride-2 window on one side only).
import * as tf from '@tensorflow/tfjs-core';

export const RESNET14_CHANNELS = [64, 128, 256, 512];
const BLOCKS_PER_STAGE = 2;

export interface ResNetConv {
  /** Variable name of the kernel (HWIO); its BatchNorm is `${name}.bn`. */
  name: string;
  k: number;
  cin: number;
  cout: number;
  stride: number;
}

interface Block {
  conv1: ResNetConv;
  conv2: ResNetConv;
  shortcut?: ResNetConv;
}

function blocks(channels: number[]): { stem: ResNetConv; blocks: Block[] } {
  const stem: ResNetConv = { name: 'stem.conv', k: 7, cin: 1, cout: channels[0]!, stride: 2 };
  const out: Block[] = [];
  let cin = channels[0]!;
  channels.forEach((c, s) => {
    for (let j = 0; j < BLOCKS_PER_STAGE; j++) {
      const stride = s > 0 && j === 0 ? 2 : 1;
      const at = `layer${s + 1}.${j}`;
      out.push({
        conv1: { name: `${at}.conv1`, k: 3, cin, cout: c, stride },
        conv2: { name: `${at}.conv2`, k: 3, cin: c, cout: c, stride: 1 },
        ...(stride !== 1 || cin !== c ? { shortcut: { name: `${at}.downsample`, k: 1, cin, cout: c, stride } } : {}),
      });
      cin = c;
    }
  });
  return { stem, blocks: out };
}

/** Every convolution of the backbone, in the order their weights are made. */
export function resnetConvs(channels: number[]): ResNetConv[] {
  const { stem, blocks: bs } = blocks(channels);
  return [stem, ...bs.flatMap((b) => [b.conv1, b.conv2, ...(b.shortcut ? [b.shortcut] : [])])];
}

export interface ResNetOps {
  kernel(name: string): tf.Tensor4D;
  batchNorm(name: string, x: tf.Tensor): tf.Tensor;
}

/** x: [batch, frames, mels, 1] -> the pooled embedding [batch, channels.at(-1)]. */
export function resnetForward(x: tf.Tensor4D, channels: number[], ops: ResNetOps): tf.Tensor2D {
  const conv = (h: tf.Tensor, c: ResNetConv) => ops.batchNorm(`${c.name}.bn`, tf.conv2d(h as tf.Tensor4D, ops.kernel(c.name), c.stride, c.k === 1 ? 'valid' : (c.k - 1) / 2));
  const { stem, blocks: bs } = blocks(channels);
  let h: tf.Tensor = tf.relu(conv(x, stem));
  h = tf.maxPool(h as tf.Tensor4D, 3, 2, 1);
  for (const b of bs) {
    const residual = tf.relu(conv(h, b.conv1));
    const shortcut = b.shortcut ? conv(h, b.shortcut) : h;
    h = tf.relu(tf.add(conv(residual, b.conv2), shortcut));
  }
  return tf.mean(h, [1, 2]) as tf.Tensor2D;
}
