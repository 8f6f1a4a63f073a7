// Text that came from elsewhere (a record fetched from a remote, a metric's name, an experiment's
// name) made safe to print: a terminal acts on control characters (ESC starts the sequences that
// move the cursor, recolour, retitle the window or rewrite lines already printed), so a hostile
// record could otherwise draw a fake row in a table. Each is shown as a visible escape instead.

// C0 controls but tab, DEL, and the C1 range (0x9b alone is a CSI on many terminals); also the
// Unicode line and paragraph separators and the bidirectional overrides that reorder what is shown.
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `s` with every control character written as a visible \u escape (tabs kept). */
export function printable(s: string): string {
  return s.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** True when `s` holds a character printable() would escape. */
export function hasControl(s: string): boolean {
  CONTROL.lastIndex = 0;
  const r = CONTROL.test(s);
  CONTROL.lastIndex = 0;
  return r;
}

/** True when any string in a JSON value (keys included) holds a control character. */
export function hasControlDeep(v: unknown): boolean {
  if (typeof v === 'string') return hasControl(v);
  if (Array.isArray(v)) return v.some(hasControlDeep);
  if (v && typeof v === 'object') return Object.entries(v).some(([k, x]) => hasControl(k) || hasControlDeep(x));
  return false;
}
