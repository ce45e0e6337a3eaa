// Keel's custom search attributes: what an operator filters requests by in the Temporal UI and
// visibility queries. Never prompt or completion text (user data stays out of visibility).
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const KeelModel = defineSearchAttributeKey('KeelModel', SearchAttributeType.KEYWORD);
export const KeelProvider = defineSearchAttributeKey('KeelProvider', SearchAttributeType.KEYWORD);
export const KeelErrorClass = defineSearchAttributeKey('KeelErrorClass', SearchAttributeType.KEYWORD);
export const KeelBatchId = defineSearchAttributeKey('KeelBatchId', SearchAttributeType.KEYWORD);
export const KeelStatus = defineSearchAttributeKey('KeelStatus', SearchAttributeType.KEYWORD);
/** The virtual key's id (never its secret) on its requests, batches and its own entity workflow. */
export const KeelKey = defineSearchAttributeKey('KeelKey', SearchAttributeType.KEYWORD);

export const KEEL_SEARCH_ATTRIBUTES = [KeelModel, KeelProvider, KeelErrorClass, KeelBatchId, KeelStatus, KeelKey];
