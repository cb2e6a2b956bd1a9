// infra/errors.ts
var UpswarmError = class extends Error {
  name = "UpswarmError";
  code;
  details;
  constructor(code, message, options = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }
  toJSON() {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }
};
function isUpswarmError(err, code) {
  return err instanceof UpswarmError && (code === void 0 || err.code === code);
}
function toUpswarmError(err, code, context) {
  if (err instanceof UpswarmError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new UpswarmError(code, `${context}: ${msg}`, { cause: err });
}
function errorMessage(err) {
  return err instanceof Error ? err.message : String(err);
}

export {
  UpswarmError,
  isUpswarmError,
  toUpswarmError,
  errorMessage
};
