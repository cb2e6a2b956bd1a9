import {
  UpswarmError,
  isUpswarmError
} from "./chunk-5DMJPWEV.js";

// actors/cli/output.ts
function printEvent(json, value, human) {
  process.stdout.write(`${json ? JSON.stringify(value) : human()}
`);
}
function printResult(json, value, human) {
  if (json) process.stdout.write(`${JSON.stringify(value, null, 2)}
`);
  else process.stdout.write(`${human()}
`);
}
function reportError(err, json) {
  const e = isUpswarmError(err) ? err : new UpswarmError("UPSWARM_E_IO", err instanceof Error ? err.message : String(err), { cause: err });
  process.stderr.write(`upswarm: ${e.message} [${e.code}]
`);
  if (process.env.UPSWARM_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}
`);
  if (json) process.stdout.write(`${JSON.stringify({ error: e.toJSON() })}
`);
  return e.code === "UPSWARM_E_CONFIG" ? 2 : 1;
}
function progressLine(enabled) {
  const on = enabled && process.stderr.isTTY;
  let last = 0;
  return {
    update(text) {
      if (!on) return;
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      process.stderr.write(`\r\x1B[K${text}`);
    },
    done() {
      if (on) process.stderr.write("\r\x1B[K");
    }
  };
}
function formatBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export {
  printEvent,
  printResult,
  reportError,
  progressLine,
  formatBytes
};
