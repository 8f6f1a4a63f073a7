// Which way a metric is better when the spec does not say: guessed from its name, in any letter
// case (`Loss`, `MSE`, `Val_Time` are lower-is-better as much as `loss`, `mse`, `val_time`), and
// the best row of `exp show` follows that guess.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { metricDirection } from '../src/experiments/collect.ts';

test('metric direction from the name, whatever the case: losses, errors, p-values and times are lower-is-better; scores higher', () => {
  const lower = ['loss', 'Loss', 'LOSS', 'train.Loss', 'val_loss', 'MSE', 'mse', 'Val_MSE', 'RMSE', 'MAE', 'Error', 'error_rate', 'Val_Time', 'TIME', 'seconds', 'Seconds', 'Duration', 'p', 'P', 'p_value', 'test.P_Value', 'err'];
  const higher = ['ccc', 'CCC', 'accuracy', 'Accuracy', 'dev.mean_ccc', 'F1', 'score', 'Pearson', 'epoch', 'step'];
  for (const n of lower) assert.equal(metricDirection(n), 'min', n);
  for (const n of higher) assert.equal(metricDirection(n), 'max', n);
});
