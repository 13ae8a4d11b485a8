import {
  derTlv,
  extensionDer,
  OID,
  signAndWrap,
  smallIntegerDer,
  timeDer,
  unsignedIntegerDer,
} from './asn1.js';
import { TAG } from './der-reader.js';
import { X509Error } from './errors.js';
import { internalsOf, type Issuer } from './issuer.js';
import { toPem } from './pem.js';
import { normaliseSerialHex } from './serial.js';

/** Revocation reasons Palisade records, named as in RFC 5280 5.3.1. */
export type CrlReason =
  | 'unspecified'
  | 'keyCompromise'
  | 'cACompromise'
  | 'affiliationChanged'
  | 'superseded'
  | 'cessationOfOperation'
  | 'certificateHold'
  | 'privilegeWithdrawn';

/** Every CRL reason, in RFC 5280 code order. */
export const CRL_REASONS: readonly CrlReason[] = Object.freeze([
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  'privilegeWithdrawn',
]);

/** One revoked certificate to list. */
export interface CrlEntry {
  readonly serialHex: string;
  readonly revokedAt: Date;
  readonly reason: CrlReason;
}

const REASON_CODES: Record<CrlReason, number> = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
};

const VERSION_2 = Buffer.from([TAG.INTEGER, 1, 1]);

/**
 * Signs an X.509 v2 CRL as `issuer`, listing `entries` with their reason codes
 * and carrying authorityKeyIdentifier and cRLNumber. Returns PEM `X509 CRL`.
 * Throws X509Error CERT_MALFORMED for a bad serial, CRL number or time order.
 */
export function createCrl(opts: {
  issuer: Issuer;
  entries: CrlEntry[];
  crlNumber: number;
  thisUpdate?: Date;
  nextUpdate: Date;
}): string {
  const issuer = internalsOf(opts.issuer);
  const thisUpdate = opts.thisUpdate ?? new Date();
  if (!Number.isSafeInteger(opts.crlNumber) || opts.crlNumber < 0) {
    throw new X509Error('CERT_MALFORMED', `CRL number must be a non-negative integer`);
  }
  if (opts.nextUpdate.getTime() <= thisUpdate.getTime()) {
    throw new X509Error('CERT_MALFORMED', 'nextUpdate must come after thisUpdate');
  }

  const fields = [
    VERSION_2,
    issuer.signer.algorithmDer,
    issuer.nameDer,
    timeDer(thisUpdate),
    timeDer(opts.nextUpdate),
  ];
  // RFC 5280 5.1.2.6: an empty list is omitted, not encoded as an empty SEQUENCE.
  if (opts.entries.length > 0) fields.push(derTlv(TAG.SEQUENCE, opts.entries.map(entryDer)));
  fields.push(
    derTlv(0xa0, [
      derTlv(TAG.SEQUENCE, [
        issuer.authorityKeyIdExtensionDer,
        extensionDer(OID.cRLNumber, false, smallIntegerDer(opts.crlNumber)),
      ]),
    ]),
  );
  return toPem(signAndWrap(derTlv(TAG.SEQUENCE, fields), issuer.signer), 'X509 CRL');
}

function entryDer(entry: CrlEntry): Buffer {
  const code = REASON_CODES[entry.reason];
  if (code === undefined)
    throw new X509Error('CERT_MALFORMED', `unknown CRL reason ${entry.reason}`);
  const serial = unsignedIntegerDer(
    Buffer.from(evenHex(normaliseSerialHex(entry.serialHex)), 'hex'),
  );
  const parts = [serial, timeDer(entry.revokedAt)];
  // RFC 5280 5.3.1: the reasonCode extension SHOULD be absent rather than say unspecified.
  if (code !== 0) {
    const reason = extensionDer(OID.reasonCode, false, Buffer.from([TAG.ENUMERATED, 1, code]));
    parts.push(derTlv(TAG.SEQUENCE, [reason]));
  }
  return derTlv(TAG.SEQUENCE, parts);
}

function evenHex(hex: string): string {
  return hex.length % 2 ? `0${hex}` : hex;
}
