// Who may do what on NATS (issue 10, item 1; ARCHITECTURE §6b): one identity per role and per
// client machine, each allowed exactly the subjects and JetStream API calls it needs. Everything
// else is denied by the server. Pure data, so the security suite can list what each role may
// not do and try it.
import {
  ALERT_STREAM, ALERT_SUBJECTS, ALERTED_SUBJECTS, BLOB_BUCKET, FLEET_SUBJECTS, fleetSubject, release2Subject, rolloutSubject, SIGNED_ROLLOUTS, SIGNED_RELEASES2, LEASE_BUCKET, PRUNE_STREAM, publishLeaseKey, FRESH_STREAM, FRESH_SUBJECTS, META_STREAM, PEER_BUCKET, SIGNED_SUBJECTS, SITE_MIRRORED, SITE_SOURCED, RELEASE_READ_STREAM, RELEASE_STREAM, alertSubject, actorEventSubject, RELEASED_SUBJECTS, repoSubject,
  serverConsumer, serverMetaConsumer, serverHeartbeat, trackerSubject, clientJsApiSubject, RELEASE_SUBJECTS, SERVER_HEARTBEATS, inspectSubject,
} from '../nats/names.ts'
import { IDENTITY_RE, inboxPrefix, type Identity } from '../nats/identity.ts'

export interface SubjectPermissions {
  pub: { allow: string[] }
  sub: { allow: string[] }
}


const OBJ_STREAM = `OBJ_${BLOB_BUCKET}`
const KV_STREAM = `KV_${PEER_BUCKET}`
const LEASE_STREAM = `KV_${LEASE_BUCKET}`
const API = '$JS.API'

/** Read one stream's messages by sequence or last-per-subject, without a consumer. */
const streamReads = (stream: string): string[] => [
  `${API}.STREAM.INFO.${stream}`, `${API}.STREAM.MSG.GET.${stream}`, `${API}.DIRECT.GET.${stream}`, `${API}.DIRECT.GET.${stream}.>`,
]
/** Ephemeral consumers of one stream (object store reads, KV watches): create, pull, info, delete. */
const ephemeralConsumers = (stream: string): string[] => [
  `${API}.CONSUMER.CREATE.${stream}`, `${API}.CONSUMER.CREATE.${stream}.>`, `${API}.CONSUMER.MSG.NEXT.${stream}.>`,
  `${API}.CONSUMER.INFO.${stream}.>`, `${API}.CONSUMER.DELETE.${stream}.>`, `$JS.ACK.${stream}.>`, `$JS.FC.${stream}.>`,
]
/** One named durable consumer and nothing else of the stream's consumers. */
const durableConsumer = (stream: string, name: string): string[] => [
  `${API}.CONSUMER.CREATE.${stream}.${name}`, `${API}.CONSUMER.CREATE.${stream}.${name}.>`, `${API}.CONSUMER.DURABLE.CREATE.${stream}.${name}`,
  `${API}.CONSUMER.INFO.${stream}.${name}`, `${API}.CONSUMER.DELETE.${stream}.${name}`, `${API}.CONSUMER.MSG.NEXT.${stream}.${name}`,
  `$JS.ACK.${stream}.${name}.>`,
]
const SERVICE_DISCOVERY = '$SRV.>'
/**
 * Services answer in the requester's inbox and nowhere else. Not NATS's `resp` permission: it lets
 * a responder publish to whatever reply subject a request names, so a client could make the
 * proxy "answer" onto `$JS.API.STREAM.DELETE.…` (found in review; the security suite tries it).
 * A client's request comes through a service import, its reply subject rewritten by the server
 * to `_R_.…`, which routes only back to the CLIENTS account.
 */
const ANSWER = ['_INBOX.>', '_R_.>']

/**
 * The JetStream API calls of a client machine, all reads: the newest release by the stream's
 * leader (followReleases), roots and fresh statements by direct get (readRoots, readFresh).
 * CLIENTS has no JetStream of its own: these are imported from UPSWARM under
 * CLIENT_JS_API_PREFIX, so their answers (and whatever reply subject the client names) stay in
 * CLIENTS, where no stream stores anything.
 */
export const CLIENT_JS_API = [`${API}.STREAM.MSG.GET.${RELEASE_STREAM}`, `${API}.DIRECT.GET.${META_STREAM}`, `${API}.DIRECT.GET.${META_STREAM}.>`, `${API}.DIRECT.GET.${FRESH_STREAM}.>`]
/**
 * What UPSWARM exports and CLIENTS imports, same subjects on both sides (infra/auth/accounts.ts):
 * services are requests answered in UPSWARM (the alert and fleet streams' subjects too, so a client's
 * JetStream publish gets its ack back), streams are subjects clients follow.
 */
export const CLIENT_SERVICES = ['upswarm.proxy.>', repoSubject('*', '*' as never), trackerSubject('*' as never, '*'), ALERT_SUBJECTS, FLEET_SUBJECTS, ...CLIENT_JS_API]
/**
 * Issue 16 item 1: clients follow the rollout statements (verified under their root) to install only
 * what their stage allows; and a product's format-2 release documents, which a daemon of a product
 * without format-1 manifests learns of releases by (docs/formats.md §5 step 10).
 */
export const CLIENT_STREAMS = [RELEASED_SUBJECTS, SERVER_HEARTBEATS, SIGNED_ROLLOUTS, SIGNED_RELEASES2]
/** What CLIENTS exports and UPSWARM imports: the daemons' state changes, for whoever inspects the system. */
export const CLIENT_EVENTS = actorEventSubject('daemon', '*')
/**
 * Issue 12 item 3: the client processes' live inspection (the daemon, a one-off update), exported
 * by CLIENTS and imported by UPSWARM like CLIENT_EVENTS, where admin reads `upswarm.inspect.>`.
 */
export const CLIENT_INSPECTION = [inspectSubject('daemon', '*'), inspectSubject('updater', '*')]

/** `coreDomain`: a leaf identity's core JetStream domain, the only one its link may ask for consumers (unset: any). */
export function permissionsFor(id: Identity, opts: { coreDomain?: string } = {}): SubjectPermissions {
  if (!IDENTITY_RE.test(id.name)) throw new Error(`identity name ${JSON.stringify(id.name)} is not one subject token ([A-Za-z0-9_-], 1-64)`)
  const inbox = `${inboxPrefix(id)}.>`
  const base = { pub: [`${API}.INFO`], sub: [inbox] }
  const releasesRead = streamReads(RELEASE_STREAM)
  // Issue 10 item 7: everyone who verifies releases reads the roots and fresh statements; only
  // admin appends a root (the root holder), only the notary a fresh statement.
  const trustRead = [...streamReads(META_STREAM), ...streamReads(FRESH_STREAM)]
  switch (id.kind) {
    case 'admin':
      return { pub: { allow: ['>'] }, sub: { allow: ['>'] } }
    case 'publisher':
      return {
        // History scans (the release chain, the feed) use ephemeral consumers on the readers' mirror.
        // Issue 16 item 1: the publisher (`upswarm rollout`) appends rollout statements; no one else does.
        // Gap repair (docs/formats.md §2.2) reads tree nodes and blobs back from the object store.
        // Issue 11 item 8: a publish leases the blobs it deduplicates under its own name only,
        // and reads (never writes) the prune lease.
        pub: {
          allow: [...base.pub, ...releasesRead, ...trustRead, ...streamReads(RELEASE_READ_STREAM), ...ephemeralConsumers(RELEASE_READ_STREAM), RELEASE_SUBJECTS, release2Subject('*'), rolloutSubject('*'), ...streamReads(OBJ_STREAM),
            ...ephemeralConsumers(OBJ_STREAM), `$O.${BLOB_BUCKET}.C.>`, `$O.${BLOB_BUCKET}.M.>`, ...streamReads(LEASE_STREAM), `$KV.${LEASE_BUCKET}.${publishLeaseKey(id.name, '*')}`, inspectSubject('publisher', id.name)],
        },
        sub: { allow: [...base.sub, SERVER_HEARTBEATS] },
      }
    case 'server':
      return {
        pub: {
          // Issue 11 item 8: the prune records tell it which revisions' bytes to drop.
          allow: [...base.pub, ...releasesRead, ...trustRead, ...streamReads(PRUNE_STREAM), ...durableConsumer(RELEASE_STREAM, serverConsumer(id.name)), ...streamReads(OBJ_STREAM),
            // docs/formats.md §1.8: its own durable consumer of the format-2 releases.
            ...durableConsumer(META_STREAM, serverMetaConsumer(id.name)),
            ...ephemeralConsumers(OBJ_STREAM), serverHeartbeat(id.name), actorEventSubject('repo-server', id.name), 
            inspectSubject('repo-server', id.name), alertSubject('*', id.name), ...ANSWER],
        },
        sub: { allow: [...base.sub, repoSubject(id.name, '*' as never), SERVICE_DISCOVERY] },
      }
    case 'proxy':
      return {
        pub: { allow: [...base.pub, ...releasesRead, ...trustRead, repoSubject('*', '*' as never), actorEventSubject('proxy', '*'), inspectSubject('proxy', id.name), ...ANSWER] },
        sub: { allow: [...base.sub, SERVER_HEARTBEATS, 'upswarm.proxy.>', SERVICE_DISCOVERY] },
      }
    case 'tracker':
      return {
        pub: {
          allow: [...base.pub, `$KV.${PEER_BUCKET}.>`, ...streamReads(KV_STREAM), ...ephemeralConsumers(KV_STREAM),
            `${API}.STREAM.CREATE.${KV_STREAM}`, `${API}.STREAM.UPDATE.${KV_STREAM}`, actorEventSubject('tracker', '*'), inspectSubject('tracker', id.name), ...ANSWER],
        },
        sub: { allow: [...base.sub, 'upswarm.tracker.>', SERVICE_DISCOVERY] },
      }
    case 'client':
      // In the CLIENTS account: the subjects it imports, those that speak for an identity under its own name only
      // (issue 16 item 3: its fleet report too, so no client can write another's entry).
      return {
        pub: {
          allow: [...CLIENT_JS_API.map(clientJsApiSubject), alertSubject('*', id.name), 'upswarm.proxy.>', repoSubject('*', '*' as never),
            trackerSubject('*' as never, id.name), fleetSubject('*', id.name), actorEventSubject('daemon', id.name), inspectSubject('daemon', id.name), inspectSubject('updater', id.name)],
        },
        sub: { allow: [...base.sub, ...CLIENT_STREAMS] },
      }
    case 'leaf':
      return leafPermissions(id.name, opts.coreDomain ?? '*')
    case 'notary':
      // Issue 10 item 7: reads releases and roots, follows both, appends fresh statements (the
      // JetStream ack comes to its inbox). It holds no publish key and may append nothing else.
      // Issue 16 item 2: it reads the alerts and appends halts (its halt key can sign nothing else).
      return {
        pub: {
          allow: [...base.pub, ...releasesRead, ...trustRead, ...streamReads(RELEASE_READ_STREAM), ...ephemeralConsumers(RELEASE_READ_STREAM),
            FRESH_SUBJECTS, rolloutSubject('*'), ...streamReads(ALERT_STREAM), actorEventSubject('notary', id.name)],
        },
        sub: { allow: [...base.sub, RELEASED_SUBJECTS, SIGNED_SUBJECTS, ALERTED_SUBJECTS] },
      }
  }
}

/**
 * Issue 17 item 2: a site's leaf link into the core, as the core sees it (what the site may send
 * in, what it may hear); the identity's name is the site's JetStream domain, and `up` pins the
 * core's domain into it (`$JS.<core>.API`; `*` when issued without one). Two flows, both
 * JetStream's own (nats-server's mirror and source set-up):
 * - the site's mirrors each create an ephemeral push consumer of one of the core's streams of
 *   record through the core's domain API, hear the answer on `$JSC.R.<token>` and the deliveries
 *   on `$JS.M.<token>`, and answer flow control on `$JS.FC.<stream>.…`;
 * - the core's alert and fleet streams source the site's own copies through the site's domain
 *   API: the site answers on `$JSC.R.<token>` and delivers on `$JS.S.<token>`.
 * Nothing else: no durable consumer, no stream operation, no other subject, so a site, however
 * compromised, cannot change or delete what the core holds nor hear its alerts, peers, leases or
 * inboxes (the security suite tries).
 */
function leafPermissions(site: string, coreDomain: string): SubjectPermissions {
  return {
    pub: { allow: [...SITE_MIRRORED.flatMap((s) => [`$JS.${coreDomain}.API.CONSUMER.CREATE.${s}`, `$JS.FC.${s}.>`]), '$JSC.R.>', '$JS.S.>'] },
    sub: { allow: ['$JS.M.>', '$JSC.R.>', `$JS.${site}.API.>`, ...SITE_SOURCED.map((s) => `$JS.FC.${s}.>`)] },
  }
}
