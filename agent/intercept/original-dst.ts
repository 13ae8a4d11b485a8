import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import { PalisadeError } from '../../certs/errors.js';

/** File name of the addon node-gyp builds from `binding.gyp`. */
const ADDON_FILE = join('build', 'Release', 'original_dst.node');

/** Where a redirected connection was headed before iptables rewrote it. */
export interface OriginalDestination {
  address: string;
  port: number;
  family: 4 | 6;
}

/** Reads the original destination of a socket's connection. */
export type OriginalDstReader = (socket: Socket) => OriginalDestination;

interface Addon {
  originalDst(fd: number): OriginalDestination;
}

let addon: Addon | undefined;

/**
 * Loads the SO_ORIGINAL_DST addon (built by `npm install` into
 * build/Release) and returns a reader. Loaded lazily, so explicit mode runs
 * without it; throws ADDON_MISSING, once, with the fix, when it is absent.
 */
export function loadOriginalDstReader(): OriginalDstReader {
  if (!addon) {
    const path = findAddon();
    if (!path) {
      throw new PalisadeError(
        'ADDON_MISSING',
        `transparent interception needs the SO_ORIGINAL_DST addon (${ADDON_FILE}); build it with \`npm rebuild\` or \`npx node-gyp rebuild\` (set npm_config_nodedir=/usr where node headers live there)`,
      );
    }
    try {
      addon = createRequire(import.meta.url)(path) as Addon;
    } catch (err) {
      throw new PalisadeError('ADDON_MISSING', `cannot load ${path}: ${String(err)}`, {
        cause: err,
      });
    }
  }
  const loaded = addon;
  return (socket) => {
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) {
      throw new PalisadeError('ORIGINAL_DST_UNAVAILABLE', 'the socket has no file descriptor');
    }
    try {
      return loaded.originalDst(fd);
    } catch (err) {
      throw new PalisadeError(
        'ORIGINAL_DST_UNAVAILABLE',
        `no original destination: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
  };
}

/** Whether the addon file is present (it may still fail to load). */
export function isOriginalDstAddonBuilt(): boolean {
  return findAddon() !== undefined;
}

/** Walks up from this file (source or dist/) to the package root holding the addon. */
function findAddon(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, ADDON_FILE);
    if (existsSync(candidate)) return candidate;
    const parent = resolve(dir, '..');
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}
