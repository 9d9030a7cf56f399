/**
 * An error a user sees: a stable code (what tests assert and users search for),
 * a message naming what was wrong, and a hint saying what to do.
 */
export class KbxError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }

  format(): string {
    return `kbx: error [${this.code}]: ${this.message}${this.hint ? `\nhint: ${this.hint}` : ''}`;
  }
}
