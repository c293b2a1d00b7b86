export { NEWS_CATEGORIES, DEVICES, WINDOW_START, WINDOW_DAYS, SESSION_GAP_SECONDS } from './model.js';
export { type NewsOptions, type NewsLog, generateNews } from './generate.js';
export {
  NEWS_FEATURE_NAMES,
  NUM_NEWS_FEATURES,
  RECENCY_HALF_LIFE_SECONDS,
  type NewsExamples,
  type NewsExampleOptions,
  NewsHistory,
  newsExamples,
  orderByUserTime,
  deviceIndex,
} from './features.js';
export { NewsCatalog, type RequestContext, topCategories } from './catalog.js';
export { accuracy, gather, majorityClassAccuracy, mostReadCategoryAccuracy } from './baselines.js';
export { type NewsData, type PrepareNewsOptions, prepareNews, newsBaselines } from './prepare.js';
