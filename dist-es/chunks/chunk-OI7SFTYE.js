// infra/nats/retry.ts
import { setTimeout as delay } from "node:timers/promises";
async function withRetry(fn, opts = {}) {
  const attempts = opts.attempts ?? 20;
  let wait = opts.initialDelayMs ?? 100;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts || opts.retryable && !opts.retryable(err)) throw err;
      await delay(wait);
      wait = Math.min(wait * 2, opts.maxDelayMs ?? 1e3);
    }
  }
}

export {
  withRetry
};
