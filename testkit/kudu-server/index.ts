// The public API of the Kudu test server.
export { startKuduServer } from './server';
export type { KuduServer, KuduServerOptions, KuduJobsControl, RecordedRequest } from './server';
export type { AuthOptions } from './auth';
export type { FaultSpec, FaultHandle } from './faults';
export { FRONT_END_403 } from './faults';
export type { RunningJob } from './webjobs';
export {
  vfsEtagFromTicks, ticksFromUnixNs, ticksFromUnixMs, jsonDateTimeUtc, timeSpanText, logTimestamp, runIdFromTicks,
  DEFAULT_DATETIME_JSON, UNIX_EPOCH_TICKS,
} from './dotnet';
export { splitArguments } from './job-run';
