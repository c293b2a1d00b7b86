/** `loom recommend`: the top-K news categories for a user of the built-in dataset, and unread articles from them. */
import { applyTransform, numericColumn, topCategories } from '@loom/data';
import { Tensor, noGrad, softmax } from '@loom/tensor-core';
import { helpText, parseFlags, type Flags } from '../args.js';
import { reloadTrainingData } from '../datasets.js';
import { UsageError } from '../errors.js';
import { loadRun } from '../run-dir.js';
import { isCtrRun, recommendCtr } from '../ctr-recommend.js';

export const RECOMMEND_FLAGS: Flags = {
  run: { type: 'string', arg: 'DIR', help: 'a run trained on --dataset news, or with --task ctr on news-clicks (required)' },
  user: { type: 'int', arg: 'ID', min: 0, help: 'a user id of the run\'s dataset (required)' },
  top: { type: 'int', arg: 'K', default: 3, min: 1, help: 'how many categories, and how many articles' },
  json: { type: 'boolean', help: 'print one JSON object' },
};

export const RECOMMEND_HELP = helpText(
  'recommend',
  "Recommends news to a user of the built-in dataset: the model's top-K categories for their\nnext read, with probabilities, and K articles they have not read drawn from those categories.",
  RECOMMEND_FLAGS,
  '\nExample:\n  loom recommend --run runs/news --user 17 --top 3\n',
);

export interface Recommendation {
  user: number;
  categories: Array<{ category: string; probability: number }>;
  articles: Array<{ id: number; category: string }>;
}

/** Recommendations for several users from one loaded run (the CLI command calls it with one). */
export function recommendFor(runDir: string, users: number[], k: number): Recommendation[] {
  const { config, model } = loadRun(runDir);
  if (config.preprocessing.kind !== 'news') {
    throw new UsageError(`--run ${runDir}: recommend needs a run trained on --dataset news; this one was trained on ${config.dataset}`);
  }
  const news = reloadTrainingData(config.preprocessing).news!;
  const { catalog, transform } = news;
  const known = new Set(catalog.users());
  const width = news.width;
  const articleCategory = numericColumn(catalog.articles, 'category');
  return users.map((user) => {
    if (!known.has(user)) {
      const all = catalog.users();
      throw new UsageError(`--user ${user}: no such user with reading history in the built-in dataset (ids ${all[0]}..${all[all.length - 1]})`);
    }
    const x = catalog.featuresFor(user); // (100) raw, as at serving time
    applyTransform(transform, x, width);
    const probs = noGrad(() => softmax(model.forward(new Tensor(x, [1, width])))).data;
    const ranked = topCategories(probs, Math.min(k, probs.length));
    // Round-robin over the ranked categories, most popular unread article of each first, so the
    // K articles span the K categories rather than all coming from the top one.
    const perCategory = ranked.map((c) => catalog.pickUnread(user, [c], k));
    const articles: number[] = [];
    for (let i = 0; articles.length < k && perCategory.some((l) => i < l.length); i++) {
      for (const list of perCategory) if (i < list.length && articles.length < k) articles.push(list[i]!);
    }
    return {
      user,
      categories: ranked.map((c) => ({ category: catalog.categories[c]!, probability: probs[c]! })),
      articles: articles.map((id) => ({ id, category: catalog.categories[articleCategory[id]!]! })),
    };
  });
}

export function recommendCommand(argv: string[], log: (line: string) => void = console.log): Recommendation | null {
  const f = parseFlags('recommend', argv, RECOMMEND_FLAGS);
  if (f.help) {
    log(RECOMMEND_HELP);
    return null;
  }
  if (f.run === undefined) throw new UsageError('loom recommend: --run DIR is required');
  if (f.user === undefined) throw new UsageError('loom recommend: --user ID is required');
  if (isCtrRun(f.run as string)) {
    const rec = recommendCtr(f.run as string, f.user as number, f.top as number);
    if (f.json) console.log(JSON.stringify(rec));
    else {
      log(`user ${rec.user}: last clicks ${rec.history.map((a) => `#${a}`).join(', ')}`);
      for (const a of rec.articles) log(`  #${a.id} (category ${a.category}, subcategory ${a.subcategory}): click probability ${(100 * a.probability).toFixed(2)}%`);
    }
    return null;
  }
  const [rec] = recommendFor(f.run as string, [f.user as number], f.top as number);
  if (f.json) console.log(JSON.stringify(rec));
  else printRecommendation(rec!, log);
  return rec!;
}

export function printRecommendation(rec: Recommendation, log: (line: string) => void): void {
  log(`user ${rec.user}: ${rec.categories.map((c) => `${c.category} ${(100 * c.probability).toFixed(1)}%`).join(', ')}`);
  log(`  unread articles: ${rec.articles.map((a) => `#${a.id} (${a.category})`).join(', ')}`);
}
