import type { CaClient, CaClientError } from '../../certs/client/index.js';
import { errorCode, errorMessage } from '../../certs/errors.js';
import type { Logger } from '../../certs/log.js';
import type { TrustUpdate } from '../../proto/index.js';
import { backoffDelayMs } from './backoff.js';
import type { Clock, TimerHandle } from './clock.js';

/** What a trust watch needs: a way to reach the CA, time, randomness and a sink. */
export interface TrustWatchOptions {
  /** Makes a fresh CA client for each connection; the watch closes it. */
  openClient: () => CaClient;
  clock: Clock;
  random: () => number;
  log: Logger;
  /** The version already held, sent when (re)connecting; 0 for none. */
  heldVersion: () => number;
  /** Receives every update, in stream order. */
  onUpdate: (update: TrustUpdate) => void;
}

/**
 * Holds one WatchTrust stream open to the CA and reopens it whenever it ends,
 * after a backoff delay (full jitter) that resets once an update arrives.
 */
export class TrustWatch {
  readonly #options: TrustWatchOptions;
  #client: CaClient | undefined;
  #cancel: (() => void) | undefined;
  #timer: TimerHandle | undefined;
  #failures = 0;
  #running = false;

  constructor(options: TrustWatchOptions) {
    this.#options = options;
  }

  /** Opens the stream; a no-op when already running. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#connect();
  }

  /** Cancels the stream and any pending reconnection. */
  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) this.#options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#disconnect();
  }

  #connect(): void {
    this.#timer = undefined;
    if (!this.#running) return;

    const { log } = this.#options;
    try {
      const client = this.#options.openClient();
      this.#client = client;
      this.#cancel = client.watchTrust(
        this.#options.heldVersion(),
        (update) => {
          if (this.#client !== client) return;
          this.#failures = 0;
          this.#options.onUpdate(update);
        },
        (err) => {
          if (this.#client === client) this.#reconnectLater(err);
        },
      );
      log.debug({ known_version: this.#options.heldVersion() }, 'trust watch opened');
    } catch (err) {
      // Building a client fails only on bad credentials; retrying later is
      // still right, since a trust update may bring the roots that fix it.
      this.#reconnectLater(err);
    }
  }

  #reconnectLater(err: CaClientError | unknown): void {
    this.#disconnect();
    if (!this.#running) return;

    const retryInMs = backoffDelayMs(this.#failures++, this.#options.random);
    this.#options.log.warn(
      {
        event: 'trust.watch_ended',
        err_code: err === undefined ? 'STREAM_ENDED' : errorCode(err),
        reason: err === undefined ? 'the CA ended the stream' : errorMessage(err),
        retry_in_ms: retryInMs,
      },
      'trust watch ended, reconnecting',
    );
    this.#timer = this.#options.clock.setTimeout(() => this.#connect(), retryInMs);
  }

  #disconnect(): void {
    const cancel = this.#cancel;
    const client = this.#client;
    this.#cancel = undefined;
    this.#client = undefined;
    cancel?.();
    client?.close();
  }
}
