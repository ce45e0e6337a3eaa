// Reading a message's content the way every adapter does. Apart from the request schema so that
// the routing core, and so the workflow bundle, loads no zod (docs/ARCHITECTURE.md).

/** Text of a message's content (text and refusal parts); other parts are dropped (where only text is allowed). */
export function contentText(content: string | ReadonlyArray<{ type: string; text?: string; refusal?: string }> | null | undefined): string {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  return content.map((p) => (p.type === 'text' ? (p.text ?? '') : p.type === 'refusal' ? (p.refusal ?? '') : '')).join('');
}
