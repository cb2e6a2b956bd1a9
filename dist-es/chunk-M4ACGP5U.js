// infra/nats/names.ts
var RELEASE_STREAM = "UPSWARM_RELEASES";
var releaseSubject = (product) => `upswarm.release.${product}`;
var RELEASE_SUBJECTS = "upswarm.release.>";
var BLOB_BUCKET = "upswarm-blobs";
var ALERT_STREAM = "UPSWARM_ALERTS";
var alertSubject = (product) => `upswarm.alert.${product}`;
var ALERT_SUBJECTS = "upswarm.alert.>";
var PEER_BUCKET = "upswarm-peers";
var unmappedPeerKey = (infoHashHex, peerIdHex) => `ih.${infoHashHex}.${peerIdHex}`;
var productPeerKey = (product, peerIdHex) => `${product}.${peerIdHex}`;
var infoHashKey = (infoHashHex) => `map.${infoHashHex}`;
var PEER_BUCKET_MAX_AGE_MS = 60 * 60 * 1e3;
var serverConsumer = (serverId) => `server-${serverId}`;
var REPO_SERVICE = "upswarm-repo";
var repoSubject = (serverId, op) => `upswarm.repo.${serverId}.${op}`;
var serverHeartbeat = (serverId) => `upswarm.heartbeat.server.${serverId}`;
var SERVER_HEARTBEATS = "upswarm.heartbeat.server.*";
var PROXY_SERVICE = "upswarm-proxy";
var proxySubject = (op) => `upswarm.proxy.${op}`;
var TRACKER_SERVICE = "upswarm-tracker";
var trackerSubject = (op) => `upswarm.tracker.${op}`;
var TRACKER_QUEUE = "upswarm-tracker";
var actorEventSubject = (role, id) => `upswarm.events.${role}.${id}`;

export {
  RELEASE_STREAM,
  releaseSubject,
  RELEASE_SUBJECTS,
  BLOB_BUCKET,
  ALERT_STREAM,
  alertSubject,
  ALERT_SUBJECTS,
  PEER_BUCKET,
  unmappedPeerKey,
  productPeerKey,
  infoHashKey,
  PEER_BUCKET_MAX_AGE_MS,
  serverConsumer,
  REPO_SERVICE,
  repoSubject,
  serverHeartbeat,
  SERVER_HEARTBEATS,
  PROXY_SERVICE,
  proxySubject,
  TRACKER_SERVICE,
  trackerSubject,
  TRACKER_QUEUE,
  actorEventSubject
};
