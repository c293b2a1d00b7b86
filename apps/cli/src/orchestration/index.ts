/**
 * How the CLI runs a training as processes: `loom train --cluster local:S,W` (every process on this
 * machine) and `loom launch` (across machines) both go through here.
 *
 *  - argv.ts — the `loom serve` and `loom worker` command lines, from one TrainingConfig;
 *  - group.ts — the children of a run: start them, read their reports, and turn an exit into a
 *    failure that names who died and how (or drop a killed worker), the root cause first;
 *  - failure.ts — the one message a failed run ends with: the process, what happened, when, and
 *    what to do next (resume from the last checkpoint, or start again);
 *  - reports.ts — the workers' per-epoch JSON lines, gathered by epoch;
 *  - observe.ts — the observer loop: parameters at each epoch's last update, metrics once every
 *    worker has reported, and the final parameters.
 */
export { serverArgv, workerArgv, trainingFromFlags, type TrainingConfig, type ServerPlacement } from './argv.js';
export { TrainingGroup, type GroupEvent, type TrainingGroupOptions } from './group.js';
export { RunFailure, duringEpoch, resumeAdvice, resumeArgv, shellQuote, processLabel, type RunProcess } from './failure.js';
export { EpochReports, parseEpochLine, type WorkerEpochLine } from './reports.js';
export { connectObserver, firstEpochToObserve, membershipOf, observeEpochs, pullFinal, updatesPerEpoch, type ObserveOptions, type ObservedEpoch } from './observe.js';
