// @loom/data: datasets as named typed-array columns, their loaders (CSV, IDX), preprocessing,
// splits, shards and allocation-free mini-batches, and the built-in news dataset. See README.md.

export { DataError } from './errors.js';
export { Random, hashSeed } from './random.js';
export {
  type Dataset,
  type Column,
  type NumericColumn,
  type CategoricalColumn,
  createDataset,
  isCategorical,
  column,
  numericColumn,
  categoricalColumn,
  take,
  takeColumn,
  toMatrix,
  toLabels,
} from './dataset.js';
export { type ColumnKind, type CsvOptions, type CsvChunkOptions, readCsv, parseCsv, readCsvChunks } from './csv.js';
export { type IdxData, type IdxTensor, type ImageSet, readIdx, parseIdx, encodeIdx, writeIdx, loadIdxImages, loadIdxDataset } from './idx.js';
export {
  type FillStrategy,
  type FillValues,
  fitFill,
  applyFill,
  fillMissing,
  uniqueRows,
  dropDuplicates,
  categoriesOf,
  oneHot,
  type MinMaxTransform,
  type ZScoreTransform,
  type Transform,
  fitMinMax,
  fitZScore,
  applyTransform,
  parseTransform,
} from './preprocess.js';
export { type Split, type SplitOptions, shuffleInPlace, shuffledIndices, split, splitByGroup, groupPart, shard } from './split.js';
export { type Examples, type BatchOptions, type Batch, BatchIterator } from './batches.js';
export * from './news/index.js';
export * from './clicks/index.js';
export { CharVocab, tokenWindows, readText, newsText, splitText, type TokenWindows, type TextSplit } from './text.js';
