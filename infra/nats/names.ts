// Every NATS subject, stream, bucket, consumer and service name of upswarm, in one place.
// Operators use these by hand (`nats stream ls`, `nats consumer report`, `nats micro ls`):
// they are stable and documented in docs/ops.md.

/** Release stream: one subject per product, each message one signed release manifest. */
export const RELEASE_STREAM = 'UPSWARM_RELEASES'
export const releaseSubject = (product: string): string => `upswarm.release.${product}`
export const RELEASE_SUBJECTS = 'upswarm.release.>'
/**
 * What the stream stored, republished by the server with its `Nats-Sequence` header: clients
 * follow releases on these with a plain subscription, so a fleet holds no consumer state and
 * never sees a publish the stream refused.
 */
export const releasedSubject = (product: string): string => `upswarm.released.${product}`
export const RELEASED_SUBJECTS = 'upswarm.released.>'
/**
 * A mirror of the release stream (same sequences) for readers that scan it with a consumer of
 * their own: the publisher's feed and history scans. Its consumers are all ephemeral, so a role
 * may be given consumers there while no role but a server touches a consumer of the release
 * stream, where each server's durable consumer lives (issue 10).
 */
export const RELEASE_READ_STREAM = 'UPSWARM_RELEASES_READ'

/**
 * Root of trust (issue 10 item 7, docs/formats.md §1.8): every root version ever signed, kept
 * forever (deny_delete, deny_purge). Only the root holder's admin identity appends.
 */
export const META_STREAM = 'UPSWARM_META'
export const ROOT_SUBJECT = 'upswarm.meta.root'
export const META_SUBJECTS = 'upswarm.meta.>'
/** Format-2 release documents of a product (docs/formats.md §1.8): only publishers append. */
export const release2Subject = (product: string): string => `upswarm.meta.${product}.release.v2`
/**
 * Rollout statements of a product (issue 16 item 1, docs/formats.md §1.5): every one kept, appended
 * under optimistic concurrency by the publisher (`upswarm rollout`); clients follow them on
 * `upswarm.signed.<product>.rollout`.
 */
export const rolloutSubject = (product: string): string => `upswarm.meta.${product}.rollout`
export const signedRolloutSubject = (product: string): string => `upswarm.signed.${product}.rollout`
export const SIGNED_ROLLOUTS = 'upswarm.signed.*.rollout'
/** Format-2 release documents as META republishes them: a sharing daemon follows its product's to learn of releases. */
export const signedRelease2Subject = (product: string): string => `upswarm.signed.${product}.release.v2`
export const SIGNED_RELEASES2 = signedRelease2Subject('*')
/** What META stored, republished with its `Nats-Sequence` (as releases are): followers subscribe, no consumer. */
export const SIGNED_SUBJECTS = 'upswarm.signed.>'
export const SIGNED_ROOT_SUBJECT = 'upswarm.signed.root'
/** Freshness statements of the notary: one per product, the newest only (docs/formats.md §1.4). */
export const FRESH_STREAM = 'UPSWARM_FRESH'
export const freshSubject = (product: string): string => `upswarm.fresh.${product}`
export const FRESH_SUBJECTS = 'upswarm.fresh.>'

/** Blob object store: objects named by SHA-256 hex. */
export const BLOB_BUCKET = 'upswarm-blobs'

/**
 * Issue 11 item 8: the operators' prune records, one subject per product, every record kept. A
 * product's newest record says which of its revisions no longer have their file contents on the
 * servers (`through`: r1 … r`through`); its signed releases stay in the release stream.
 */
export const PRUNE_STREAM = 'UPSWARM_PRUNE'

/**
 * Issue 17 item 2: what a site mirrors from the core: everything its servers and clients read;
 * alerts and peers stay the core's (infra/nats/site-mirrors.ts). A site's leaf link may create
 * consumers of these and nothing else in the core (the `leaf` identity, infra/auth/permissions.ts).
 */
export const SITE_MIRRORED = [RELEASE_STREAM, META_STREAM, FRESH_STREAM, PRUNE_STREAM, `OBJ_${BLOB_BUCKET}`] as const
export const pruneSubject = (product: string): string => `upswarm.prune.${product}`
export const PRUNE_SUBJECTS = 'upswarm.prune.>'

/**
 * Leases that keep a prune and the publishes' blob deduplication apart (docs/decisions.md):
 * `publish.<identity>.<id>` while a publish relies on blobs already in the object store,
 * `prune` while a prune deletes blobs. Entries expire unless renewed.
 */
export const LEASE_BUCKET = 'upswarm-leases'
export const PRUNE_LEASE_KEY = 'prune'
export const publishLeaseKey = (identity: string, id: string): string => `publish.${identity}.${id}`
export const PUBLISH_LEASES = 'publish.>'

/** Admin alerts (R-STATUS-3): durable, one subject per product and sending identity. */
export const ALERT_STREAM = 'UPSWARM_ALERTS'
export const alertSubject = (product: string, identity: string): string => `upswarm.alert.${product}.${identity}`
export const ALERT_SUBJECTS = 'upswarm.alert.>'
/**
 * What the alert stream stored, republished by the server (the notary follows these): alerts of
 * the core's clients and those the core sources from its sites alike, and nothing the stream
 * refused. Nobody publishes here but the server.
 */
export const ALERTED_SUBJECTS = 'upswarm.alerted.>'
/**
 * Issue 17: a site's alerts and fleet reports as the core stores them: the client's subject with
 * the site's domain as a fifth token, so a site's report never takes the place of a core client's
 * (clients write four-token subjects only) and every reader knows where it came from.
 */

/**
 * Issue 16 item 3: the fleet view. Each client machine writes its own latest report (revision,
 * stage, health, bytes by source) on its own subject; the stream keeps one message per subject,
 * so it holds the newest report of every client and nothing older. Only admin reads it.
 */
export const FLEET_STREAM = 'UPSWARM_FLEET'
/** Issue 17: what a site's clients write (alerts, fleet reports): stored at the site, sourced by the core (`upswarm site add`). */
export const SITE_SOURCED = [ALERT_STREAM, FLEET_STREAM] as const
export const fleetSubject = (product: string, identity: string): string => `upswarm.fleet.${product}.${identity}`
export const FLEET_SUBJECTS = 'upswarm.fleet.>'
/**
 * Issue 17: a site's alerts and fleet reports as the core stores them: the client's subject with
 * the site's domain as a fifth token, so a site's report never takes the place of a core client's
 * (clients write four-token subjects only) and every reader knows where it came from.
 */
export const siteSubjectTransform = (stream: (typeof SITE_SOURCED)[number], site: string): { src: string; dest: string } => {
  const subject = stream === ALERT_STREAM ? alertSubject : fleetSubject
  return { src: subject('*', '*'), dest: `${subject('{{wildcard(1)}}', '{{wildcard(2)}}')}.${site}` }
}

/** Tracker registry (R-PEERLIST): KV bucket; each instance writes its peers' changes as batches (infra/tracker/peer-log.ts) under these keys. */
export const PEER_BUCKET = 'upswarm-peers'
/** Key of a peer of a BitTorrent swarm whose (product, revision) is not known yet. */
export const unmappedPeerKey = (infoHashHex: string, peerIdHex: string): string => `ih.${infoHashHex}.${peerIdHex}`
/** Key of a peer of a product: one entry per (product, peer), holding its current revision. */
export const productPeerKey = (product: string, peerIdHex: string): string => `${product}.${peerIdHex}`
/** Reverse index info_hash → (product, revision), learnt from announces that name the product. */
export const infoHashKey = (infoHashHex: string): string => `map.${infoHashHex}`
/** How long the bucket keeps a key after its last write; peers carry their own, shorter expiry. */
export const PEER_BUCKET_MAX_AGE_MS = 60 * 60 * 1000

/** Durable consumer of the release stream for one repository server. */
export const serverConsumer = (serverId: string): string => `server-${serverId}`

/** Durable consumer of UPSWARM_META for one repository server: the format-2 releases it copies (docs/formats.md §1.8). */
export const serverMetaConsumer = (serverId: string): string => `server-${serverId}-meta`
/** What a server's meta consumer reads: every product's format-2 releases. */
export const RELEASE2_SUBJECTS = release2Subject('*')

/** Repository server NATS service (one instance per server, addressed by id). */
export const REPO_SERVICE = 'upswarm-repo'
export const repoSubject = (serverId: string, op: RepoOp): string => `upswarm.repo.${serverId}.${op}`
export type RepoOp = 'revs' | 'manifest' | 'sha1s' | 'range' | 'cancel' | 'meta' | 'nodes' | 'units' | 'bulk'

/** Heartbeats of repository servers, read by every proxy. */
export const serverHeartbeat = (serverId: string): string => `upswarm.heartbeat.server.${serverId}`
export const SERVER_HEARTBEATS = 'upswarm.heartbeat.server.*'
/** The server a heartbeat subject speaks for (the only subject its identity may publish on); undefined if not one. */
export const heartbeatServerId = (subject: string): string | undefined => {
  const prefix = serverHeartbeat('')
  const id = subject.startsWith(prefix) ? subject.slice(prefix.length) : ''
  return id !== '' && !id.includes('.') ? id : undefined
}

/** Proxy NATS service: a queue group, so several proxies answer as one. */
export const PROXY_SERVICE = 'upswarm-proxy'
export const proxySubject = (op: ProxyOp): string => `upswarm.proxy.${op}`
export type ProxyOp = 'revs' | 'manifest' | 'sha1s' | 'assign' | 'stats' | 'meta' | 'nodes'

/**
 * Tracker NATS service (queue group). A request's last token is the requester's identity
 * (identityOf): the cluster's permissions let an identity publish only under its own, so the
 * tracker knows who announced. The service subscribes with `*` in place of the identity.
 */
export const TRACKER_SERVICE = 'upswarm-tracker'
export const trackerSubject = (op: 'announce' | 'peers', identity: string): string => `upswarm.tracker.${op}.${identity}`
export const TRACKER_QUEUE = 'upswarm-tracker'

/**
 * Where a client machine sends its JetStream API calls (nats.js `apiPrefix`): in the CLIENTS
 * account, which has no JetStream, each is a service imported from UPSWARM's `$JS.API` (a client
 * asking `$JS.API` itself is answered by its own account: "JetStream not enabled").
 */
export const CLIENT_JS_API_PREFIX = '$JS.UPSWARM.API'
/** A UPSWARM JetStream API subject as a client machine names it in CLIENTS. */
export const clientJsApiSubject = (subject: string): string => subject.replace(/^\$JS\.API\./, `${CLIENT_JS_API_PREFIX}.`)

/** Actor state changes, published for anyone inspecting the system. */
export const actorEventSubject = (role: string, id: string): string => `upswarm.events.${role}.${id}`

/**
 * Live inspection (issue 12 item 3): every actor of a process started with `--inspect` publishes
 * its inspection events (`@xstate.actor`, `@xstate.event`, `@xstate.snapshot`, in the shapes of
 * `@statelyai/inspect`) here. `role` is the process's role, `id` its NATS identity: the
 * permissions let an identity publish only under its own name.
 */
export const inspectSubject = (role: InspectRole, id: string): string => `upswarm.inspect.${role}.${id}`
export const INSPECT_SUBJECTS = 'upswarm.inspect.>'
/** The processes that run actors, as they name themselves in inspection subjects. */
export const INSPECT_ROLES = ['repo-server', 'proxy', 'tracker', 'daemon', 'updater', 'publisher', 'console'] as const
export type InspectRole = (typeof INSPECT_ROLES)[number]
/** Role and id of an inspection subject; undefined for any other subject. */
export const inspectSubjectParts = (subject: string): { role: InspectRole; id: string } | undefined => {
  const [a, b, role, id, ...rest] = subject.split('.')
  if (a !== 'upswarm' || b !== 'inspect' || !id || rest.length > 0) return undefined
  return (INSPECT_ROLES as readonly string[]).includes(role!) ? { role: role as InspectRole, id } : undefined
}
