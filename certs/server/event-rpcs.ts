import type { ServerWritableStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import type * as pb from '../../proto/index.js';
import type { CertificateAuthority } from '../authority/index.js';
import type { EventFeed } from '../events/index.js';
import type { StoredSecurityEvent } from '../store/index.js';
import {
  onStreamEnd,
  refuseStream,
  unaryHandler,
  writeBounded,
  type HandlerContext,
} from './handlers.js';
import { verifiedPeer } from './peer.js';

const NO_REPORTER_CERT =
  "ReportEvents needs the reporting agent's current certificate presented in the TLS handshake";

/**
 * ReportEvents (Workload service): the reporter is the SPIFFE ID of the
 * caller's verified, unrevoked certificate, the check renewal uses; the
 * batch itself names no reporter.
 */
export function reportEventsRpc(
  authority: CertificateAuthority,
  feed: EventFeed,
  ctx: HandlerContext,
): UntypedServiceImplementation {
  return {
    ReportEvents: unaryHandler<pb.ReportEventsRequest, pb.ReportEventsResponse>(
      ctx,
      'ReportEvents',
      'events.rejected',
      (call) => {
        let reporterId: string;
        try {
          reporterId = authority.certifiedPeerId(
            verifiedPeer(call),
            'REPORTER_NO_CERT',
            NO_REPORTER_CERT,
          );
        } catch (err) {
          ctx.metrics.eventsRefused.inc({ reason: 'unauthenticated' }, call.request.events.length);
          throw err;
        }
        return { accepted: feed.report(reporterId, call.request.events) };
      },
    ),
  };
}

/**
 * ListEvents and WatchEvents (Admin service): the stored feed, and the
 * stored matches followed by each new one as it is reported.
 */
export function eventQueryRpcs(
  authority: CertificateAuthority,
  feed: EventFeed,
  ctx: HandlerContext,
): UntypedServiceImplementation {
  return {
    ListEvents: unaryHandler<pb.ListEventsRequest, pb.ListEventsResponse>(
      ctx,
      'ListEvents',
      'admin.rejected',
      (call) => {
        authority.checkAdmin(verifiedPeer(call));
        return { events: feed.list(call.request).map(storedEventMessage) };
      },
    ),

    WatchEvents: (call: ServerWritableStream<pb.ListEventsRequest, pb.StoredEventMessage>) => {
      let watch: ReturnType<EventFeed['watch']>;
      try {
        authority.checkAdmin(verifiedPeer(call));
        watch = feed.watch(call.request, (event) => {
          writeBounded(ctx, call, storedEventMessage(event), 'event watch');
        });
      } catch (err) {
        refuseStream(ctx, 'WatchEvents', 'admin.rejected', call, err);
        return;
      }
      ctx.metrics.eventWatchStreams.inc();
      ctx.log.debug({ peer: call.getPeer(), stored: watch.stored.length }, 'event watch opened');
      onStreamEnd(call, () => {
        watch.stop();
        ctx.metrics.eventWatchStreams.dec();
        ctx.log.debug({ peer: call.getPeer() }, 'event watch closed');
      });
      for (const event of watch.stored) {
        if (!writeBounded(ctx, call, storedEventMessage(event), 'event watch')) break;
      }
    },
  };
}

/** Builds the wire form of a stored event. */
function storedEventMessage(event: StoredSecurityEvent): pb.StoredEventMessage {
  return {
    id: event.id,
    reporterId: event.reporterId,
    receivedUnixMs: event.receivedAt.getTime(),
    event: {
      kind: event.kind,
      atUnixMs: event.atMs,
      peerId: event.peerId,
      direction: event.direction,
      reason: event.reason,
      rule: event.rule,
      detailJson: event.detailJson,
    },
  };
}
