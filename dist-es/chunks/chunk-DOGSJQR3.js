import {
  RELEASE_STREAM,
  releaseSubject
} from "./chunk-ZEBQZC7Y.js";
import {
  SignedReleaseSchema,
  manifestSha256
} from "./chunk-27MN4SFY.js";

// infra/release/release-log.ts
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
var REV_HEADER = "Upswarm-Rev";
async function lastRelease(jsm, product) {
  let msg;
  try {
    msg = await jsm.streams.getMessage(RELEASE_STREAM, { last_by_subj: releaseSubject(product) });
  } catch (err) {
    if (/no message found|not found|10037/i.test(err.message)) return null;
    throw err;
  }
  if (!msg) return null;
  const release = SignedReleaseSchema.parse(msg.json());
  return { seq: msg.seq, release, manifestSha256: manifestSha256(release.manifest) };
}
async function releaseManager(nc) {
  return jetstreamManager(nc);
}
async function followReleases(nc, product, onRelease) {
  const js = jetstream(nc);
  const consumer = await js.consumers.get(RELEASE_STREAM, {
    filter_subjects: [releaseSubject(product)],
    deliver_policy: DeliverPolicy.LastPerSubject
  });
  const messages = await consumer.consume();
  const closed = (async () => {
    for await (const msg of messages) await onRelease(msg.data, msg.seq);
  })();
  return {
    closed,
    async stop() {
      messages.stop();
      await closed.catch(() => {
      });
    }
  };
}

export {
  REV_HEADER,
  lastRelease,
  releaseManager,
  followReleases
};
