import type { CaClient } from '../../certs/client/index.js';
import type { SecurityEventMessage } from '../../proto/index.js';

/**
 * Sends event batches to the CA's ReportEvents over one client, opened with
 * the agent's current certificate (the CA takes the reporter's identity from
 * it) and reopened when the certificate changes or a call fails, so a
 * restarted CA or a rotated certificate is picked up on the next batch.
 */
export class CaEventSender {
  readonly #open: () => CaClient;
  readonly #credentialKey: () => unknown;
  #client: CaClient | undefined;
  #key: unknown;

  /**
   * `open` makes a client presenting the current certificate (it may throw
   * while none is held); `credentialKey` returns a value that changes with it.
   */
  constructor(open: () => CaClient, credentialKey: () => unknown) {
    this.#open = open;
    this.#credentialKey = credentialKey;
  }

  /** Sends one batch; rejects with the CA's error (CaClientError) when it was not taken. */
  readonly send = async (events: SecurityEventMessage[]): Promise<void> => {
    const key = this.#credentialKey();
    if (this.#client === undefined || this.#key !== key) {
      this.close();
      this.#client = this.#open();
      this.#key = key;
    }
    try {
      await this.#client.reportEvents(events);
    } catch (err) {
      this.close();
      throw err;
    }
  };

  /** Closes the client; the next batch opens a new one. */
  close(): void {
    this.#client?.close();
    this.#client = undefined;
  }
}
