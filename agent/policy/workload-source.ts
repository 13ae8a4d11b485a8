import type { Logger } from '../../certs/log.js';
import type { HttpSection } from './http-section.js';
import { PolicyWatcher } from './policy-watcher.js';
import { buildWorkloadPolicy, type Mode, type WorkloadPolicy } from './workload-policy.js';

/** The workload policy settings of the agent config: flags (or env) or a watched file. */
export interface WorkloadSettings {
  readonly allow: readonly string[] | undefined;
  readonly file: string | undefined;
  readonly mode: Mode;
  readonly dryRun: boolean;
  /** The http section given by flags; a policy file must then have none. */
  readonly http: HttpSection | undefined;
}

/** The workload's policy and http section in force, and how to stop watching them. */
export interface WorkloadSource {
  readonly policy: WorkloadPolicy;
  readonly http: HttpSection | undefined;
  stop(): void;
}

/**
 * Builds the workload policy from the flags, or reads the policy file and
 * watches it, calling `onChange` with each valid new version (flags' http
 * section first, the file's otherwise). Throws PolicyError for a bad file.
 * Returns `{ conflict }` naming the problem when flags and the file both
 * give an http section. Logs `policy.http_ignored` when the file gains one
 * later: the flags stay in force.
 */
export function openWorkloadSource(
  settings: WorkloadSettings,
  trustDomain: string,
  log: Logger,
  onChange: (policy: WorkloadPolicy, http: HttpSection | undefined) => void,
): WorkloadSource | { conflict: string } {
  const flagsHttp = settings.http;
  if (!settings.file) {
    const policy = buildWorkloadPolicy(
      {
        ...(settings.allow ? { allow: [...settings.allow] } : {}),
        mode: settings.mode,
        dryRun: settings.dryRun,
        source: 'flags',
      },
      trustDomain,
    );
    return { policy, http: flagsHttp, stop: () => undefined };
  }

  const path = settings.file;
  const watcher = new PolicyWatcher({
    path,
    trustDomain,
    log,
    onChange: (next, _previous, document) => {
      if (flagsHttp !== undefined && document.http !== undefined) {
        log.error(
          { event: 'policy.http_ignored', path, err_code: 'CONFIG_INVALID' },
          'the policy file gained an http section while --jwt-*/--http-* flags set one: ' +
            'the flags stay in force',
        );
      }
      onChange(next, flagsHttp ?? document.http);
    },
  });
  const policy = watcher.start();
  const fileHttp = watcher.document?.http;
  if (flagsHttp !== undefined && fileHttp !== undefined) {
    watcher.stop();
    return {
      conflict:
        'has its own http section: give the http settings in the file or by ' +
        '--jwt-*/--http-* flags (PALISADE_JWT_*, PALISADE_HTTP_*), not both',
    };
  }
  return { policy, http: flagsHttp ?? fileHttp, stop: () => watcher.stop() };
}
