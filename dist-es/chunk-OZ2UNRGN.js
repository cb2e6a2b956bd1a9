// infra/cluster/dht.ts
import createTestnet from "hyperdht/testnet.js";
async function startLocalDht(opts = {}) {
  const testnet = await createTestnet(opts.nodes ?? 3, { host: "127.0.0.1", port: opts.port ?? 0 });
  const first = testnet.bootstrap[0];
  return {
    bootstrap: `${first.host}:${first.port}`,
    close: () => testnet.destroy()
  };
}
function parseBootstrap(value) {
  return (value ?? process.env.UPSWARM_BOOTSTRAP ?? "").split(",").map((s) => s.trim()).filter(Boolean).map((s) => {
    const i = s.lastIndexOf(":");
    return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
  });
}

export {
  startLocalDht,
  parseBootstrap
};
