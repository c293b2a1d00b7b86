/**
 * Click-through-rate prediction on a news click log (@loom/data's generateClickLog), DLRM / Wide &
 * Deep shaped: the user, the article, its category and subcategory, each as a row of an embedding
 * table of dim 32; the user's last clicked articles as the mean of their rows of the article table
 * (an EmbeddingBag sharing it); four dense features through a Linear(4, 32); the six vectors
 * concatenated (192) through an MLP 192 → 128 → 64 → 1; binary cross-entropy on the logit.
 *
 * The tables are not parameters of the model: they live in row-keyed stores (a parameter server's
 * RowTable, in process or across the network), and each step reads only the rows its batch names
 * through StepTables. The model's own parameters are the dense part, trained as any dense model.
 *
 *   B rows of a batch, H history length, D = 32, U unique ids of a table in the step
 */
import { IntTensor, Linear, Module, ReLU, Sequential, Tensor, bceWithLogits, cat, embedding, embeddingBag, type Random } from '@loom/tensor-core';
import type { ClickChunk } from '@loom/data';
import { WorkerError } from './errors.js';
import { rowsOf, shareOf, type Segment, type StepPlan } from './plan.js';
import type { PlannedSchedule, StepBatch } from './schedule.js';
import { StepTables, type TableKeys, type TableSpec } from './tables.js';
import type { Task } from './task.js';

export const CTR_DIM = 32;
/** The tables, by the names their PyTorch module would give them (`user.weight`, …). */
export const CTR_TABLES = ['user', 'article', 'category', 'subcategory'] as const;

/**
 * The columns a CtrSchedule walks: those of @loom/data's ClickChunk (user, article, category,
 * subcategory (B); history (B, H); dense (B, denseWidth); label (B)), or a file read back with readClickLog.
 */
export type CtrColumns = Pick<ClickChunk, 'rows' | 'user' | 'article' | 'category' | 'subcategory' | 'history' | 'dense' | 'label'>;

/** Impressions as the CTR task reads them: a worker's part of one batch, views of CtrColumns. */
export interface CtrBatch extends StepBatch, Omit<CtrColumns, 'rows'> {}

export interface CtrShape {
  historyLength: number;
  denseWidth: number;
}

/** What the model computes from: the step's tables and a batch. */
export interface CtrInput {
  tables: StepTables;
  batch: CtrBatch;
}

/** The dense part of the CTR model; its embedding tables are described by `tables` and live elsewhere. */
export class CtrModel extends Module<CtrInput> {
  readonly dense: Linear;
  readonly mlp: Sequential;
  readonly tables: readonly TableSpec[];
  private offsets = new Int32Array(0);

  constructor(readonly shape: CtrShape, { rng }: { rng?: Random } = {}) {
    super();
    const D = CTR_DIM;
    this.dense = new Linear(shape.denseWidth, D, { rng });
    this.mlp = new Sequential(new Linear(6 * D, 128, { rng }), new ReLU(), new Linear(128, 64, { rng }), new ReLU(), new Linear(64, 1, { rng }));
    this.tables = CTR_TABLES.map((name) => ({ name, dim: D }));
  }

  /** The logits (B, 1). The article table's local ids are the batch's articles, then its histories. */
  forward({ tables, batch: b }: CtrInput): Tensor {
    const B = b.rows;
    const H = this.shape.historyLength;
    const lookup = (name: string, from = 0, count = B) => {
      const t = tables.get(name);
      return { weight: t.weight, ids: new IntTensor(t.local.subarray(from, from + count)) };
    };
    const user = lookup('user');
    const article = lookup('article');
    const history = lookup('article', B, B * H);
    const category = lookup('category');
    const subcategory = lookup('subcategory');
    return this.mlp.forward(
      cat([
        embedding(user.weight, user.ids),
        embedding(article.weight, article.ids),
        embedding(category.weight, category.ids),
        embedding(subcategory.weight, subcategory.ids),
        embeddingBag(history.weight, history.ids, new IntTensor(this.bagOffsets(B, H)), 'mean'),
        this.dense.forward(new Tensor(b.dense, [B, this.shape.denseWidth])),
      ]),
    );
  }

  /** (B) 0, H, 2H, …: every history bag has H ids. Cached: batches have one or two sizes. */
  private bagOffsets(B: number, H: number): Int32Array {
    if (this.offsets.length < B) this.offsets = Int32Array.from({ length: Math.max(B, 2 * this.offsets.length) }, (_, i) => i * H);
    return this.offsets.subarray(0, B);
  }
}

/**
 * The CTR task over `model`: keys are the batch's ids per table (the article table's are the
 * articles, then the histories), the loss is BCE with logits against the clicks.
 */
export function ctrTask(model: CtrModel): Task<CtrBatch> & { tables: StepTables; keys(b: CtrBatch): TableKeys } {
  const tables = new StepTables(model.tables);
  const H = model.shape.historyLength;
  let articleKeys = new Int32Array(0);
  return {
    tables,
    keys(b) {
      const B = b.rows;
      if (articleKeys.length < B * (H + 1)) articleKeys = new Int32Array(B * (H + 1));
      const article = articleKeys.subarray(0, B * (H + 1));
      article.set(b.article.subarray(0, B));
      article.set(b.history.subarray(0, B * H), B);
      return { user: b.user.subarray(0, B), article, category: b.category.subarray(0, B), subcategory: b.subcategory.subarray(0, B) };
    },
    // The model is the one this task was made for; the loop's `model` argument is the same object.
    loss(_model, b) {
      const logits = model.forward({ tables, batch: b });
      return bceWithLogits(logits, new Tensor(b.label.subarray(0, b.rows), [b.rows, 1]));
    },
  };
}

/**
 * Batches of impressions in log order (time order: a click model is trained on the past and
 * judged on the future), each global batch split among workers as GlobalBatchSchedule splits it:
 * worker w of N takes rows [⌊w·B/N⌋, ⌊(w+1)·B/N⌋), or its share under the servers' StepPlan
 * (`share`, ./plan.ts). A part of one contiguous run of impressions is views of the columns, with
 * nothing copied; a part that also holds carried rows is copied into the schedule's own buffers.
 */
export class CtrSchedule implements PlannedSchedule<CtrBatch> {
  readonly batchesPerEpoch: number;
  private readonly part: CtrBatch;
  /** Where a part of several runs of impressions is copied (grown to the largest, then reused). */
  private own: Omit<CtrColumns, 'rows'> & { rows: number };

  constructor(
    private readonly columns: CtrColumns,
    private readonly shape: CtrShape,
    private readonly range: readonly [number, number],
    readonly batchSize: number,
    readonly rank = 0,
    readonly worldSize = 1,
  ) {
    if (!(Number.isInteger(worldSize) && worldSize >= 1 && Number.isInteger(rank) && rank >= 0 && rank < worldSize)) {
      throw new WorkerError('CtrSchedule', `rank ${rank} is not in [0, ${worldSize})`);
    }
    if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new WorkerError('CtrSchedule', `batchSize must be a positive integer, got ${batchSize}`);
    const [lo, hi] = range;
    if (!(Number.isInteger(lo) && Number.isInteger(hi) && 0 <= lo && lo <= hi && hi <= columns.rows)) {
      throw new WorkerError('CtrSchedule', `range [${lo}, ${hi}) is not within the ${columns.rows} rows`);
    }
    this.batchesPerEpoch = Math.ceil((hi - lo) / batchSize);
    const none = new Int32Array(0);
    this.part = { user: none, article: none, category: none, subcategory: none, history: none, dense: new Float32Array(0), label: new Float32Array(0), rows: 0, batchRows: 0, index: 0 };
    this.own = { user: none, article: none, category: none, subcategory: none, history: none, dense: new Float32Array(0), label: new Float32Array(0), rows: 0 };
  }

  *epoch(e: number): Generator<CtrBatch> {
    for (let index = 0; index < this.batchesPerEpoch; index++) yield this.share(e, index, undefined);
  }

  share(e: number, index: number, plan: StepPlan | undefined): CtrBatch {
    const P = this.batchesPerEpoch;
    const fresh = Math.min(this.batchSize, this.range[1] - (this.range[0] + index * this.batchSize));
    const p = this.part;
    if (plan === undefined) {
      this.view(index, Math.floor((this.rank * fresh) / this.worldSize), Math.floor(((this.rank + 1) * fresh) / this.worldSize));
      p.batchRows = fresh;
    } else {
      const segments = shareOf(e * P + index, fresh, plan, plan.live.indexOf(this.rank));
      if (segments.length === 0) this.view(index, 0, 0);
      else if (segments.length === 1) this.view(segments[0]!.step % P, segments[0]!.lo, segments[0]!.hi);
      else this.copy(segments);
      p.batchRows = fresh + rowsOf(plan.carry);
    }
    p.index = index;
    return p;
  }

  /** The part is rows [lo, hi) of batch `index` (of any epoch: every epoch walks the log alike), as views. */
  private view(index: number, lo: number, hi: number): void {
    const start = this.range[0] + index * this.batchSize;
    const a = start + lo, b = start + hi;
    const c = this.columns, p = this.part;
    const H = this.shape.historyLength, W = this.shape.denseWidth;
    p.user = c.user.subarray(a, b);
    p.article = c.article.subarray(a, b);
    p.category = c.category.subarray(a, b);
    p.subcategory = c.subcategory.subarray(a, b);
    p.history = c.history.subarray(a * H, b * H);
    p.dense = c.dense.subarray(a * W, b * W);
    p.label = c.label.subarray(a, b);
    p.rows = b - a;
  }

  /** The part is the rows of `segments`, in order, copied into the schedule's buffers. */
  private copy(segments: readonly Segment[]): void {
    const n = rowsOf(segments);
    const H = this.shape.historyLength, W = this.shape.denseWidth;
    if (this.own.rows < n) {
      this.own = {
        user: new Int32Array(n), article: new Int32Array(n), category: new Int32Array(n), subcategory: new Int32Array(n),
        history: new Int32Array(n * H), dense: new Float32Array(n * W), label: new Float32Array(n), rows: n,
      };
    }
    const c = this.columns, o = this.own;
    let at = 0;
    for (const s of segments) {
      const a = this.range[0] + (s.step % this.batchesPerEpoch) * this.batchSize + s.lo, b = a + s.hi - s.lo;
      o.user.set(c.user.subarray(a, b), at);
      o.article.set(c.article.subarray(a, b), at);
      o.category.set(c.category.subarray(a, b), at);
      o.subcategory.set(c.subcategory.subarray(a, b), at);
      o.history.set(c.history.subarray(a * H, b * H), at * H);
      o.dense.set(c.dense.subarray(a * W, b * W), at * W);
      o.label.set(c.label.subarray(a, b), at);
      at += b - a;
    }
    const p = this.part;
    p.user = o.user.subarray(0, n);
    p.article = o.article.subarray(0, n);
    p.category = o.category.subarray(0, n);
    p.subcategory = o.subcategory.subarray(0, n);
    p.history = o.history.subarray(0, n * H);
    p.dense = o.dense.subarray(0, n * W);
    p.label = o.label.subarray(0, n);
    p.rows = n;
  }
}
