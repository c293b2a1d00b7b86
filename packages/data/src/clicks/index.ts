export * from './model.js';
export { type ClickLogOptions, type ClickChunk, type ClickArticles, ClickLog, generateClickLog } from './generate.js';
export { auc, logLoss, clickBaselines, type ClickBaselines } from './baselines.js';
export { type ClickFile, type ClickFileHeader, writeClickLog, readClickLog } from './file.js';
