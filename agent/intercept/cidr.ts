import { BlockList, isIP } from 'node:net';
import { PalisadeError } from '../../certs/errors.js';

/** An address block, `10.0.0.0/8` or `fd00::/8`. */
export interface Cidr {
  /** The text as given, normalised to `address/prefix`. */
  text: string;
  address: string;
  prefix: number;
  family: 4 | 6;
}

/** Parses `ADDRESS/PREFIX` (a bare address means a single host); throws CIDR_INVALID. */
export function parseCidr(input: string): Cidr {
  const [address = '', prefixText, extra] = input.trim().split('/');
  const version = isIP(address);
  const family: 4 | 6 = version === 6 ? 6 : 4;
  const maxPrefix = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? maxPrefix : Number(prefixText);
  const isPrefixValid =
    prefixText === undefined || (/^\d{1,3}$/.test(prefixText) && prefix <= maxPrefix);
  if (version === 0 || extra !== undefined || !isPrefixValid) {
    throw new PalisadeError('CIDR_INVALID', `not an address block: ${JSON.stringify(input)}`);
  }
  return { text: `${address}/${prefix}`, address, prefix, family };
}

/** A set of address blocks that answers whether an address lies inside one of them. */
export class CidrSet {
  private readonly blocks = new BlockList();

  constructor(readonly cidrs: readonly Cidr[]) {
    for (const c of cidrs) {
      this.blocks.addSubnet(c.address, c.prefix, c.family === 4 ? 'ipv4' : 'ipv6');
    }
  }

  /** Whether `address` (IPv4, IPv6 or IPv4-mapped IPv6) is inside the set. */
  has(address: string): boolean {
    const plain = unmapIpv4(address);
    const version = isIP(plain);
    if (version === 0) return false;
    return this.blocks.check(plain, version === 4 ? 'ipv4' : 'ipv6');
  }
}

/** `::ffff:10.0.0.1` -> `10.0.0.1`; anything else unchanged. */
export function unmapIpv4(address: string): string {
  const match = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return match ? (match[1] as string) : address;
}
