import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import type { Logger } from '../../certs/log.js';
import { errorCode, errorMessage } from '../../certs/errors.js';
import { MAX_POLICY_FILE_BYTES, parsePolicyDocument, type PolicyDocument } from './policy-file.js';
import { PolicyError } from '../../certs/policy/index.js';
import type { WorkloadPolicy } from './workload-policy.js';

/** How often the file is polled when no interval is given, in milliseconds. */
export const DEFAULT_POLICY_POLL_INTERVAL_MS = 500;

// Editors that rewrite in place fire several events per save; waiting this
// long after the last one reads the file once, finished.
const FS_EVENT_SETTLE_MS = 20;

const READ_CHUNK_BYTES = 64 * 1024;

/** What a PolicyWatcher needs; the callbacks are how it reports. */
export interface PolicyWatcherOptions {
  /** The policy file (YAML or JSON); it is also the policy's `source`. */
  path: string;
  trustDomain: string;
  log: Logger;
  /** Polling interval of `fs.watchFile`, in milliseconds; default 500. */
  pollIntervalMs?: number;
  /** Called after a changed, valid file has replaced the policy. */
  onChange?: (next: WorkloadPolicy, previous: WorkloadPolicy, document: PolicyDocument) => void;
  /** Called when a changed file is unreadable or invalid; the previous policy stays. */
  onError?: (err: PolicyError) => void;
}

/**
 * Keeps a workload policy in step with a file. `start()` reads it once and
 * throws if it is bad; afterwards each change is parsed and applied through
 * `onChange`, or refused through `onError` with the previous policy kept.
 * Polling with `fs.watchFile` catches every change, including the atomic
 * renames of editors and Kubernetes ConfigMaps; `fs.watch` on the directory
 * is a faster path where the platform offers it. Content whose policy and
 * `http` section are unchanged is ignored. Logs `policy.loaded` (info) and
 * `policy.rejected` (error) events.
 */
export class PolicyWatcher {
  private readonly path: string;
  private readonly trustDomain: string;
  private readonly log: Logger;
  private readonly pollIntervalMs: number;
  private readonly onChange: PolicyWatcherOptions['onChange'];
  private readonly onError: PolicyWatcherOptions['onError'];
  private running = false;
  private doc: PolicyDocument | undefined;
  private docKey = '';
  private rejectedKey: string | undefined;
  private reloading = false;
  private reloadPending = false;
  private fsWatcher: fs.FSWatcher | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private readonly onPoll = (): void => this.scheduleReload();

  constructor(options: PolicyWatcherOptions) {
    const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLICY_POLL_INTERVAL_MS;
    if (!Number.isInteger(pollIntervalMs) || pollIntervalMs <= 0) {
      throw new PolicyError(
        'POLICY_INVALID',
        `pollIntervalMs must be a positive whole number: ${pollIntervalMs}`,
      );
    }
    if (typeof options.path !== 'string' || options.path === '') {
      throw new PolicyError('POLICY_INVALID', 'policy file path is empty');
    }
    this.path = options.path;
    this.trustDomain = options.trustDomain;
    this.log = options.log;
    this.pollIntervalMs = pollIntervalMs;
    this.onChange = options.onChange;
    this.onError = options.onError;
  }

  /** The policy in force; undefined before `start()`. */
  get current(): WorkloadPolicy | undefined {
    return this.doc?.policy;
  }

  /** The whole parsed file in force, `http` section included; undefined before `start()`. */
  get document(): PolicyDocument | undefined {
    return this.doc;
  }

  /**
   * Reads and parses the file, starts watching it, and returns its policy.
   * Throws PolicyError (POLICY_UNREADABLE or POLICY_INVALID) when the file is
   * bad, without watching. Calling it while running returns the current policy.
   */
  start(): WorkloadPolicy {
    if (this.running && this.doc !== undefined) return this.doc.policy;

    const text = readPolicyText(this.path);
    const doc = parsePolicyDocument(text, this.path, this.trustDomain);
    this.accept(doc);
    this.running = true;
    fs.watchFile(this.path, { interval: this.pollIntervalMs, persistent: true }, this.onPoll);
    this.watchDirectory();
    return doc.policy;
  }

  /** Stops watching; no callback runs afterwards. Safe to call more than once. */
  stop(): void {
    this.running = false;
    fs.unwatchFile(this.path, this.onPoll);
    this.fsWatcher?.close();
    this.fsWatcher = undefined;
    clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
  }

  private watchDirectory(): void {
    const name = path.basename(this.path);
    try {
      this.fsWatcher = fs.watch(path.dirname(this.path), { persistent: false }, (_, filename) => {
        // Kubernetes swaps a `..data` symlink rather than the file itself.
        if (filename === null || filename === name || filename.startsWith('..')) {
          clearTimeout(this.settleTimer);
          this.settleTimer = setTimeout(() => this.scheduleReload(), FS_EVENT_SETTLE_MS);
        }
      });
      this.fsWatcher.on('error', (err) => {
        this.log.debug({ source: this.path, reason: errorMessage(err) }, 'policy fs watch stopped');
        this.fsWatcher?.close();
        this.fsWatcher = undefined;
      });
    } catch (err) {
      // Polling alone still sees every change, only later.
      this.log.debug(
        { source: this.path, reason: errorMessage(err) },
        'policy fs watch unavailable',
      );
    }
  }

  // Runs one reload at a time; events that arrive meanwhile cause one more.
  private scheduleReload(): void {
    if (!this.running) return;
    if (this.reloading) {
      this.reloadPending = true;
      return;
    }
    this.reloading = true;
    void this.reload().finally(() => {
      this.reloading = false;
      if (this.reloadPending) {
        this.reloadPending = false;
        this.scheduleReload();
      }
    });
  }

  private async reload(): Promise<void> {
    let text: string;
    try {
      text = readPolicyText(this.path);
    } catch (err) {
      if (this.running) this.reject(err, `read:${errorCode(err)}:${errorMessage(err)}`);
      return;
    }
    if (!this.running) return;

    let doc: PolicyDocument;
    try {
      doc = parsePolicyDocument(text, this.path, this.trustDomain);
    } catch (err) {
      this.reject(err, `text:${createHash('sha256').update(text).digest('hex')}`);
      return;
    }
    this.rejectedKey = undefined;
    if (documentKey(doc) === this.docKey) return;

    const previous = this.doc as PolicyDocument;
    this.accept(doc);
    try {
      this.onChange?.(doc.policy, previous.policy, doc);
    } catch (err) {
      this.log.error(
        { source: this.path, version: doc.policy.version, reason: errorMessage(err) },
        'policy change handler failed',
      );
    }
  }

  private accept(doc: PolicyDocument): void {
    this.doc = doc;
    this.docKey = documentKey(doc);
    this.log.info(
      { event: 'policy.loaded', source: this.path, version: doc.policy.version },
      'policy loaded',
    );
  }

  // Both watch paths may report one change; a refusal is logged once per content.
  private reject(err: unknown, key: string): void {
    if (key === this.rejectedKey) return;
    this.rejectedKey = key;

    const policyErr =
      err instanceof PolicyError
        ? err
        : new PolicyError('POLICY_UNREADABLE', errorMessage(err), { cause: err });
    this.log.error(
      {
        event: 'policy.rejected',
        source: this.path,
        err_code: policyErr.code,
        reason: policyErr.message,
        kept_version: this.doc?.policy.version,
      },
      'policy rejected',
    );
    try {
      this.onError?.(policyErr);
    } catch (handlerErr) {
      this.log.error(
        { source: this.path, reason: errorMessage(handlerErr) },
        'policy error handler failed',
      );
    }
  }
}

/** Identifies content that changes what the watcher hands out: the policy and `http`. */
function documentKey(doc: PolicyDocument): string {
  return `${doc.policy.version}:${JSON.stringify(doc.http) ?? ''}`;
}

// The reader stops one chunk past the limit, so an oversized file is refused
// by the parser without being loaded whole, and reads to the end otherwise, so
// a file that grows while it is read is not cut short. It is synchronous: a
// policy file is at most 1 MiB and is read only when it changed.
function readPolicyText(file: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw unreadable(file, err);
  }
  try {
    const chunks: Buffer[] = [];
    let totalBytes = 0;
    while (totalBytes <= MAX_POLICY_FILE_BYTES) {
      const chunk = Buffer.alloc(READ_CHUNK_BYTES);
      const n = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      totalBytes += n;
    }
    return Buffer.concat(chunks).toString('utf8');
  } catch (err) {
    throw unreadable(file, err);
  } finally {
    fs.closeSync(fd);
  }
}

function unreadable(file: string, err: unknown): PolicyError {
  return new PolicyError('POLICY_UNREADABLE', `cannot read ${file}: ${errorMessage(err)}`, {
    cause: err,
  });
}
