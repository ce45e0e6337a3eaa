// Workflow histories as JSON files in the format of Temporal's JSON history files (what the SDK's
// historyToJSON writes and the CLI's `temporal workflow show --output json` prints).
//
// Why not the SDK's historyToJSON/historyFromJSON: in this install they throw "type must be a
// Type". npm gives @temporalio/common, @temporalio/proto and @temporalio/worker a copy of
// protobufjs 8 each (the top-level slot holds protobufjs 7 for @google/genai and
// @grpc/proto-loader), and the protojson of common's copy does not recognise the types of proto's
// copy. The same conversion with the protojson of the copy @temporalio/proto itself uses works in
// that layout and in a deduplicated one alike.
import { createRequire } from 'node:module';
import proto, { type temporal } from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root.js';

type History = temporal.api.history.v1.IHistory;
type ProtoType = { name: string; fromObject(object: unknown): unknown };
interface ProtoJson {
  toJson(type: ProtoType, message: unknown): unknown;
  fromJson(type: ProtoType, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
}

const protoRequire = createRequire(createRequire(import.meta.url).resolve('@temporalio/proto'));
const protojson = protoRequire('protobufjs/ext/protojson') as ProtoJson;
const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): ProtoType }).lookupType('temporal.api.history.v1.History');

/** A history (e.g. from `handle.fetchHistory()`) as the JSON text of a history file. */
export function historyToJSON(history: History): string {
  return JSON.stringify(protojson.toJson(historyType, historyType.fromObject(history)), null, 1) + '\n';
}

/** A history file's parsed JSON as the History that `Worker.runReplayHistories` takes. */
export function historyFromJSON(json: unknown): History {
  if (!Array.isArray((json as History | null)?.events)) throw new TypeError('not a workflow history: no events');
  return protojson.fromJson(historyType, json, { ignoreUnknownFields: true }) as History;
}
