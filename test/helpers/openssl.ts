import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Result of one openssl run: exit status and everything it printed. */
export interface OpensslResult {
  ok: boolean;
  output: string;
}

/**
 * Runs `openssl` with files written to a temp directory: `files` maps names
 * to contents, and `{name}` in args is replaced by that file's path.
 */
export function openssl(args: string[], files: Record<string, string> = {}): OpensslResult {
  const dir = mkdtempSync(join(tmpdir(), 'palisade-openssl-'));
  try {
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    const resolved = args.map((a) =>
      a.replace(/\{([\w.-]+)\}/g, (_m, name: string) => join(dir, name)),
    );
    try {
      const output = execFileSync('openssl', resolved, { encoding: 'utf8', stdio: 'pipe' });
      return { ok: true, output };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
