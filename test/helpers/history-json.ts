// Workflow histories as JSON files in the format of Temporal's JSON history files (what the SDK's
// historyToJSON writes and the CLI's `temporal workflow show --output json` prints).
//
// The SDK's helpers need one protobufjs 8 shared by @temporalio/common, proto and worker: with a
// copy each ("type must be a Type"), common's protojson does not know proto's types. package.json
// holds protobufjs ^8 as a direct devDependency so that npm installs a single copy for them.
import { historyFromJSON as fromJSON, historyToJSON as toJSON } from '@temporalio/common/lib/proto-utils.js';
import type { temporal } from '@temporalio/proto';

type History = temporal.api.history.v1.IHistory;

/** A history (e.g. from `handle.fetchHistory()`) as the JSON text of a history file. */
export function historyToJSON(history: History): string {
  return JSON.stringify(JSON.parse(toJSON(history)), null, 1) + '\n';
}

/** A history file's parsed JSON as the History that `Worker.runReplayHistories` takes. */
export function historyFromJSON(json: unknown): History {
  if (!Array.isArray((json as History | null)?.events)) throw new TypeError('not a workflow history: no events');
  return fromJSON(json);
}
