import { execFileSync } from 'node:child_process';
import {
  createPublicKey,
  generateKeyPairSync as nodeKeyPair,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import forge from 'node-forge';
import t from 'tap';

import {
  basicConstraintsDer,
  keyUsageDer,
  KEY_USAGE_BIT,
  nameDer,
  OID,
  oidDer,
  subjectAltNameDer,
  timeDer,
} from '../../../certs/x509/asn1.js';
import { buildCertificate, issuerSigning } from '../../../certs/x509/certificate.js';
import {
  certSpiffeId,
  createCrl,
  createCsr,
  createIntermediateCertificate,
  createLeafCertificate,
  createRootCertificate,
  generateKeyPair,
  generateKeyPairSync,
  KEY_TYPES,
  keyTypeOf,
  loadIssuer,
  parseCsr,
  serialHexOf,
  splitPemChain,
  TrustStore,
  verifySvid,
  type IssuedCertificate,
  type Issuer,
  type KeyPair,
  type KeyType,
} from '../../../certs/x509/index.js';
import { decodeOid, encodeOid } from '../../../certs/x509/oid.js';
import { spkiOf } from '../../../certs/x509/spki.js';

const OPENSSL = '/usr/bin/openssl';
const TD = 'example.org';
const WORKLOAD_ID = `spiffe://${TD}/ns/shop/sa/web`;
const CLIENT_ID = `spiffe://${TD}/ns/shop/sa/cart`;
/** Closes one group's lines in the module probe's log. */
const GROUP_END = 'group-end';
const LONG_ID = `spiffe://${TD}/ns/${'n'.repeat(63)}/sa/${'s'.repeat(200)}`;

interface Pki {
  rootKey: KeyPair;
  root: IssuedCertificate;
  rootIssuer: Issuer;
  inter: IssuedCertificate;
  interIssuer: Issuer;
  leafKeys: Record<KeyType, KeyPair>;
  leaves: Record<KeyType, IssuedCertificate>;
  trust: TrustStore;
}

/** A root and intermediate of one key type, with an EC and an RSA leaf under them. */
function makePki(caType: KeyType): Pki {
  const rootKey = generateKeyPairSync(caType);
  const root = createRootCertificate({ key: rootKey, trustDomain: TD });
  const rootIssuer = loadIssuer(root.pem, rootKey.privateKey);
  const interKey = generateKeyPairSync(caType);
  const inter = createIntermediateCertificate({
    publicKey: interKey.publicKey,
    issuer: rootIssuer,
    trustDomain: TD,
  });
  const interIssuer = loadIssuer(inter.pem, interKey.privateKey);
  const leafKeys = { 'ecdsa-p256': EC_LEAF_KEY, 'rsa-2048': RSA_LEAF_KEY };
  const leaves = {
    'ecdsa-p256': leafFor(EC_LEAF_KEY, WORKLOAD_ID, interIssuer),
    'rsa-2048': leafFor(RSA_LEAF_KEY, CLIENT_ID, interIssuer),
  };
  return {
    rootKey,
    root,
    rootIssuer,
    inter,
    interIssuer,
    leafKeys,
    leaves,
    trust: new TrustStore([root.pem]),
  };
}

function leafFor(key: KeyPair, spiffeId: string, issuer: Issuer): IssuedCertificate {
  return createLeafCertificate({ publicKey: key.publicKey, spiffeId, issuer, ttlSeconds: 3600 });
}

function openssl(args: string[]): string {
  return execFileSync(OPENSSL, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function write(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function pkcs8(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

const EC_LEAF_KEY = generateKeyPairSync('ecdsa-p256');
const RSA_LEAF_KEY = generateKeyPairSync('rsa-2048');
const PKIS: Record<KeyType, Pki> = {
  'ecdsa-p256': makePki('ecdsa-p256'),
  'rsa-2048': makePki('rsa-2048'),
};
const EC = PKIS['ecdsa-p256'];

t.test('keys', async (t) => {
  t.test('makes keys of each type and names them back', async (t) => {
    for (const type of KEY_TYPES) {
      const pair = await generateKeyPair(type);
      t.equal(pair.type, type);
      t.equal(keyTypeOf(pair.privateKey), type);
      t.equal(keyTypeOf(pair.publicKey), type);
    }
    t.equal(generateKeyPairSync().type, 'ecdsa-p256', 'P-256 is the default');
  });

  t.test('refuses other curves and key types with KEY_UNSUPPORTED', async (t) => {
    t.equal(
      codeOf(() => keyTypeOf(nodeKeyPair('ec', { namedCurve: 'P-384' }).publicKey)),
      'KEY_UNSUPPORTED',
    );
    t.equal(
      codeOf(() => keyTypeOf(nodeKeyPair('ed25519').publicKey)),
      'KEY_UNSUPPORTED',
    );
  });

  t.test('writes SubjectPublicKeyInfo byte for byte as OpenSSL does', async (t) => {
    for (const pair of [EC_LEAF_KEY, RSA_LEAF_KEY]) {
      const fresh = createPublicKey(pair.publicKey.export({ type: 'spki', format: 'pem' }));
      t.same(spkiOf(fresh), pair.publicKey.export({ type: 'spki', format: 'der' }));
    }
  });
});

for (const caType of KEY_TYPES) {
  const pki = PKIS[caType];

  t.test(`${caType} certificates`, async (t) => {
    t.test('pass openssl -x509_strict for sslclient and sslserver', async (t) => {
      const dir = t.testdir();
      const rootPath = write(dir, 'root.pem', pki.root.pem);
      const interPath = write(dir, 'inter.pem', pki.inter.pem);
      for (const leafType of KEY_TYPES) {
        const leafPath = write(dir, `leaf-${leafType}.pem`, pki.leaves[leafType].pem);
        for (const purpose of ['sslclient', 'sslserver']) {
          const out = openssl([
            'verify',
            '-x509_strict',
            '-CAfile',
            rootPath,
            '-untrusted',
            interPath,
            '-purpose',
            purpose,
            leafPath,
          ]);
          t.match(out, /: OK/, `${leafType} leaf as ${purpose}`);
        }
      }
      t.match(openssl(['verify', '-x509_strict', '-CAfile', rootPath, interPath]), /: OK/);
    });

    t.test('parse in Node with the expected SANs and CA flags', async (t) => {
      const root = new X509Certificate(pki.root.pem);
      const inter = new X509Certificate(pki.inter.pem);
      t.equal(root.ca, true);
      t.equal(root.subjectAltName, `URI:spiffe://${TD}`);
      t.match(root.subject, `CN=Palisade Root CA ${TD}`);
      t.equal(inter.ca, true);
      t.match(inter.subject, `CN=Palisade Intermediate CA ${TD}`);
      t.ok(inter.checkIssued(root) && inter.verify(root.publicKey));
      for (const type of KEY_TYPES) {
        const leaf = new X509Certificate(pki.leaves[type].pem);
        t.equal(leaf.ca, false);
        t.equal(leaf.subjectAltName, `URI:${type === 'ecdsa-p256' ? WORKLOAD_ID : CLIENT_ID}`);
        t.equal(leaf.subject, 'O=Palisade');
        t.equal(leaf.issuer, inter.subject);
        t.ok(leaf.verify(inter.publicKey));
        t.equal(serialHexOf(leaf), pki.leaves[type].serialHex);
        t.match(pki.leaves[type].serialHex, /^[0-9a-f]{32}$/);
        t.equal(certSpiffeId(leaf), type === 'ecdsa-p256' ? WORKLOAD_ID : CLIENT_ID);
      }
      t.equal(certSpiffeId(inter), undefined, 'an intermediate has no SPIFFE ID');
    });

    t.test('copies the issuer Name byte for byte and chains key identifiers', async (t) => {
      const dir = t.testdir();
      const text = openssl([
        'x509',
        '-noout',
        '-text',
        '-in',
        write(dir, 'leaf.pem', pki.leaves['rsa-2048'].pem),
      ]);
      const interText = openssl([
        'x509',
        '-noout',
        '-text',
        '-in',
        write(dir, 'inter.pem', pki.inter.pem),
      ]);
      const ski = /Subject Key Identifier: *\n *([0-9A-F:]+)/.exec(interText)?.[1];
      t.ok(ski);
      t.match(text, new RegExp(`Authority Key Identifier: *\\n *(keyid:)?${ski}`));
      t.match(text, /Key Usage: critical\n *Digital Signature, Key Encipherment/);
      t.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
    });

    t.test('CSR made by createCsr passes openssl req -verify and parseCsr', async (t) => {
      const dir = t.testdir();
      // The long ID pushes the SAN, the extension request and the request
      // info past 127 and 255 bytes, so every DER length form is written.
      for (const spiffeId of [WORKLOAD_ID, LONG_ID]) {
        for (const type of KEY_TYPES) {
          const csr = createCsr({ key: pki.leafKeys[type], spiffeId });
          const path = write(dir, `${type}-${spiffeId.length}.csr`, csr);
          const text = openssl(['req', '-verify', '-noout', '-text', '-in', path]);
          t.match(text, `URI:${spiffeId}`, `openssl reads the ${type} CSR's URI SAN`);
          t.match(text, /Subject: O\s?=\s?Palisade/);
          const parsed = parseCsr(csr);
          t.equal(parsed.keyType, type);
          t.same(parsed.uris, [spiffeId]);
          t.equal(
            parsed.dnsNames.length +
              parsed.ipAddresses.length +
              parsed.emails.length +
              parsed.otherSanCount,
            0,
          );
        }
      }
    });

    t.test('CRL passes openssl crl -verify and lists serials with reasons', async (t) => {
      const dir = t.testdir();
      const caFile = write(dir, 'ca.pem', pki.inter.pem + pki.root.pem);
      const crl = createCrl({
        issuer: pki.interIssuer,
        entries: [
          {
            serialHex: pki.leaves['ecdsa-p256'].serialHex,
            revokedAt: new Date(),
            reason: 'keyCompromise',
          },
          {
            serialHex: pki.leaves['rsa-2048'].serialHex,
            revokedAt: new Date(),
            reason: 'privilegeWithdrawn',
          },
          { serialHex: '00ABCDEF', revokedAt: new Date(), reason: 'superseded' },
        ],
        crlNumber: 42,
        nextUpdate: new Date(Date.now() + 3600_000),
      });
      const crlPath = write(dir, 'list.crl', crl);
      openssl(['crl', '-verify', '-noout', '-CAfile', caFile, '-in', crlPath]);
      const text = openssl(['crl', '-text', '-noout', '-in', crlPath]);
      t.match(text, /Version 2/);
      t.match(text, /CRL Number: *\n *42/);
      t.match(text, /Authority Key Identifier/);
      t.match(
        text,
        new RegExp(
          `Serial Number: ${pki.leaves['ecdsa-p256'].serialHex.toUpperCase()}[^]*?Key Compromise`,
        ),
      );
      t.match(
        text,
        new RegExp(
          `Serial Number: ${pki.leaves['rsa-2048'].serialHex.toUpperCase()}[^]*?Privilege Withdrawn`,
        ),
      );
      t.match(text, /Serial Number: ABCDEF[^]*?Superseded/);
    });
  });
}

t.test('CRL without revocations omits the list and still verifies', async (t) => {
  const dir = t.testdir();
  const crl = createCrl({
    issuer: EC.rootIssuer,
    entries: [],
    crlNumber: 1,
    nextUpdate: new Date(Date.now() + 60_000),
  });
  const crlPath = write(dir, 'empty.crl', crl);
  openssl([
    'crl',
    '-verify',
    '-noout',
    '-CAfile',
    write(dir, 'root.pem', EC.root.pem),
    '-in',
    crlPath,
  ]);
  t.match(openssl(['crl', '-text', '-noout', '-in', crlPath]), /No Revoked Certificates/);
});

t.test('loadIssuer refuses a key that does not match and a non-CA certificate', async (t) => {
  t.equal(
    codeOf(() => loadIssuer(EC.root.pem, EC_LEAF_KEY.privateKey)),
    'ISSUER_INVALID',
  );
  t.equal(
    codeOf(() => loadIssuer(EC.leaves['ecdsa-p256'].pem, EC_LEAF_KEY.privateKey)),
    'ISSUER_INVALID',
  );
  t.equal(
    codeOf(() => loadIssuer('not a certificate', EC_LEAF_KEY.privateKey)),
    'ISSUER_INVALID',
  );
});

t.test('a leaf never outlives its issuer', async (t) => {
  const longLeaf = createLeafCertificate({
    publicKey: EC_LEAF_KEY.publicKey,
    spiffeId: WORKLOAD_ID,
    issuer: EC.interIssuer,
    ttlSeconds: 20 * 365 * 24 * 3600,
  });
  t.same(longLeaf.notAfter, new Date(new X509Certificate(EC.inter.pem).validTo));
});

t.test('encodes times from 2050 on as GeneralizedTime', async (t) => {
  const key = generateKeyPairSync();
  const root = createRootCertificate({
    key,
    trustDomain: TD,
    now: new Date('2049-12-31T00:00:00Z'),
    ttlSeconds: 3 * 86400,
  });
  t.ok(root.der.includes(Buffer.from('491230235900Z')), 'notBefore stays a UTCTime');
  t.ok(root.der.includes(Buffer.from('20500103000000Z')), 'notAfter is a GeneralizedTime');
  t.equal(
    new Date(new X509Certificate(root.pem).validTo).toISOString(),
    '2050-01-03T00:00:00.000Z',
  );
});

t.test('DER writer', async (t) => {
  // node-forge stays the CA-side reference: the writer must emit exactly the
  // bytes forge's ASN.1 builder did, so certificates and CRLs are unchanged.
  const { asn1 } = forge;
  const forgeDer = (node: forge.asn1.Asn1) => Buffer.from(asn1.toDer(node).getBytes(), 'latin1');
  const universal = (type: number, value: string | forge.asn1.Asn1[]) =>
    asn1.create(asn1.Class.UNIVERSAL, type, Array.isArray(value), value);

  t.test('writes OIDs byte for byte as node-forge does', async (t) => {
    for (const oid of [...Object.values(OID), '2.999.3', '1.3.6.1.4.1.311.21.20', '0.39']) {
      const expected = forgeDer(universal(asn1.Type.OID, asn1.oidToDer(oid).getBytes()));
      t.same(oidDer(oid), expected, oid);
    }
  });

  t.test('writes Names byte for byte as node-forge does, UTF-8 included', async (t) => {
    const attributes: [string, string][] = [
      [OID.organizationName, 'Palisade'],
      [OID.commonName, 'Zürich ☃ '.repeat(20)],
    ];
    const expected = forgeDer(
      universal(
        asn1.Type.SEQUENCE,
        attributes.map(([oid, value]) =>
          universal(asn1.Type.SET, [
            universal(asn1.Type.SEQUENCE, [
              universal(asn1.Type.OID, asn1.oidToDer(oid).getBytes()),
              universal(asn1.Type.UTF8, forge.util.encodeUtf8(value)),
            ]),
          ]),
        ),
      ),
    );
    t.same(nameDer(attributes), expected);
  });

  t.test('writes times byte for byte as node-forge does, in whole seconds', async (t) => {
    for (const iso of [
      '1999-01-02T03:04:05.999Z',
      '2026-12-03T16:59:59.001Z',
      '2049-12-31T23:59:59.999Z',
      '2050-01-01T00:00:00.000Z',
      '2101-07-08T09:10:11.500Z',
    ]) {
      const date = new Date(iso);
      const whole = new Date(Math.floor(date.getTime() / 1000) * 1000);
      const expected =
        date.getUTCFullYear() < 2050
          ? forgeDer(universal(asn1.Type.UTCTIME, asn1.dateToUtcTime(whole)))
          : forgeDer(universal(asn1.Type.GENERALIZEDTIME, asn1.dateToGeneralizedTime(whole)));
      t.same(timeDer(date), expected, iso);
    }
  });
});

t.test('OID codec', async (t) => {
  t.test('decodes what it encodes, arcs past 2^53 included', async (t) => {
    // A UUID OID (X.667): its arc is a 128-bit number.
    const uuidOid = '2.25.329800735698586629295641978511506172918';
    for (const oid of [...Object.values(OID), '0.0', '1.39', '2.40', '2.999.1', uuidOid]) {
      t.equal(decodeOid(encodeOid(oid, 'CERT_MALFORMED'), 'CERT_MALFORMED'), oid, oid);
    }
  });

  t.test('refuses malformed OID content with the caller code', async (t) => {
    const bad = [
      Buffer.alloc(0),
      Buffer.from([0x2a, 0x86]),
      Buffer.from([0x2a, 0x80, 0x01]),
      Buffer.from([0x80, 0x2a]),
    ];
    for (const content of bad) {
      t.equal(
        codeOf(() => decodeOid(content, 'CSR_MALFORMED')),
        'CSR_MALFORMED',
        content.toString('hex'),
      );
    }
  });

  t.test('refuses dotted strings that are not OIDs', async (t) => {
    for (const oid of ['', '1', '3.1', '1.40', '0.1.', '1.2.x', '1.02']) {
      t.equal(
        codeOf(() => encodeOid(oid, 'CERT_MALFORMED')),
        'CERT_MALFORMED',
        oid,
      );
    }
  });
});

t.test('mutual TLS 1.3 between an EC and an RSA leaf of one chain', async (t) => {
  const pki = EC;
  const server = tls.createServer({
    key: pkcs8(pki.leafKeys['ecdsa-p256'].privateKey),
    cert: pki.leaves['ecdsa-p256'].pem + pki.inter.pem,
    ca: pki.root.pem,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  });
  const serverSaw = new Promise<{ authorized: boolean; san: string | undefined }>((resolve) => {
    server.on('secureConnection', (socket) => {
      resolve({ authorized: socket.authorized, san: socket.getPeerCertificate().subjectaltname });
      socket.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const { port } = server.address() as { port: number };

  const client = tls.connect({
    host: '127.0.0.1',
    port,
    key: pkcs8(pki.leafKeys['rsa-2048'].privateKey),
    cert: pki.leaves['rsa-2048'].pem + pki.inter.pem,
    ca: pki.root.pem,
    minVersion: 'TLSv1.3',
    checkServerIdentity: () => undefined,
  });
  t.teardown(() => client.destroy());
  await once(client, 'secureConnect');
  t.equal(client.authorized, true);
  t.equal(client.getProtocol(), 'TLSv1.3');
  t.equal(client.getPeerCertificate().subjectaltname, `URI:${WORKLOAD_ID}`);
  const seen = await serverSaw;
  t.equal(seen.authorized, true);
  t.equal(seen.san, `URI:${CLIENT_ID}`);
});

t.test('verifySvid', async (t) => {
  const leaf = EC.leaves['ecdsa-p256'];
  const chain = [leaf.der, EC.inter.der];

  t.test('accepts a good chain and names every serial', async (t) => {
    const verdict = verifySvid({ chain, trust: EC.trust });
    t.match(verdict, { ok: true, spiffeId: WORKLOAD_ID, serialHex: leaf.serialHex });
    if (verdict.ok)
      t.same(verdict.chainSerials, [leaf.serialHex, EC.inter.serialHex, EC.root.serialHex]);
    t.match(verifySvid({ chain, trust: EC.trust }), { ok: true }, 'again from the cache');
  });

  t.test('accepts one PEM string holding the whole chain', async (t) => {
    t.match(verifySvid({ chain: [leaf.pem + EC.inter.pem], trust: EC.trust }), { ok: true });
    t.same(splitPemChain(`junk\n${leaf.pem}\n${EC.inter.pem}`), [leaf.pem, EC.inter.pem]);
  });

  t.test('accepts a leaf under either root during a root rotation', async (t) => {
    const next = makePki('ecdsa-p256');
    const both = new TrustStore([EC.root.pem, next.root.pem]);
    t.match(verifySvid({ chain: [next.leaves['rsa-2048'].der, next.inter.der], trust: both }), {
      ok: true,
    });
    t.match(verifySvid({ chain, trust: both }), { ok: true });
  });

  t.test('rejects an expired chain', async (t) => {
    const now = new Date(leaf.notAfter.getTime() + 1000);
    t.match(verifySvid({ chain, trust: EC.trust, now }), {
      ok: false,
      reason: 'expired',
      spiffeId: WORKLOAD_ID,
    });
  });

  t.test('rejects a chain that is not valid yet', async (t) => {
    const now = new Date(leaf.notBefore.getTime() - 1000);
    t.match(verifySvid({ chain, trust: EC.trust, now }), { ok: false, reason: 'not-yet-valid' });
  });

  t.test('rejects a chain from an unknown issuer', async (t) => {
    t.match(verifySvid({ chain, trust: PKIS['rsa-2048'].trust }), {
      ok: false,
      reason: 'unknown-issuer',
    });
    t.match(verifySvid({ chain: [leaf.der], trust: EC.trust }), {
      ok: false,
      reason: 'unknown-issuer',
    });
  });

  t.test('rejects a leaf whose signature was tampered with', async (t) => {
    const tampered = Buffer.from(leaf.der);
    tampered[tampered.length - 5] = (tampered[tampered.length - 5] as number) ^ 0x01;
    t.match(verifySvid({ chain: [tampered, EC.inter.der], trust: EC.trust }), {
      ok: false,
      reason: 'bad-signature',
    });
  });

  t.test('rejects a leaf with two URI SANs as not an SVID', async (t) => {
    const { signer, nameDer: issuerName } = issuerSigning(EC.interIssuer);
    const twoUris = buildCertificate(
      {
        subjectDer: nameDer([[OID.organizationName, 'Palisade']]),
        spkiDer: spkiOf(EC_LEAF_KEY.publicKey),
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 60_000),
        extensions: [
          basicConstraintsDer(false),
          keyUsageDer([KEY_USAGE_BIT.digitalSignature]),
          subjectAltNameDer({ uris: [WORKLOAD_ID, CLIENT_ID] }, false),
        ],
      },
      signer,
      issuerName,
    );
    t.match(verifySvid({ chain: [twoUris.der, EC.inter.der], trust: EC.trust }), {
      ok: false,
      reason: 'not-svid',
    });
  });

  t.test('rejects a CA certificate presented as the leaf', async (t) => {
    const verdict = verifySvid({ chain: [EC.inter.der], trust: EC.trust });
    t.match(verdict, { ok: false, reason: 'not-svid' });
  });

  t.test('rejects a leaf revoked by serial', async (t) => {
    const isRevoked = (serial: string): boolean => serial === leaf.serialHex;
    t.match(verifySvid({ chain, trust: EC.trust, isRevoked }), { ok: false, reason: 'revoked' });
  });

  t.test('rejects a leaf revoked by identity', async (t) => {
    const isRevoked = (_serial: string, id: string): boolean => id === WORKLOAD_ID;
    t.match(verifySvid({ chain, trust: EC.trust, isRevoked }), { ok: false, reason: 'revoked' });
  });

  t.test('rejects a chain whose intermediate is revoked', async (t) => {
    const isRevoked = (serial: string): boolean => serial === EC.inter.serialHex;
    t.match(verifySvid({ chain, trust: EC.trust, isRevoked }), { ok: false, reason: 'revoked' });
  });

  t.test('rejects garbage as malformed without throwing', async (t) => {
    t.match(verifySvid({ chain: [Buffer.from('garbage')], trust: EC.trust }), {
      ok: false,
      reason: 'malformed',
    });
    t.match(verifySvid({ chain: ['not pem'], trust: EC.trust }), {
      ok: false,
      reason: 'malformed',
    });
    t.match(verifySvid({ chain: [], trust: EC.trust }), { ok: false, reason: 'malformed' });
    t.match(verifySvid({ chain: [Buffer.concat([leaf.der, Buffer.from([0])])], trust: EC.trust }), {
      ok: false,
      reason: 'malformed',
    });
  });
});

t.test('parseCsr', async (t) => {
  const csr = createCsr({ key: EC_LEAF_KEY, spiffeId: WORKLOAD_ID });
  const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ''), 'base64');

  t.test('accepts DER as well as PEM', async (t) => {
    t.same(parseCsr(der).uris, [WORKLOAD_ID]);
  });

  t.test('refuses input over 16 KiB with CSR_TOO_LARGE', async (t) => {
    t.equal(
      codeOf(() => parseCsr(csr + ' '.repeat(16 * 1024))),
      'CSR_TOO_LARGE',
    );
    t.equal(
      codeOf(() => parseCsr(Buffer.alloc(16 * 1024 + 1))),
      'CSR_TOO_LARGE',
    );
  });

  t.test('refuses garbage with CSR_MALFORMED', async (t) => {
    t.equal(
      codeOf(() => parseCsr('hello')),
      'CSR_MALFORMED',
    );
    t.equal(
      codeOf(() => parseCsr(Buffer.from([0x30, 0x03, 0x02, 0x01]))),
      'CSR_MALFORMED',
    );
  });

  t.test('refuses a wrong PEM label with CSR_MALFORMED', async (t) => {
    t.equal(
      codeOf(() => parseCsr(csr.replace(/CERTIFICATE REQUEST/g, 'CERTIFICATE'))),
      'CSR_MALFORMED',
    );
  });

  t.test('refuses trailing bytes with CSR_MALFORMED', async (t) => {
    t.equal(
      codeOf(() => parseCsr(Buffer.concat([der, Buffer.from([0])]))),
      'CSR_MALFORMED',
    );
  });

  t.test('refuses a P-384 or Ed25519 key with CSR_KEY_UNSUPPORTED', async (t) => {
    const dir = t.testdir();
    for (const [name, genArgs] of [
      ['p384', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384']],
      ['ed25519', ['genpkey', '-algorithm', 'ED25519']],
    ] as const) {
      const keyPath = join(dir, `${name}.pem`);
      openssl([...genArgs, '-out', keyPath]);
      const pem = openssl(['req', '-new', '-key', keyPath, '-subj', '/O=x']);
      t.equal(
        codeOf(() => parseCsr(pem)),
        'CSR_KEY_UNSUPPORTED',
        name,
      );
    }
  });

  t.test('refuses a bad signature with CSR_BAD_SIGNATURE', async (t) => {
    const tampered = Buffer.from(der);
    tampered[tampered.length - 3] = (tampered[tampered.length - 3] as number) ^ 0x01;
    t.equal(
      codeOf(() => parseCsr(tampered)),
      'CSR_BAD_SIGNATURE',
    );
  });

  t.test('parses an openssl CSR and reports an extra DNS SAN', async (t) => {
    const dir = t.testdir();
    const keyPath = write(dir, 'key.pem', pkcs8(RSA_LEAF_KEY.privateKey));
    const san = `subjectAltName=URI:spiffe://td/x,DNS:evil.example,IP:10.0.0.1,email:a@b.c`;
    const parsed = parseCsr(
      openssl(['req', '-new', '-key', keyPath, '-subj', '/O=x', '-addext', san]),
    );
    t.equal(parsed.keyType, 'rsa-2048');
    t.same(parsed.uris, ['spiffe://td/x']);
    t.same(parsed.dnsNames, ['evil.example']);
    t.same(parsed.ipAddresses, ['10.0.0.1']);
    t.same(parsed.emails, ['a@b.c']);
  });

  t.test('parses the CSR openssl makes for a SPIFFE ID alone', async (t) => {
    const dir = t.testdir();
    const keyPath = write(dir, 'k.pem', pkcs8(EC_LEAF_KEY.privateKey));
    const pem = openssl([
      'req',
      '-new',
      '-key',
      keyPath,
      '-subj',
      '/O=x',
      '-addext',
      'subjectAltName=URI:spiffe://td/x',
    ]);
    const parsed = parseCsr(pem);
    t.same(parsed.uris, ['spiffe://td/x']);
    t.equal(parsed.otherSanCount + parsed.dnsNames.length, 0);
  });
});

t.test('serialHexOf normalises foreign serials', async (t) => {
  const dir = t.testdir();
  const keyPath = write(dir, 'k.pem', pkcs8(EC_LEAF_KEY.privateKey));
  for (const [serial, hex] of [
    ['255', 'ff'],
    ['128', '80'],
    ['0x00000102', '0102'],
  ]) {
    const pem = openssl([
      'req',
      '-x509',
      '-new',
      '-key',
      keyPath,
      '-subj',
      '/O=x',
      '-days',
      '1',
      '-set_serial',
      serial as string,
    ]);
    t.equal(serialHexOf(new X509Certificate(pem)), hex);
  }
});

t.test('modules the agent loads', async (t) => {
  // A fresh process imports the modules the agent builds identity, policy and
  // HTTP checks from, then its composition root, and lists every package
  // each step resolved: the module hook sees ESM and CommonJS alike.
  const [ownModules, agentPath] = packagesLoadedBy([
    [
      'certs/x509/index.ts',
      'certs/policy/index.ts',
      'agent/identity/index.ts',
      'agent/policy/index.ts',
      'agent/http/index.ts',
    ],
    ['agent/app.ts'],
  ]);

  t.test('the agent process path never loads node-forge', async (t) => {
    t.ok(agentPath?.includes('@grpc/grpc-js'), 'the probe sees packages the agent does load');
    t.notOk(agentPath?.includes('node-forge'), 'CSRs and certificate reads use the DER codec');
  });

  t.test('identity, policy and HTTP modules load no ASN.1, JOSE or YAML library', async (t) => {
    for (const name of ['node-forge', 'jose', 'yaml']) {
      t.notOk(ownModules?.includes(name), `${name} loads only when first needed`);
    }
  });
});

/**
 * Imports each group of modules (repo-relative paths) in turn in one fresh
 * process and returns, per group, the package names resolved so far.
 */
function packagesLoadedBy(groups: readonly (readonly string[])[]): string[][] {
  const dir = mkdtempSync(join(tmpdir(), 'palisade-modules-'));
  try {
    const log = join(dir, 'resolved.txt');
    const hook = `import { appendFileSync } from 'node:fs';
      let log;
      export function initialize(data) { log = data.log; }
      export async function resolve(specifier, context, next) {
        const resolved = await next(specifier, context);
        appendFileSync(log, resolved.url + '\\n');
        return resolved;
      }`;
    const urls = groups.map((group) =>
      group.map((path) => new URL(`../../../${path}`, import.meta.url).href),
    );
    // Each group's imports have all resolved once its awaits return, so the
    // end marker written then closes that group's lines.
    const script = `import { appendFileSync } from 'node:fs';
      import { register } from 'node:module';
      register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}), {
        data: { log: ${JSON.stringify(log)} },
      });
      for (const group of ${JSON.stringify(urls)}) {
        for (const url of group) await import(url);
        appendFileSync(${JSON.stringify(log)}, '${GROUP_END}\\n');
      }`;
    execFileSync(process.execPath, [...process.execArgv, '--input-type=module', '--eval', script], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const names = new Set<string>();
    const perGroup: string[][] = [];
    for (const line of readFileSync(log, 'utf8').split('\n')) {
      if (line === GROUP_END) perGroup.push([...names].sort());
      const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(line);
      if (match) names.add(match[1] as string);
    }
    return perGroup;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
