import {
  withRetry
} from "./chunk-OI7SFTYE.js";
import {
  ALERT_STREAM,
  ALERT_SUBJECTS,
  BLOB_BUCKET,
  RELEASE_STREAM,
  RELEASE_SUBJECTS
} from "./chunk-ZEBQZC7Y.js";

// infra/nats/resources.ts
import { jetstreamManager, DiscardPolicy, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm, setSha256Backend } from "@nats-io/obj";
setSha256Backend("native");
var DUPLICATE_WINDOW_NS = 24 * 60 * 60 * 1e9;
async function clusterReplicas(nc) {
  const configured = Number(process.env.UPSWARM_REPLICAS);
  if (Number.isInteger(configured) && configured > 0) return configured;
  const info = nc.info;
  const members = info?.connect_urls?.length ?? 1;
  return Math.max(1, Math.min(3, members));
}
async function ensureReleaseStream(jsm, replicas) {
  await ensureStream(jsm, {
    name: RELEASE_STREAM,
    subjects: [RELEASE_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: DUPLICATE_WINDOW_NS,
    max_msg_size: 8 * 1024 * 1024,
    discard: DiscardPolicy.New,
    deny_delete: true,
    deny_purge: true
  });
}
async function ensureAlertStream(jsm, replicas) {
  await ensureStream(jsm, {
    name: ALERT_STREAM,
    subjects: [ALERT_SUBJECTS],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: DUPLICATE_WINDOW_NS,
    max_age: 90 * 24 * 60 * 60 * 1e9
  });
}
async function ensureStream(jsm, config) {
  try {
    await jsm.streams.info(config.name);
  } catch {
    try {
      await jsm.streams.add(config);
    } catch (err) {
      await jsm.streams.info(config.name).catch(() => {
        throw err;
      });
    }
  }
}
async function openBlobStore(nc, replicas) {
  const objm = new Objm(nc);
  return objm.create(BLOB_BUCKET, { replicas, storage: StorageType.File });
}
async function ensureResources(nc, replicas) {
  const r = replicas ?? await clusterReplicas(nc);
  return withRetry(async () => {
    const jsm = await jetstreamManager(nc);
    await ensureReleaseStream(jsm, r);
    await ensureAlertStream(jsm, r);
    await openBlobStore(nc, r);
    return { replicas: r };
  }, { attempts: 40, maxDelayMs: 500 });
}

export {
  openBlobStore,
  ensureResources
};
