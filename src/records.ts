// Telling a JSON/YAML mapping from the other values it may hold, shared by the spec compiler
// (parsed YAML), the store (records read back from disk) and `pipeline status` (fingerprint diffs).

/** True for a mapping: an object that is neither null nor an array. */
export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
