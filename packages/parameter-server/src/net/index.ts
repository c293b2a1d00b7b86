/** The network parameter server: protocol, key-range shards, server, client and remote worker. */
export { PROTOCOL_VERSION, type ServerStats } from './protocol.js';
export { MAX_HEADER_BYTES, encodeFrame, decodeFrame } from './frame.js';
export { PsError, CheckpointError, ERROR_CODES, type ErrorCode } from './errors.js';
export { shardRange, parseShard, SHARD_ALIGN } from './shards.js';
export { ShardStore, type StoreOptions } from './store.js';
export { ParameterServer, type ServerOptions } from './server.js';
export { PsClient, type ClientOptions, type PushInfo, type PullResult } from './client.js';
export { WsTransport } from './transport.js';
export { joinRun, backoffMs, isConnectionLoss, type JoinOptions } from './membership.js';
export { saveCheckpoint, loadCheckpoint, latestCheckpoint, checkpointRoot, CHECKPOINT_FORMAT, type CheckpointMeta } from './checkpoint.js';
export { trainRemote } from './worker.js';
export type { RemoteWorkerOptions, RemoteEpochReport } from './worker-options.js';
export { createTokenFile, defaultTokenFile, generateToken, readTokenFile, readableByOthers, tokensEqual } from './token.js';
export { RowStore, checkIds, type RowTableSpec, type RowGrad } from './row-store.js';
export { trainCtrRemote, type CtrRemoteOptions } from './ctr-worker.js';
export { denseModel } from './store.js';
export type { Traffic } from './client.js';
export type { RowTableStatsLine } from './protocol.js';
