import { readAdminCredential, readCaConfig } from '../../certs/ca-dir.js';
import { CaClient } from '../../certs/client/index.js';
import { loadCaCommonConfig } from '../config/ca-config.js';
import type { Env } from '../config/env-table.js';

/** Flags every `ca` command shares. */
export interface CommonFlags {
  dir?: string;
  caAddr?: string;
  passphraseFile?: string;
  logLevel?: string;
  json?: boolean;
}

/** Opens an admin client from the CA directory's admin credential, runs `use`, closes it. */
export async function withAdmin<T>(
  flags: CommonFlags,
  env: Env,
  use: (client: CaClient) => Promise<T>,
): Promise<T> {
  const common = loadCaCommonConfig(flags, env);
  const { trustDomain } = readCaConfig(common.dir);
  const admin = readAdminCredential(common.dir);
  const client = new CaClient({
    address: common.caAddr,
    trustBundlePem: admin.bundlePem,
    trustDomain,
    credential: { keyPem: admin.keyPem, certChainPem: admin.certPem },
  });
  try {
    return await use(client);
  } finally {
    client.close();
  }
}
