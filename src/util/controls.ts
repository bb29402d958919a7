/**
 * Text from another program made safe to show on one line: every control
 * character but tab written as `\xHH`, so that a record stays one line and
 * the text cannot move the cursor or colour what a reader sees.
 */
export function escapeControls(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
